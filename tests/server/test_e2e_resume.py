"""End to end: resume with Last-Event-ID / ?lastEventId= and the explicit resets of
SPEC section 4."""

from __future__ import annotations

import pytest

from support.drivers import EVERY_DRIVER
from support.e2e import alert, open_stream, order, price, publish, read_until_type, sym, types_of, uid
from support.e2e_client import SSEClient
from support.servers import ServerProcess
from tickwire.core.ids import EPOCH_MAX, Position, format_id, parse_id

pytestmark = EVERY_DRIVER


def _resume(
    server: ServerProcess, path: str, token: str | None, last_id: str, how: str, initial: int = 1
) -> SSEClient:
    if how == "header":
        return open_stream(server, path, token, headers={"Last-Event-ID": last_id}, initial=initial)
    sep = "&" if "?" in path else "?"
    return open_stream(server, f"{path}{sep}lastEventId={last_id}", token, initial=initial)


@pytest.mark.parametrize("how", ["header", "query"])
def test_resume_replays_exactly_the_missed_events_once_in_order(server: ServerProcess, how: str) -> None:
    user = uid("resume")
    token = server.token(user)
    with open_stream(server, "alerts", token) as stream:
        ids = publish(server, *(alert(user, i) for i in range(5)))
        stream.read_until(6)
        seen = stream.events[1:]
        assert [e.id for e in seen] == ids
        last = seen[2].id  # the client "read" three, then dropped
        assert last is not None
    # Missed while away: two alerts of the first batch, more alerts, and other types of the same log.
    missed = publish(server, alert(user, 5), order(user, "o-1", symbol=sym()), alert(user, 6))
    missed += publish(server, alert(user, 7))
    expected_ids = [*ids[3:], missed[0], missed[2], missed[3]]
    with _resume(server, "alerts", token, last, how, initial=1 + len(expected_ids)) as stream:
        replay = stream.events[1:]
        assert types_of(replay) == ["alert:new"] * len(expected_ids), types_of(replay)
        assert [e.id for e in replay] == expected_ids
        assert [e.json()["alertId"] for e in replay] == ["a-3", "a-4", "a-5", "a-6", "a-7"]
        # Then live, still exactly once.
        live = publish(server, alert(user, 8))
        read_until_type(stream, "alert:new", lambda d: d.get("alertId") == "a-8")
        got = [e.id for e in stream.events[1:]]
        assert got == [*expected_ids, live[0]]
        assert not stream.of_type("stream:reset")


@pytest.mark.parametrize("how", ["header", "query"])
def test_resume_on_a_snapshot_stream_gets_no_snapshot(server: ServerProcess, how: str) -> None:
    user = uid("oresume")
    token = server.token(user)
    s = sym()
    first = publish(server, order(user, "o-1", symbol=s), order(user, "o-2", symbol=s))
    missed = publish(
        server, order(user, "o-3", symbol=s), alert(user, 1), order(user, "o-1", symbol=s, status="x")
    )
    with _resume(server, "orders", token, first[1], how, initial=3) as stream:
        replay = stream.events[1:3]
        assert types_of(replay) == ["order:update", "order:update"]
        assert [e.id for e in replay] == [missed[0], missed[2]]
        assert all("snapshot" not in e.json() for e in replay)
        publish(server, alert(user, "end"), order(user, "end", symbol=s))
        read_until_type(stream, "order:update", lambda d: d.get("orderId") == "end")
        assert [e.json()["orderId"] for e in stream.events[1:]] == ["o-3", "o-1", "end"]


def _assert_reset_then_snapshot(stream: SSEClient) -> None:
    assert stream.status == 200
    events = stream.read_until(3)
    assert types_of(events[:3]) == ["connected", "stream:reset", "order:update"], types_of(events)
    reset = events[1]
    assert reset.id is None
    data = reset.json()
    assert data["recovered"] is False
    assert isinstance(data["reason"], str)
    assert data["reason"]
    assert events[2].json()["snapshot"] is True


@pytest.mark.parametrize(
    "bad_id",
    ["garbage", "1735819800000-", "123-abc", "1735819800000-abc!def", "1735819800000-" + "z" * 200, "-" * 40],
)
def test_malformed_id_gets_reset_and_fresh_snapshot(server: ServerProcess, bad_id: str) -> None:
    user = uid("malformed")
    publish(server, order(user, "o-1", symbol=sym()))
    with open_stream(
        server, "orders", server.token(user), headers={"Last-Event-ID": bad_id}, initial=3
    ) as stream:
        _assert_reset_then_snapshot(stream)
        assert [o["orderId"] for o in stream.events[2].json()["orders"]] == ["o-1"]


def test_ten_kilobyte_last_event_id_is_a_reset_not_a_5xx(server: ServerProcess) -> None:
    user = uid("huge-id")
    with open_stream(
        server, "orders", server.token(user), headers={"Last-Event-ID": "9" * 10240}, initial=3
    ) as stream:
        _assert_reset_then_snapshot(stream)


def test_unknown_epoch_gets_reset(server: ServerProcess) -> None:
    user = uid("epoch")
    token = server.token(user)
    [real] = publish(server, order(user, "o-1", symbol=sym()))
    pos = parse_id(real)
    forged = format_id(int(real[:13]), Position(pos.epoch % EPOCH_MAX + 1, pos.offset, pos.tick))
    assert forged != real
    with _resume(server, "orders", token, forged, "header", initial=3) as stream:
        _assert_reset_then_snapshot(stream)
        assert [o["orderId"] for o in stream.events[2].json()["orders"]] == ["o-1"]


def test_id_ahead_of_the_log_gets_reset(server: ServerProcess) -> None:
    user = uid("ahead")
    [real] = publish(server, order(user, "o-1", symbol=sym()))
    pos = parse_id(real)
    forged = format_id(int(real[:13]), Position(pos.epoch, pos.offset + 50, pos.tick + 50))
    with _resume(server, "orders", server.token(user), forged, "query", initial=3) as stream:
        _assert_reset_then_snapshot(stream)


def test_id_older_than_retained_history_gets_reset(server: ServerProcess) -> None:
    """TICKWIRE_USER_BUFFER is 100: after 120 events the first 20 are gone. Resuming from
    event 20 still sees everything after it; resuming from event 19 cannot."""
    user = uid("trim")
    token = server.token(user)
    s = sym()
    ids = publish(server, *(order(user, f"o-{i}", symbol=s) for i in range(120)))
    with _resume(server, "orders", token, ids[19], "header", initial=101) as stream:
        assert not stream.of_type("stream:reset")
        assert [e.id for e in stream.events[1:]] == ids[20:]
    with _resume(server, "orders", token, ids[0], "header", initial=3) as stream:
        _assert_reset_then_snapshot(stream)
        assert len(stream.events[2].json()["orders"]) == 120
    with _resume(server, "orders", token, ids[18], "query", initial=3) as stream:
        _assert_reset_then_snapshot(stream)


def test_reset_on_a_log_stream_is_followed_by_the_buffered_events(server: ServerProcess) -> None:
    user = uid("trim-alerts")
    ids = publish(server, *(alert(user, i) for i in range(110)))
    with _resume(server, "alerts", server.token(user), ids[0], "header", initial=102) as stream:
        assert types_of(stream.events[:2]) == ["connected", "stream:reset"]
        assert stream.events[1].json()["recovered"] is False
        assert [e.id for e in stream.events[2:]] == ids[10:]


def test_resume_from_a_price_tick_gets_current_values_not_every_tick(server: ServerProcess) -> None:
    a, b = sym(), sym()
    with open_stream(server, f"prices?symbols={a},{b}", initial=2) as stream:
        [tick_id] = publish(server, price(a, 100.0))
        event = read_until_type(stream, "price:update", lambda d: d.get("price") == 100.0)
        assert event.id == tick_id
    publish(server, price(a, 101.0))
    publish(server, price(a, 102.0), price(sym(), 5.0))
    publish(server, price(a, 103.0), price(b, 7.0))
    with _resume(server, f"prices?symbols={a},{b}", None, tick_id, "header", initial=3) as stream:
        assert not stream.of_type("stream:reset")
        replay = stream.events[1:3]
        assert types_of(replay) == ["price:update", "price:update"]
        assert all("initializing" not in e.json() for e in replay)
        assert sorted((e.json()["symbol"], e.json()["price"]) for e in replay) == sorted(
            [(a, 103.0), (b, 7.0)]
        )
        publish(server, price(a, 104.0))
        read_until_type(stream, "price:update", lambda d: d.get("price") == 104.0)
        assert [e.json()["price"] for e in stream.events[1:] if e.json()["symbol"] == a] == [103.0, 104.0]


def test_resume_from_a_position_mark_replays_later_log_events_then_current_mark(
    server: ServerProcess,
) -> None:
    user = uid("markres")
    token = server.token(user)
    s = sym()
    publish(
        server,
        order(user, "o-1", symbol=s, side="buy", qty=10),
        {
            "type": "order:fill",
            "user": user,
            "data": {"orderId": "o-1", "filledQty": 10, "filledAvgPrice": 100.0, "status": "filled"},
        },
    )
    with open_stream(server, "positions", token, initial=2) as stream:
        publish(server, price(s, 101.0))
        mark = read_until_type(stream, "position:update", lambda d: d.get("currentPrice") == 101.0)
        assert mark.id is not None
    publish(server, price(s, 102.0))
    publish(server, price(s, 103.0))
    with _resume(server, "positions", token, mark.id, "header", initial=2) as stream:
        assert not stream.of_type("stream:reset")
        replay = stream.events[1:2]
        assert types_of(replay) == ["position:update"]
        assert replay[0].json()["currentPrice"] == 103.0
        assert "snapshot" not in replay[0].json()
