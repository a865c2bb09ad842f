"""End to end: what a new connection gets first (SPEC sections 3 and 4): snapshots read
from state, with the id of the end of their log."""

from __future__ import annotations

from typing import Any

import pytest

from support.e2e import (
    ID_RE,
    alert,
    fill,
    open_stream,
    order,
    poll,
    price,
    publish,
    read_until_type,
    sym,
    types_of,
    uid,
)
from support.servers import ServerProcess


def _by_key(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def test_orders_snapshot_merges_updates_and_fills(server: ServerProcess) -> None:
    user = uid("osnap")
    symbol, other = sym(), sym()
    publish(
        server,
        order(user, "o-1", symbol=symbol, side="buy", qty=10, status="new"),
        order(user, "o-2", symbol=other, side="sell", qty=5, status="new", limitPrice=12.5),
        order(user, "o-3", symbol=other, side="buy", qty=1, status="new"),
    )
    publish(
        server,
        order(user, "o-1", symbol=symbol, side="buy", qty=10, status="accepted"),
        fill(user, "o-1", 10, 100.0, status="filled"),
        fill(user, "o-2", 2, 12.5, status="partially_filled"),
        order(user, "o-3", symbol=other, side="buy", qty=1, status="canceled", reason="user request"),
    )
    publish(server, order(uid("someone-else"), "o-9", symbol=symbol))
    with open_stream(server, "orders", server.token(user), initial=2) as stream:
        snap = stream.events[1]
        assert snap.event == "order:update"
        data = snap.json()
        assert data["snapshot"] is True
        assert "timestamp" in data
        orders = _by_key(data["orders"], "orderId")
        assert set(orders) == {"o-1", "o-2", "o-3"}
        o1 = orders["o-1"]
        assert (o1["symbol"], o1["side"], o1["qty"]) == (symbol, "buy", 10)
        assert o1["status"] == "filled"
        assert (o1["filledQty"], o1["filledAvgPrice"]) == (10, 100.0)
        o2 = orders["o-2"]
        assert (o2["status"], o2["filledQty"], o2["limitPrice"], o2["side"]) == (
            "partially_filled",
            2,
            12.5,
            "sell",
        )
        assert orders["o-3"]["status"] == "canceled"
        assert orders["o-3"]["reason"] == "user request"


def test_positions_snapshot_derives_from_fills_and_moves_with_marks(server: ServerProcess) -> None:
    user = uid("psnap")
    a, b = sym(), sym()
    publish(
        server,
        order(user, "o-a", symbol=a, side="buy", qty=10),
        fill(user, "o-a", 10, 100.0),
        order(user, "o-b", symbol=b, side="sell", qty=4),
        fill(user, "o-b", 4, 50.0),
    )
    token = server.token(user)
    with open_stream(server, "positions", token, initial=2) as stream:
        data = stream.events[1].json()
        assert stream.events[1].event == "position:update"
        assert data["snapshot"] is True
        positions = _by_key(data["positions"], "symbol")
        assert set(positions) == {a, b}
        pa = positions[a]
        assert (pa["quantity"], pa["entryPrice"], pa["currentPrice"]) == (10, 100, 100)
        assert (pa["value"], pa["unrealizedPnL"]) == (1000, 0)
        pb = positions[b]
        assert (pb["quantity"], pb["entryPrice"], pb["value"]) == (-4, 50, -200)
        assert data["totalValue"] == pytest.approx(800)

        # A price moves currentPrice, value, unrealizedPnL and totalValue, live...
        publish(server, price(a, 110.0))
        mark = read_until_type(stream, "position:update", lambda d: d.get("symbol") == a)
        marked = mark.json()
        assert marked["currentPrice"] == 110
        assert marked["value"] == pytest.approx(1100)
        assert marked["unrealizedPnL"] == pytest.approx(100)
        assert marked["totalValue"] == pytest.approx(900)
        assert mark.id is not None

    # ...and in the snapshot of the next connection.
    with open_stream(server, "positions", token, initial=2) as stream:
        data = stream.events[1].json()
        positions = _by_key(data["positions"], "symbol")
        assert positions[a]["currentPrice"] == 110
        assert positions[a]["unrealizedPnL"] == pytest.approx(100)
        assert positions[a]["entryPrice"] == 100
        assert data["totalValue"] == pytest.approx(900)


def test_closed_position_leaves_the_snapshot(server: ServerProcess) -> None:
    user = uid("close")
    s = sym()
    publish(server, order(user, "o-1", symbol=s, side="buy", qty=10), fill(user, "o-1", 10, 100.0))
    token = server.token(user)
    with open_stream(server, "positions", token, initial=2) as stream:
        publish(server, order(user, "o-2", symbol=s, side="sell", qty=10), fill(user, "o-2", 10, 120.0))
        closed = read_until_type(stream, "position:update", lambda d: d.get("quantity") == 0).json()
        assert closed["symbol"] == s
        assert closed["realizedPnL"] == pytest.approx(200)
    with open_stream(server, "positions", token, initial=2) as stream:
        data = stream.events[1].json()
        assert data["positions"] == []
        assert data["totalValue"] == 0


def test_trading_snapshot_has_orders_then_positions(server: ServerProcess) -> None:
    user = uid("tsnap")
    s = sym()
    publish(server, order(user, "o-1", symbol=s, side="buy", qty=3), fill(user, "o-1", 3, 10.0))
    with open_stream(server, "trading", server.token(user), initial=3) as stream:
        first, second = stream.events[1], stream.events[2]
        assert (first.event, second.event) == ("order:update", "position:update")
        assert [o["orderId"] for o in first.json()["orders"]] == ["o-1"]
        assert first.json()["snapshot"] is True
        assert second.json()["snapshot"] is True
        assert second.json()["totalValue"] == pytest.approx(30)


def test_prices_snapshot_is_initializing_with_requested_symbols_only(server: ServerProcess) -> None:
    a, b, c = sym(), sym(), sym()
    publish(server, price(a, 1.0), price(b, 2.0), price(c, 3.0), price(a, 1.5))
    with open_stream(server, f"prices?symbols={a},{b}", initial=2) as stream:
        snap = stream.events[1]
        assert snap.event == "price:update"
        data = snap.json()
        assert data["initializing"] is True
        prices = _by_key(data["prices"], "symbol")
        assert set(prices) == {a, b}
        assert prices[a]["price"] == 1.5
        assert prices[b]["price"] == 2.0
    with open_stream(server, "prices", initial=2) as stream:
        prices = _by_key(stream.events[1].json()["prices"], "symbol")
        assert {a, b, c} <= set(prices)


def test_snapshot_of_an_empty_log_has_no_id(server: ServerProcess) -> None:
    user = uid("empty")
    with open_stream(server, "orders", server.token(user), initial=2) as stream:
        data = stream.events[1].json()
        assert (data["snapshot"], data["orders"]) == (True, [])
        assert stream.events[1].id is None


@pytest.mark.parametrize("how", ["header", "query", "poll"])
def test_resuming_from_a_snapshot_id_replays_only_later_events(server: ServerProcess, how: str) -> None:
    user = uid("snapid")
    token = server.token(user)
    s = sym()
    publish(server, order(user, "o-1", symbol=s), alert(user, 1), order(user, "o-2", symbol=s))
    with open_stream(server, "orders", token, initial=2) as stream:
        snap = stream.events[1]
        assert snap.json()["snapshot"] is True
        assert snap.id is not None
        assert ID_RE.match(snap.id)
        assert snap.retry == 5000
        snap_id = snap.id
    later = publish(server, order(user, "o-3", symbol=s), alert(user, 2), fill(user, "o-1", 10, 9.0))
    if how == "poll":
        body = poll(server, "orders", token, after=snap_id).json()
        assert body["recovered"] is True
        assert [e["id"] for e in body["events"]] == [later[0], later[2]]
        return
    headers = {"Last-Event-ID": snap_id} if how == "header" else None
    path = "orders" if how == "header" else f"orders?lastEventId={snap_id}"
    with open_stream(server, path, token, headers=headers, initial=3) as stream:
        replay = stream.events[1:]
        assert types_of(replay) == ["order:update", "order:fill"]
        assert [e.id for e in replay] == [later[0], later[2]]
        assert all("snapshot" not in e.json() for e in replay)
