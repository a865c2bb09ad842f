from __future__ import annotations

import pytest

from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.core.streams import ANONYMOUS, Principal
from tickwire.domain.catalog import resolve_stream
from tickwire.errors import StreamError

ALICE = Principal("alice")
ADMIN = Principal("root", frozenset({"admin"}))


def ev(type_: str, **data: object) -> Event:
    return Event(type_, dict(data), "user:alice", Position(1, 1, 1), 0)


@pytest.mark.parametrize(
    ("path", "accepts", "rejects"),
    [
        ("orders", ["order:update", "order:fill"], ["position:update", "alert:new"]),
        ("positions", ["position:update"], ["order:update"]),
        (
            "trading",
            ["order:update", "order:fill", "position:update", "trade:new"],
            ["alert:new", "ai:decision"],
        ),
        ("alerts", ["alert:new"], ["order:update"]),
        ("ai-decisions", ["ai:decision"], ["strategy:update"]),
    ],
)
def test_user_streams_filter_by_type(path: str, accepts: list[str], rejects: list[str]) -> None:
    stream = resolve_stream(path, {}, ALICE)
    assert stream.log == "user:alice"
    assert all(stream.matches(ev(t, symbol="A")) for t in accepts)
    assert not any(stream.matches(ev(t, symbol="A")) for t in rejects)


def test_user_streams_need_a_user() -> None:
    with pytest.raises(StreamError) as err:
        resolve_stream("orders", {}, ANONYMOUS)
    assert err.value.status == 401 and err.value.message == "No valid session found"


def test_public_streams_need_nobody() -> None:
    assert resolve_stream("prices", {}, ANONYMOUS).log == "prices"
    assert resolve_stream("agents", {}, ANONYMOUS).log == "agent"


def test_price_symbols_filter() -> None:
    stream = resolve_stream("prices", {"symbols": "AAPL, MSFT"}, ANONYMOUS)
    assert stream.keys == frozenset({"AAPL", "MSFT"})
    tick = Event("price:update", {"symbol": "AAPL"}, "prices", Position(1, 0, 1), 0)
    other = Event("price:update", {"symbol": "TSLA"}, "prices", Position(1, 0, 2), 0)
    assert stream.matches(tick) and not stream.matches(other)


@pytest.mark.parametrize("symbols", ["A B", "A;DROP", "x" * 65, ",".join(f"S{i}" for i in range(201))])
def test_bad_symbols_are_400(symbols: str) -> None:
    with pytest.raises(StreamError) as err:
        resolve_stream("prices", {"symbols": symbols}, ANONYMOUS)
    assert err.value.status == 400


def test_trading_of_another_user_is_forbidden_except_for_admins() -> None:
    with pytest.raises(StreamError) as err:
        resolve_stream("trading", {"userId": "bob"}, ALICE)
    assert err.value.status == 403
    assert resolve_stream("trading", {"userId": "alice"}, ALICE).log == "user:alice"
    assert resolve_stream("trading", {"userId": "bob"}, ADMIN).log == "user:bob"
    assert resolve_stream("trading", {}, ALICE).log == "user:alice"


def test_strategy_stream_names_and_filter() -> None:
    stream = resolve_stream("strategies/s1", {}, ALICE)
    assert stream.name == "strategies.s1" and stream.path == "strategies/s1"
    assert stream.matches(ev("strategy:update", strategyId="s1"))
    assert not stream.matches(ev("strategy:update", strategyId="s2"))


@pytest.mark.parametrize("path", ["nope", "orders/x", "strategies", "", "prices/AAPL"])
def test_unknown_streams_are_404(path: str) -> None:
    with pytest.raises(StreamError) as err:
        resolve_stream(path, {}, ALICE)
    assert err.value.status == 404


def test_snapshot_payloads() -> None:
    stream = resolve_stream("trading", {}, ALICE)
    states = {
        "orders": [{"orderId": "o1", "status": "new"}],
        "positions": [
            {"symbol": "A", "quantity": 2, "value": 20.0},
            {"symbol": "B", "quantity": 0, "value": 0.0},
            {"symbol": "C", "quantity": -1, "value": -5.0},
        ],
    }
    (t1, orders), (t2, positions) = stream.snapshot_payloads(states, 1767350400000)
    assert t1 == "order:update" and orders["snapshot"] is True and orders["orders"] == states["orders"]
    assert t2 == "position:update" and [p["symbol"] for p in positions["positions"]] == ["A", "C"]
    assert positions["totalValue"] == 15.0
    assert orders["timestamp"] == "2026-01-02T10:40:00.000Z"


def test_price_snapshot_keeps_requested_symbols() -> None:
    stream = resolve_stream("prices", {"symbols": "A"}, ANONYMOUS)
    ((t, data),) = stream.snapshot_payloads({"prices": [{"symbol": "A"}, {"symbol": "B"}]}, 0)
    assert t == "price:update" and data["initializing"] is True and data["prices"] == [{"symbol": "A"}]
