"""The state machine's table, and local state (snapshots + deltas) against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.servers import ServerProcess
from tickwire.client import Client, ConnectionState, LocalState
from tickwire.client.state_machine import TRANSITIONS, IllegalTransition, StateMachine

S = ConnectionState


def test_the_documented_path_is_legal_and_shortcuts_are_not() -> None:
    machine = StateMachine()
    seen = []
    machine.listen(lambda change: seen.append((change.old, change.new, change.reason)))
    for state in (
        S.CONNECTING,
        S.RECONNECTING,
        S.FALLBACK,
        S.CONNECTED,
        S.RECONNECTING,
        S.CONNECTED,
        S.CLOSED,
    ):
        machine.move(state, f"to {state.value}")
    assert [new for _, new, _ in seen][-1] is S.CLOSED
    assert seen[2] == (S.RECONNECTING, S.FALLBACK, "to fallback")
    with pytest.raises(IllegalTransition):
        machine.move(S.CONNECTED)  # closed is terminal
    fresh = StateMachine()
    with pytest.raises(IllegalTransition):
        fresh.move(S.CONNECTED)  # must connect first
    assert TRANSITIONS[S.CLOSED] == frozenset()
    assert [s.code for s in S] == [0, 1, 2, 3, 4, 5]


def test_a_failing_listener_does_not_break_the_machine() -> None:
    machine = StateMachine()
    machine.listen(lambda change: 1 / 0)  # type: ignore[func-returns-value]
    machine.move(S.CONNECTING)
    assert machine.state is S.CONNECTING


def test_local_state_merges_snapshots_and_deltas() -> None:
    state = LocalState()
    state.apply("order:update", {"snapshot": True, "orders": [{"orderId": "o1", "status": "new", "qty": 5}]})
    state.apply("order:fill", {"orderId": "o1", "filledQty": 5, "status": "filled"})
    state.apply("order:update", {"orderId": "o2", "status": "new"})
    assert state.orders["o1"] == {"orderId": "o1", "status": "filled", "qty": 5, "filledQty": 5}
    state.apply(
        "position:update", {"snapshot": True, "positions": [{"symbol": "A", "quantity": 1}], "totalValue": 10}
    )
    state.apply("position:update", {"symbol": "B", "quantity": 2, "totalValue": 30})
    state.apply("position:update", {"symbol": "A", "quantity": 0, "realizedPnL": 1, "totalValue": 20})
    assert list(state.positions) == ["B"] and state.total_value == 20
    state.apply("price:update", {"initializing": True, "prices": [{"symbol": "A", "price": 1}]})
    state.apply("price:update", {"symbol": "A", "price": 2, "bid": 1.9})
    assert state.price("A") == 2 and state.prices["A"]["bid"] == 1.9
    state.apply("order:update", {"snapshot": True, "orders": []})  # a fresh snapshot replaces
    assert dict(state.orders) == {}
    with pytest.raises(TypeError):
        state.orders["x"] = {}  # type: ignore[index]


def test_local_state_follows_a_real_trading_stream(server: ServerProcess, kit: Any) -> None:
    user = kit.uid()
    symbol = kit.sym()

    async def main() -> None:
        async with kit.Publisher(server) as publish:
            await publish(kit.order(user, "o1", symbol=symbol, qty=10))  # before connecting: in the snapshot
            client = Client(
                server.url,
                ["trading", f"prices?symbols={symbol}"],
                token=server.token(user),
                transport="ws",
                **kit.FAST,
            )
            async with client:
                await client.wait_for_state(ConnectionState.CONNECTED)
                await publish(
                    {
                        "type": "order:fill",
                        "user": user,
                        "data": {"orderId": "o1", "filledQty": 10, "filledAvgPrice": 100, "status": "filled"},
                    },
                    kit.price(symbol, 101.0),
                )
                async with asyncio.timeout(10):
                    async for _ in client.events():
                        position = client.local.positions.get(symbol)
                        if (
                            position
                            and position.get("currentPrice") == 101.0
                            and client.local.price(symbol) == 101.0
                        ):
                            break
                assert client.local.orders["o1"]["status"] == "filled"
                assert client.local.orders["o1"]["symbol"] == symbol  # merged from the snapshot
                assert client.local.positions[symbol]["quantity"] == 10
                assert client.local.total_value == pytest.approx(1010)

    asyncio.run(main())
