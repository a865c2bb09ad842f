"""Typed payloads (client/models.py): every SPEC event type round-trips through its model,
snapshots are their own types, unknown fields are kept, and a real server's events arrive
typed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.servers import ServerProcess
from tickwire.client import Client
from tickwire.client import models as m
from tickwire.client.models import payload

TS = "2026-01-02T10:30:00.000Z"

# One payload per SPEC event type (sections 3, 5, 6, 12, 13), every field the SPEC names.
SAMPLES: list[tuple[str, dict[str, Any], type[m.Payload]]] = [
    (
        "order:update",
        {
            "orderId": "o1",
            "symbol": "AAPL",
            "side": "buy",
            "qty": 10,
            "status": "canceled",
            "reason": "user",
            "type": "limit",
            "limitPrice": 101.5,
            "timestamp": TS,
        },
        m.OrderUpdate,
    ),
    (
        "order:fill",
        {
            "orderId": "o1",
            "symbol": "AAPL",
            "filledQty": 10,
            "filledAvgPrice": 100.25,
            "status": "filled",
            "timestamp": TS,
        },
        m.OrderFill,
    ),
    (
        "position:update",
        {
            "symbol": "AAPL",
            "quantity": -5,
            "entryPrice": 100,
            "currentPrice": 99,
            "value": -495,
            "unrealizedPnL": 5,
            "totalValue": 1000,
            "timestamp": TS,
        },
        m.PositionUpdate,
    ),
    (
        "position:update",
        {"symbol": "AAPL", "quantity": 0, "realizedPnL": 12.5, "timestamp": TS},
        m.PositionUpdate,
    ),
    (
        "trade:new",
        {"tradeId": "t1", "symbol": "AAPL", "side": "sell", "price": 99, "qty": 5, "timestamp": TS},
        m.TradeNew,
    ),
    (
        "price:update",
        {
            "symbol": "AAPL",
            "price": 100,
            "bid": 99.9,
            "ask": 100.1,
            "size": 3,
            "source": "core",
            "exchangeTs": 1767349800000,
            "timestamp": TS,
        },
        m.PriceUpdate,
    ),
    ("price:update", {"symbol": "AAPL", "delta": True, "bid": 99.8, "timestamp": TS}, m.PriceUpdate),
    (
        "alert:new",
        {
            "alertId": "a1",
            "ruleId": "r1",
            "kind": "price_above",
            "symbol": "AAPL",
            "severity": "error",
            "level": "error",
            "message": "AAPL above 100",
            "value": 101,
            "threshold": 100,
            "urgent": True,
            "timestamp": TS,
        },
        m.Alert,
    ),
    ("alert:ack", {"alertId": "a1", "ackedAt": TS, "by": "u1", "timestamp": TS}, m.AlertAck),
    (
        "ai:decision",
        {
            "agentId": "g1",
            "symbol": "AAPL",
            "action": "buy",
            "confidence": 0.8,
            "reasoning": "momentum",
            "timestamp": TS,
        },
        m.AiDecision,
    ),
    ("agent:status", {"agentId": "g1", "state": "running", "symbol": "AAPL", "timestamp": TS}, m.AgentStatus),
    (
        "strategy:update",
        {
            "strategyId": "s1",
            "status": "running",
            "signal": "long",
            "symbol": "AAPL",
            "action": "buy",
            "confidence": 0.7,
            "timestamp": TS,
        },
        m.StrategyUpdate,
    ),
    (
        "provider:status",
        {
            "name": "core",
            "kind": "tickwire",
            "state": "connected",
            "symbols": ["AAPL"],
            "reason": None,
            "messages": 42,
            "lastMessageAt": TS,
            "timestamp": TS,
        },
        m.ProviderStatus,
    ),
    (
        "scan:result",
        {
            "scanId": "sc1",
            "symbol": "AAPL",
            "value": 3.2,
            "reason": "pct_move",
            "hash": "h1",
            "timestamp": TS,
        },
        m.ScanResult,
    ),
    (
        "scan:status",
        {"cycle": 3, "scanned": 50, "total": 50, "results": 2, "durationMs": 12.5, "timestamp": TS},
        m.ScanStatus,
    ),
    ("connected", {"clientId": "u1-orders-1", "stream": "orders", "v": 1, "timestamp": TS}, m.Connected),
    ("stream:reset", {"recovered": False, "reason": "history_trimmed", "timestamp": TS}, m.StreamReset),
    ("connection:limit", {"message": "too many", "limit": 10}, m.ConnectionLimitNotice),
    ("auth:expired", {"message": "token expired"}, m.AuthExpiredNotice),
    ("test", {"message": "hello", "timestamp": TS}, m.TestMessage),
    (
        "order:update",
        {
            "snapshot": True,
            "orders": [{"orderId": "o1", "symbol": "AAPL", "status": "new", "venue": "x"}],
            "timestamp": TS,
        },
        m.OrdersSnapshot,
    ),
    (
        "position:update",
        {
            "snapshot": True,
            "positions": [{"symbol": "AAPL", "quantity": 1, "value": 100}],
            "totalValue": 100,
            "timestamp": TS,
        },
        m.PositionsSnapshot,
    ),
    (
        "price:update",
        {"initializing": True, "prices": [{"symbol": "AAPL", "price": 100}], "timestamp": TS},
        m.PricesSnapshot,
    ),
]


@pytest.mark.parametrize(
    ("type_", "data", "model"), SAMPLES, ids=[f"{t}-{c.__name__}" for t, _, c in SAMPLES]
)
def test_every_spec_event_type_round_trips(type_: str, data: dict[str, Any], model: type[m.Payload]) -> None:
    typed = payload(type_, data)
    assert type(typed) is model
    assert typed.to_dict() == data
    assert model.from_dict(typed.to_dict()) == typed
    assert typed["timestamp" if "timestamp" in data else next(iter(data))] is not None  # reads like the dict
    extended = {**data, "somethingNew": {"nested": [1, 2]}}
    kept = payload(type_, extended)
    assert kept.extra["somethingNew"] == {"nested": [1, 2]} and kept.to_dict() == extended


def test_fields_are_snake_case_and_snapshots_name_no_symbol() -> None:
    position = payload("position:update", SAMPLES[2][1])
    assert isinstance(position, m.PositionUpdate)
    assert (position.unrealized_pnl, position.total_value, position.entry_price) == (5, 1000, 100)
    snapshot = payload("order:update", SAMPLES[-3][1])
    assert isinstance(snapshot, m.OrdersSnapshot) and snapshot.symbol is None
    assert snapshot.orders is not None and snapshot.orders[0].order_id == "o1"
    assert snapshot.orders[0].extra == {"venue": "x"}
    for _, data, model in SAMPLES[-3:]:
        assert payload(_, data).symbol is None and issubclass(model, m.Snapshot)
    unknown = payload("custom:thing", {"a": 1})
    assert type(unknown) is m.Payload and unknown.extra == {"a": 1}
    assert payload("price:update", "not an object") == "not an object"


def test_a_real_servers_events_arrive_typed(server: ServerProcess, kit: Any) -> None:
    user = kit.uid("typed")
    symbol = kit.sym()
    sid = kit.uid("s")
    published = [
        {
            "type": "order:update",
            "user": user,
            "data": {"orderId": "o1", "symbol": symbol, "side": "buy", "qty": 2, "status": "new"},
        },
        {
            "type": "order:fill",
            "user": user,
            "data": {
                "orderId": "o1",
                "symbol": symbol,
                "side": "buy",
                "filledQty": 2,
                "filledAvgPrice": 10,
                "status": "filled",
            },
        },
        {
            "type": "trade:new",
            "user": user,
            "data": {"tradeId": "t1", "symbol": symbol, "side": "buy", "price": 10, "qty": 2},
        },
        {"type": "alert:new", "user": user, "data": {"alertId": "al1", "level": "error", "message": "boom"}},
        {
            "type": "ai:decision",
            "user": user,
            "data": {"agentId": "g1", "symbol": symbol, "action": "buy", "confidence": 0.5},
        },
        {"type": "strategy:update", "user": user, "data": {"strategyId": sid, "status": "running"}},
        {"type": "price:update", "data": {"symbol": symbol, "price": 11, "bid": 10.9, "ask": 11.1}},
        {"type": "agent:status", "data": {"agentId": "g1", "state": "running"}},
    ]
    wanted = {
        m.OrderUpdate,
        m.OrderFill,
        m.TradeNew,
        m.PositionUpdate,
        m.Alert,
        m.AiDecision,
        m.StrategyUpdate,
        m.PriceUpdate,
        m.AgentStatus,
        m.OrdersSnapshot,
        m.PositionsSnapshot,
        m.PricesSnapshot,
    }

    async def main() -> set[type[Any]]:
        server.publish(published[5])  # the strategy exists before it is read
        streams = [
            "trading",
            "alerts",
            "ai-decisions",
            f"strategies/{sid}",
            f"prices?symbols={symbol}",
            "agents",
        ]
        client = Client(server.url, streams, token=server.token(user), transport="ws", **kit.FAST)
        seen: set[type[Any]] = set()
        async with client, kit.Publisher(server) as publish, asyncio.timeout(15):
            await client.ready()
            await publish(*published)
            async for event in client.events():
                seen.add(type(event.data))
                assert event.data.to_dict() == event.raw
                if wanted <= seen:
                    break
        return seen

    seen = asyncio.run(main())
    assert wanted <= seen
