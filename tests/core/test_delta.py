"""Delta prices (SPEC 6): the delta payload, one delta per tick shared by every delta
subscriber, and when a subscriber gets the full tick instead."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import pytest

from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection
from tickwire.core.delta import Bases, delta_of, delta_payload
from tickwire.core.event import Event
from tickwire.core.hub import DeltaSubscription, Hub
from tickwire.core.ids import Position
from tickwire.core.streams import ANONYMOUS
from tickwire.domain.catalog import resolve_stream
from tickwire.errors import StreamError
from tickwire.wire.codecs import JSON_CODEC, MSGPACK_CODEC
from tickwire.wire.sse import SSECodec, SSEParser

SSE = SSECodec()


def conn(clock: FakeClock, limit: int = 1 << 20, cap: float = 0.0) -> Connection:
    return Connection(
        client_id="anonymous-x",
        user=None,
        transport="sse",
        codec=SSE,
        clock=clock,
        outbox_limit=limit,
        notify=lambda: None,
        max_ticks_per_s=cap,
    )


def tick(n: int, symbol: str = "AAPL", **data: Any) -> Event:
    payload = {"symbol": symbol, "price": 100 + n, "bid": 99, "ask": 101, **data}
    return Event("price:update", payload, "prices", Position(1, 0, n), n, key=f"prices|{symbol}", tick=True)


def live(hub: Hub, c: Connection, params: dict[str, str]) -> Any:
    hub.add_connection(c)
    sub = hub.subscribe(c, resolve_stream("prices", params, ANONYMOUS))
    sub.go_live(None)
    return sub


def delta_reader(
    throttle_s: float = 0.0, limit: int = 1 << 20, cap: float = 0.0
) -> tuple[FakeClock, Hub, Connection, Any]:
    """A hub, and one live connection reading `prices?delta=1` (its subscription last)."""
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=throttle_s)
    c = conn(clock, limit=limit, cap=cap)
    return clock, hub, c, live(hub, c, {"delta": "1"})


def received(c: Connection) -> list[dict[str, Any]]:
    return [orjson.loads(e.data) for e in SSEParser().feed(c.outbox.drain())]


# -- the payload ------------------------------------------------------------------------------


def test_a_delta_holds_the_key_the_changed_fields_and_the_mark() -> None:
    base = {"symbol": "AAPL", "price": 1, "bid": 0.9, "ask": 1.1, "timestamp": "t1"}
    data = {"symbol": "AAPL", "price": 2, "bid": 0.9, "ask": 1.1, "timestamp": "t2"}
    assert delta_payload(data, base, "symbol") == {
        "symbol": "AAPL",
        "price": 2,
        "timestamp": "t2",
        "delta": True,
    }


def test_a_new_field_is_a_change() -> None:
    assert delta_payload({"symbol": "A", "p": 1, "v": 5}, {"symbol": "A", "p": 1}, "symbol") == {
        "symbol": "A",
        "v": 5,
        "delta": True,
    }


@pytest.mark.parametrize(
    ("data", "base"),
    [
        ({"symbol": "A", "price": 2}, {"symbol": "A", "price": 1, "bid": 1}),  # bid removed
        ({"symbol": "A", "price": 2, "delta": 1}, {"symbol": "A", "price": 1}),  # `delta` is taken
    ],
)
def test_only_the_full_tick_says_it(data: dict[str, Any], base: dict[str, Any]) -> None:
    assert delta_payload(data, base, "symbol") is None


def test_the_delta_event_is_made_once_and_keeps_the_id() -> None:
    bases = Bases()
    bases.reader_added("prices")
    first, second = tick(1), tick(2)
    bases.link(first)
    bases.link(second)
    assert first.base is None and delta_of(first, "symbol") is None
    delta = delta_of(second, "symbol")
    assert delta is not None and delta is delta_of(second, "symbol")
    assert delta.id == second.id and delta.tick and delta.key == second.key
    assert delta.data == {"symbol": "AAPL", "price": 102, "delta": True}


def test_logs_without_delta_readers_keep_nothing() -> None:
    bases = Bases()
    bases.reader_added("prices")
    bases.reader_removed("prices")
    bases.link(tick(1))
    second = tick(2)
    bases.link(second)
    assert second.base is None


# -- who gets what ---------------------------------------------------------------------------


def test_the_first_tick_is_full_then_deltas_while_every_tick_was_sent() -> None:
    _clock, hub, c, _ = delta_reader()
    got = []
    for n in (1, 2, 3):
        hub.dispatch(tick(n))
        got += received(c)  # written before the next tick
    assert got == [
        {"symbol": "AAPL", "price": 101, "bid": 99, "ask": 101},
        {"symbol": "AAPL", "price": 102, "delta": True},
        {"symbol": "AAPL", "price": 103, "delta": True},
    ]


def test_delta_and_full_frames_are_each_encoded_once_and_shared() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0)
    d1, d2, full = conn(clock), conn(clock), conn(clock)
    live(hub, d1, {"delta": "1"})
    live(hub, d2, {"delta": "true"})
    live(hub, full, {})
    hub.dispatch(tick(1))
    for c in (d1, d2, full):
        c.outbox.drain()
    second = tick(2)
    hub.dispatch(second)
    frames = [c.outbox.drain_frames()[0] for c in (d1, d2, full)]
    assert frames[0] is frames[1]
    assert frames[2] is second._wire["sse"]
    assert frames[0] is not frames[2] and b'"delta":true' in frames[0]


def test_websocket_codecs_encode_the_delta_like_any_event() -> None:
    bases = Bases()
    bases.reader_added("prices")
    bases.link(tick(1))
    second = tick(2)
    bases.link(second)
    delta = delta_of(second, "symbol")
    assert delta is not None
    message = orjson.loads(JSON_CODEC.event_frame(delta, "prices"))
    assert message["data"] == {"symbol": "AAPL", "price": 102, "delta": True}
    assert message["id"] == second.id
    assert msgpack.unpackb(MSGPACK_CODEC.event_frame(delta, "prices"))["data"] == message["data"]


def test_a_tick_after_one_conflated_unsent_is_full() -> None:
    _clock, hub, c, _ = delta_reader()
    hub.dispatch(tick(1))
    received(c)
    hub.dispatch(tick(2))  # queued as a delta of 1 ...
    hub.dispatch(tick(3))  # ... and superseded unsent: 3 cannot be a delta of 2
    assert received(c) == [{"symbol": "AAPL", "price": 103, "bid": 99, "ask": 101}]
    hub.dispatch(tick(4))
    assert received(c) == [{"symbol": "AAPL", "price": 104, "delta": True}]


def test_after_the_slow_consumer_policy_dropped_ticks_the_next_is_full() -> None:
    _clock, hub, c, _ = delta_reader(limit=4096)
    hub.dispatch(tick(1))
    received(c)
    hub.dispatch(tick(2, pad="x" * 5000, symbol="AAPL"))  # over the bound: ticks dropped
    assert c.outbox.sheds == 1 and not c.outbox
    hub.dispatch(tick(3, pad="x" * 10))
    assert received(c) == [{"symbol": "AAPL", "price": 103, "bid": 99, "ask": 101, "pad": "x" * 10}]


def test_a_tick_waiting_for_the_cap_is_replaced_by_a_full_tick() -> None:
    clock, hub, c, _ = delta_reader(cap=1)
    hub.dispatch(tick(1))
    assert received(c) == [{"symbol": "AAPL", "price": 101, "bid": 99, "ask": 101}]
    hub.dispatch(tick(2))  # over the cap: waits (a delta of 1)
    hub.dispatch(tick(3))  # replaces it: the client never had 2
    assert received(c) == []
    clock.advance(1)
    assert c.outbox.release() == 1
    assert received(c) == [{"symbol": "AAPL", "price": 103, "bid": 99, "ask": 101}]
    clock.advance(1)
    hub.dispatch(tick(4))
    assert received(c) == [{"symbol": "AAPL", "price": 104, "delta": True}]


def test_a_replayed_current_value_is_the_base_of_the_next_delta() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0)
    watcher = conn(clock)
    live(hub, watcher, {"delta": "1"})
    current = tick(1)
    hub.dispatch(current)
    c = conn(clock)
    hub.add_connection(c)
    sub = hub.subscribe(c, resolve_stream("prices", {"delta": "1"}, ANONYMOUS))
    assert isinstance(sub, DeltaSubscription)
    sub.replay(current)  # a resume's current value of a missed tick
    sub.go_live(None)
    assert received(c) == [current.data]
    hub.dispatch(tick(2))
    assert received(c) == [{"symbol": "AAPL", "price": 102, "delta": True}]


def test_the_base_is_the_tick_the_throttle_let_through() -> None:
    clock, hub, c, _ = delta_reader(throttle_s=0.1)
    hub.dispatch(tick(1))
    assert received(c) == [{"symbol": "AAPL", "price": 101, "bid": 99, "ask": 101}]
    hub.dispatch(tick(2, bid=50))  # waits for the window
    hub.dispatch(tick(3))  # replaces 2: bid back to 99, as in 1
    clock.advance(0.1)
    hub.release_throttled()
    assert received(c) == [{"symbol": "AAPL", "price": 103, "delta": True}]


def test_unsubscribing_stops_linking() -> None:
    _clock, hub, _c, sub = delta_reader()
    hub.unsubscribe(sub)
    hub.unsubscribe(sub)  # twice is harmless
    hub.dispatch(tick(1))
    second = tick(2)
    hub.dispatch(second)
    assert second.base is None


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("prices", {"delta": "yes"}, "`delta` must be 1 or 0"),
        ("agents", {"delta": "1"}, "`delta` does not apply to the agents stream"),
    ],
)
def test_delta_is_refused_where_it_means_nothing(path: str, params: dict[str, str], message: str) -> None:
    with pytest.raises(StreamError, match=message) as info:
        resolve_stream(path, params, ANONYMOUS)
    assert info.value.status == 400


def test_delta_off_is_accepted_anywhere() -> None:
    assert not resolve_stream("agents", {"delta": "0"}, ANONYMOUS).delta
    assert resolve_stream("prices", {"delta": "1"}, ANONYMOUS).delta
