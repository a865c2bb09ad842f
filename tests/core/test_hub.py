from __future__ import annotations

from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection
from tickwire.core.event import Event
from tickwire.core.hub import Hub
from tickwire.core.ids import Position
from tickwire.core.streams import ANONYMOUS, Principal
from tickwire.domain.catalog import resolve_stream
from tickwire.wire.sse import SSECodec, SSEParser

CODEC = SSECodec()


def conn(clock: FakeClock, user: str | None = "alice") -> Connection:
    return Connection(
        client_id=f"{user}-x",
        user=user,
        transport="sse",
        codec=CODEC,
        clock=clock,
        outbox_limit=1 << 20,
        notify=lambda: None,
    )


def events_of(c: Connection) -> list[tuple[str, str]]:
    return [(e.event, e.data) for e in SSEParser().feed(c.outbox.drain())]


def price(symbol: str, n: int, key: bool = True) -> Event:
    return Event(
        "price:update",
        {"symbol": symbol, "price": n},
        "prices",
        Position(1, 0, n),
        n,
        key=f"prices|prices|{symbol}" if key else None,
        tick=True,
    )


def live(
    hub: Hub, c: Connection, path: str, params: dict[str, str] | None = None, who: Principal = ANONYMOUS
) -> None:
    hub.add_connection(c)
    sub = hub.subscribe(c, resolve_stream(path, params or {}, who))
    sub.go_live(None)


def test_price_dispatch_touches_only_that_symbols_subscribers() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0)
    aapl, msft, every = conn(clock, None), conn(clock, None), conn(clock, None)
    live(hub, aapl, "prices", {"symbols": "AAPL"})
    live(hub, msft, "prices", {"symbols": "MSFT"})
    live(hub, every, "prices")
    assert hub.dispatch(price("AAPL", 1)) == 2
    assert [d for _, d in events_of(aapl)] == ['{"symbol":"AAPL","price":1}']
    assert events_of(msft) == []
    assert len(events_of(every)) == 1


def test_the_frame_is_encoded_once_and_shared() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0)
    a, b = conn(clock, None), conn(clock, None)
    live(hub, a, "prices")
    live(hub, b, "prices")
    event = price("AAPL", 1)
    hub.dispatch(event)
    assert a.outbox._entries[0].frame is b.outbox._entries[0].frame


def test_user_events_reach_only_that_users_matching_streams() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0)
    alice_orders, alice_alerts, bob_orders = conn(clock), conn(clock), conn(clock, "bob")
    live(hub, alice_orders, "orders", who=Principal("alice"))
    live(hub, alice_alerts, "alerts", who=Principal("alice"))
    live(hub, bob_orders, "orders", who=Principal("bob"))
    hub.dispatch(Event("order:update", {"orderId": "1"}, "user:alice", Position(1, 1, 1), 0))
    assert [t for t, _ in events_of(alice_orders)] == ["order:update"]
    assert events_of(alice_alerts) == []
    assert events_of(bob_orders) == []


def test_a_holding_subscription_releases_only_events_after_its_start() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0)
    c = conn(clock)
    hub.add_connection(c)
    sub = hub.subscribe(c, resolve_stream("alerts", {}, Principal("alice")))
    for i in (1, 2, 3):
        hub.dispatch(Event("alert:new", {"i": i}, "user:alice", Position(1, i, i), 0))
    assert events_of(c) == []  # held while the replay is read
    sub.go_live(Position(1, 2, 2))  # the replay covered offsets 1 and 2
    assert [d for _, d in events_of(c)] == ['{"i":3}']
    hub.dispatch(Event("alert:new", {"i": 4}, "user:alice", Position(1, 4, 4), 0))
    assert [d for _, d in events_of(c)] == ['{"i":4}']


def test_the_eleventh_connection_closes_the_oldest_with_connection_limit() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0, max_conns_per_user=10)
    conns = [conn(clock) for _ in range(11)]
    for c in conns[:10]:
        assert hub.add_connection(c) == []
    assert hub.add_connection(conns[10]) == [conns[0]]
    assert conns[0].closing
    ((kind, data),) = events_of(conns[0])
    assert kind == "connection:limit" and '"limit":10' in data
    assert hub.user_connection_count("alice") == 10
    assert not any(c.closing for c in conns[1:])


def test_removing_the_last_connection_forgets_the_user() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0)
    a, b = conn(clock), conn(clock)
    live(hub, a, "orders", who=Principal("alice"))
    live(hub, b, "orders", who=Principal("alice"))
    hub.remove_connection(a)
    assert hub.clients_per_user() == {"alice": 1}
    hub.remove_connection(b)
    assert hub.clients_per_user() == {} and hub.user_connection_count("alice") == 0
    assert hub.dispatch(Event("order:update", {}, "user:alice", Position(1, 1, 1), 0)) == 0


def test_public_ticks_are_throttled_once_for_all_subscribers() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0.1)
    a, b = conn(clock, None), conn(clock, None)
    live(hub, a, "prices")
    live(hub, b, "prices")
    hub.dispatch(price("AAPL", 1))
    hub.dispatch(price("AAPL", 2))
    hub.dispatch(price("AAPL", 3))
    assert [d for _, d in events_of(a)] == ['{"symbol":"AAPL","price":1}']
    clock.advance(0.1)
    hub.release_throttled()
    assert [d for _, d in events_of(a)] == ['{"symbol":"AAPL","price":3}']
    # b was not drained in between: its outbox kept only the latest value.
    assert [d for _, d in events_of(b)] == ['{"symbol":"AAPL","price":3}']


def test_error_alerts_are_urgent_and_never_throttled() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=10)
    c = conn(clock)
    live(hub, c, "alerts", who=Principal("alice"))
    for i in range(3):
        e = Event(
            "alert:new",
            {"level": "error", "i": i, "urgent": True},  # as the pipeline flags it
            "user:alice",
            Position(1, i + 1, i + 1),
            0,
            key="k",
        )
        assert e.urgent
        hub.dispatch(e)
    assert len(events_of(c)) == 3


def test_broadcast_reaches_every_connection_including_anonymous() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0)
    a, b = conn(clock), conn(clock, None)
    hub.add_connection(a)
    hub.add_connection(b)
    assert hub.broadcast("test", {"message": "hi"}) == 2
    assert events_of(b) == [("test", '{"message":"hi"}')]
