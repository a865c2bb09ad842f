"""tickwire's catalogue: the event types a trading backend publishes (SPEC sections 3, 9)
and the streams that read them (SPEC section 2).

Everything trading-specific the generic parts need is declared here, as data: which log an
event goes to, which keyed state it updates, what a valid payload looks like, which events
are urgent, which streams exist, what their snapshots look like and which keyed values are
finished (evicted first when state is full).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tickwire.core.event import EventType
from tickwire.core.streams import Catalog, Principal, SnapshotPart, Stream, StreamDef
from tickwire.domain.portfolio import TERMINAL_ORDER_STATUSES

PRICES_LOG = "prices"
AGENT_LOG = "agent"
SCANS_LOG = "scans"  # public scans' events (a user scan's go to its owner's log)
CHAIN_LOG = "chain"  # on-chain transactions from upstream providers (helius), by account
PROVIDERS_LOG = "providers"  # the state of every upstream connection (SPEC 12)
ALERT_LEVELS = ("info", "warning", "error")
FILL_STATUSES = ("filled", "partially_filled")
ORDER_TYPES = frozenset({"order:update", "order:fill"})

EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType(
            "order:update",
            "user",
            state=("orders", "orderId"),
            required=("orderId",),
            numbers=("qty", "limitPrice"),
            non_negative=frozenset({"qty", "limitPrice"}),
            texts=("symbol", "side", "status", "type", "reason"),
        ),
        EventType(
            "order:fill",
            "user",
            state=("orders", "orderId"),
            required=("orderId",),
            numbers=("filledQty", "filledAvgPrice"),
            non_negative=frozenset({"filledQty", "filledAvgPrice"}),
            texts=("symbol", "side"),
            choices=(("status", FILL_STATUSES),),
        ),
        EventType(
            "position:update",
            "user",
            state=("positions", "symbol"),
            required=("symbol",),
            numbers=("quantity", "entryPrice", "currentPrice", "value", "unrealizedPnL", "realizedPnL"),
            non_negative=frozenset({"entryPrice", "currentPrice"}),
            texts=("symbol",),
        ),
        EventType(
            "trade:new",
            "user",
            # Without a user (published by an upstream, never by HTTP): the public chain log.
            public_log=CHAIN_LOG,
            numbers=("price", "qty"),
            non_negative=frozenset({"price", "qty"}),
            texts=("symbol", "side", "tradeId", "signature", "source"),
        ),
        EventType("ai:decision", "user", numbers=("confidence",), texts=("symbol", "action", "agentId")),
        EventType(
            "strategy:update",
            "user",
            state=("strategies", "strategyId"),
            required=("strategyId",),
            numbers=("confidence",),
            texts=("strategyId", "symbol", "status", "signal", "action"),
            item_field="strategyId",
            sequence_field="strategyId",
        ),
        EventType(
            "alert:new",
            "user",
            required=("message",),
            texts=("message", "symbol", "alertId", "ruleId"),
            choices=(("level", ALERT_LEVELS), ("severity", ALERT_LEVELS)),
            defaults=(("level", "info"),),
            urgent_when=("level", "error"),
        ),
        EventType("alert:ack", "user", required=("alertId",), texts=("alertId", "ackedAt", "by")),
        EventType(
            "scan:result",
            "public",
            public_log=SCANS_LOG,
            required=("scanId", "symbol"),
            numbers=("value",),
            texts=("scanId", "symbol", "reason", "hash"),
            sequence_field="scanId",
        ),
        EventType(
            "scan:status",
            "public",
            public_log=SCANS_LOG,
            state=("scans", "scanId"),
            always_tick=True,
            required=("scanId",),
            numbers=("cycle", "scanned", "total", "results", "durationMs"),
            texts=("scanId", "state"),
        ),
        EventType(
            "price:update",
            "public",
            public_log=PRICES_LOG,
            state=("prices", "symbol"),
            always_tick=True,
            required=("symbol",),
            numbers=("price", "bid", "ask", "size"),
            non_negative=frozenset({"price", "bid", "ask", "size"}),
            texts=("symbol", "source"),
        ),
        EventType("agent:status", "public", public_log=AGENT_LOG, texts=("agentId", "state", "symbol")),
        EventType(
            "provider:status",
            "public",
            public_log=PROVIDERS_LOG,
            state=("providers", "instance"),
            required=("name", "instance"),
            numbers=("messages",),
            non_negative=frozenset({"messages"}),
            texts=("name", "kind", "state", "reason", "instance", "node", "lastMessageAt"),
        ),
    )
}

# Every kind of keyed state some event type updates.
STATE_KINDS = tuple(sorted({t.state[0] for t in EVENT_TYPES.values() if t.state is not None}))


def is_finished(value: Mapping[str, Any]) -> bool:
    """A terminal order or a closed position: the first to go when keyed state is full."""
    status = value.get("status")
    if isinstance(status, str) and status.lower() in TERMINAL_ORDER_STATUSES:
        return True
    return value.get("quantity") == 0


def total_value(positions: list[dict[str, Any]]) -> float:
    total = 0.0
    for p in positions:
        value = p.get("value")
        if isinstance(value, int | float):
            total += value
    return round(total, 6)


def _orders_snapshot(values: list[dict[str, Any]], ts: str) -> tuple[str, dict[str, Any]]:
    return "order:update", {"snapshot": True, "orders": values, "timestamp": ts}


def _positions_snapshot(values: list[dict[str, Any]], ts: str) -> tuple[str, dict[str, Any]]:
    open_positions = [v for v in values if v.get("quantity") not in (0, None)]
    return "position:update", {
        "snapshot": True,
        "positions": open_positions,
        "totalValue": total_value(open_positions),
        "timestamp": ts,
    }


def _prices_snapshot(values: list[dict[str, Any]], ts: str) -> tuple[str, dict[str, Any]]:
    return "price:update", {"initializing": True, "prices": values, "timestamp": ts}


def _providers_snapshot(values: list[dict[str, Any]], ts: str) -> tuple[str, dict[str, Any]]:
    return "provider:status", {"snapshot": True, "providers": values, "timestamp": ts}


ORDERS = SnapshotPart("orders", _orders_snapshot)
POSITIONS = SnapshotPart("positions", _positions_snapshot)
PRICES = SnapshotPart("prices", _prices_snapshot)
PROVIDERS = SnapshotPart("providers", _providers_snapshot)

STREAMS: dict[str, StreamDef] = {
    d.name: d
    for d in (
        StreamDef("orders", "user", ORDER_TYPES, snapshot=(ORDERS,)),
        StreamDef("positions", "user", frozenset({"position:update"}), snapshot=(POSITIONS,)),
        StreamDef(
            "prices",
            "public",
            frozenset({"price:update"}),
            public_log=PRICES_LOG,
            snapshot=(PRICES,),
            key_field="symbol",
            key_param="symbols",
            key_max_length=64,  # tickers, and token addresses of on-chain prices (birdeye: 32-44)
            deltas=True,
        ),
        StreamDef(
            "trading",
            "user",
            ORDER_TYPES | {"position:update", "trade:new"},
            snapshot=(ORDERS, POSITIONS),
            owner_param="userId",
        ),
        StreamDef("ai-decisions", "user", frozenset({"ai:decision"})),
        StreamDef("agents", "public", frozenset({"agent:status"}), public_log=AGENT_LOG),
        StreamDef(
            "providers",
            "public",
            frozenset({"provider:status"}),
            public_log=PROVIDERS_LOG,
            snapshot=(PROVIDERS,),
        ),
        StreamDef(
            "chain",
            "public",
            frozenset({"trade:new"}),
            public_log=CHAIN_LOG,
            key_field="symbol",
            key_param="symbols",
            key_max_length=64,  # account addresses (Solana: 32-44 characters)
        ),
        StreamDef(
            "strategies",
            "user",
            frozenset({"strategy:update"}),
            item_field="strategyId",
            item_label="Strategy",
        ),
        StreamDef("alerts", "user", frozenset({"alert:new", "alert:ack"})),
        # A scan's events: on the public `scans` log or its owner's log, per the scan's
        # visibility (domain/scans.py resolves it, node/sessions.py `item_logs`).
        StreamDef(
            "scans", "user", frozenset({"scan:result", "scan:status"}), item_field="scanId", item_label="Scan"
        ),
        StreamDef("me", "user", frozenset(), composite_param="streams"),
    )
}


def catalog(max_symbols: int = 200) -> Catalog:
    """The streams of SPEC section 2, with `?symbols=` bounded to `max_symbols`."""
    return Catalog(STREAMS.values(), max_keys=max_symbols)


_DEFAULT = catalog()


def resolve_stream(path: str, params: Mapping[str, str], principal: Principal) -> Stream:
    """`catalog().resolve` with the default bounds."""
    return _DEFAULT.resolve(path, params, principal)
