"""End to end: one user's events never reach another user (SPEC sections 1, 2 and 5)."""

from __future__ import annotations

from typing import Any

from support.e2e import (
    alert,
    assert_error,
    fill,
    get,
    open_stream,
    order,
    poll,
    publish,
    read_until_match,
    sym,
    uid,
)
from support.e2e_client import SSEClient
from support.servers import ServerProcess


def _strategy(user: str, strategy_id: str, **data: Any) -> dict[str, Any]:
    return {"type": "strategy:update", "user": user, "data": {"strategyId": strategy_id, **data}}


def _every_user_event(user: str, symbol: str, strategy_id: str, tag: str) -> list[dict[str, Any]]:
    return [
        order(user, f"{tag}-o", symbol=symbol, side="buy", qty=5),
        fill(user, f"{tag}-o", 5, 20.0),
        {"type": "trade:new", "user": user, "data": {"tradeId": f"{tag}-t", "symbol": symbol}},
        {"type": "ai:decision", "user": user, "data": {"decisionId": f"{tag}-d"}},
        _strategy(user, strategy_id, signal=tag),
        alert(user, tag),
        {
            "type": "position:update",
            "user": user,
            "data": {"symbol": f"{tag}-pos", "quantity": 1, "entryPrice": 1.0},
        },
    ]


def test_bob_never_sees_alices_events_on_any_stream(server: ServerProcess) -> None:
    alice, bob = uid("alice"), uid("bob")
    symbol = sym()  # both hold it, so a price mark reaches both, each with their own numbers
    alice_strat, bob_strat = uid("st"), uid("st")
    publish(server, _strategy(alice, alice_strat, status="new"), _strategy(bob, bob_strat, status="new"))
    publish(server, order(bob, "bob-base", symbol=symbol, side="buy", qty=1), fill(bob, "bob-base", 1, 10.0))
    bob_token = server.token(bob)
    paths = {
        "orders": 2,
        "positions": 2,
        "trading": 3,
        "ai-decisions": 1,
        "alerts": 1,
        f"strategies/{bob_strat}": 2,
    }
    streams: dict[str, SSEClient] = {}
    try:
        for path, initial in paths.items():
            streams[path] = open_stream(server, path, bob_token, initial=initial)
            if path == "orders":
                assert [o["orderId"] for o in streams[path].events[1].json()["orders"]] == ["bob-base"]
        skip = {path: len(s.events) for path, s in streams.items()}
        # Alice: every event type, including one naming Bob's strategy id (it stays on her log).
        publish(server, *_every_user_event(alice, symbol, alice_strat, "alice"))
        publish(server, _strategy(alice, bob_strat, signal="alice"))
        publish(server, {"type": "price:update", "data": {"symbol": symbol, "price": 11.0}})
        # Then Bob's own events: each stream reads up to them.
        publish(server, *_every_user_event(bob, symbol, bob_strat, "bob"))
        for path, stream in streams.items():
            end = read_until_match(
                stream, lambda e: any(isinstance(v, str) and v.startswith("bob") for v in e.json().values())
            )
            for event in stream.events[skip[path] : stream.events.index(end) + 1]:
                assert "alice" not in event.data, (path, event)
                data = event.json()
                if event.event == "position:update" and data.get("symbol") == symbol:
                    assert data["quantity"] in (1, 6), (path, data)  # Bob's 1 (+5), never Alice's 5
    finally:
        for stream in streams.values():
            stream.close()
    # Nor by polling.
    for stream_name in ("alerts", "ai-decisions", "orders", "trading", f"strategies/{bob_strat}"):
        body = poll(server, stream_name, bob_token).json()
        assert "alice" not in str(body), (stream_name, body)


def test_bob_cannot_read_alices_trading_or_strategy(server: ServerProcess) -> None:
    alice, bob = uid("alice"), uid("bob")
    strat = uid("st")
    publish(server, _strategy(alice, strat, status="new"), order(alice, "o-1", symbol=sym()))
    bob_token = server.token(bob)
    assert_error(get(server, f"/api/stream/trading?userId={alice}", bob_token), 403)
    assert_error(get(server, f"/api/stream/strategies/{strat}", bob_token), 403)
    assert_error(poll(server, "trading", bob_token, userId=alice), 403)
    assert_error(poll(server, f"strategies/{strat}", bob_token), 403)
    # Bob publishing to the same strategy id does not make it his.
    publish(server, _strategy(bob, strat, signal="mine?"))
    assert_error(get(server, f"/api/stream/strategies/{strat}", bob_token), 403)
    # Alice herself (and an admin) may.
    body = poll(server, "trading", server.token(alice), userId=alice).json()
    assert body["events"][0]["data"]["orders"][0]["orderId"] == "o-1"
    body = poll(server, f"strategies/{strat}", server.token(uid("root"), "admin")).json()
    assert [e["data"].get("status") for e in body["events"]] == ["new"]
