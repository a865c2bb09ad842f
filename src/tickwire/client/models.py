"""Typed payloads of the SPEC's event types: `event.data` is one of these.

    async for event in client.events():
        match event.data:
            case OrderUpdate(order_id=oid, status=status): ...
            case PriceUpdate(symbol=symbol, price=price): ...
            case OrdersSnapshot(orders=orders): ...

Every model is a frozen dataclass whose fields are the SPEC's fields in snake_case
(`orderId` -> `order_id`, `unrealizedPnL` -> `unrealized_pnl`), each None when the event
does not carry it; fields the model does not know are kept in `extra` (wire names), so
`Model.from_dict(d).to_dict() == d` for every payload. Snapshots are their own types
(`OrdersSnapshot`, `PositionsSnapshot`, `PricesSnapshot`) and say `symbol is None`, so code
reading `event.data.symbol` on a keyed stream never fails on the snapshot that starts it.
Nothing is validated here (the server validated what it published); values are as received.

For code written against plain dicts a model also answers `data["orderId"]`, `data.get(...)`
and `"orderId" in data` from the payload as received; `event.raw` is that dict itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

__all__ = [
    "MODELS",
    "AgentStatus",
    "AiDecision",
    "Alert",
    "AlertAck",
    "AuthExpiredNotice",
    "Connected",
    "ConnectionLimitNotice",
    "OrderFill",
    "OrderUpdate",
    "OrdersSnapshot",
    "Payload",
    "PositionUpdate",
    "PositionsSnapshot",
    "PriceUpdate",
    "PricesSnapshot",
    "ProviderStatus",
    "ScanResult",
    "ScanStatus",
    "Snapshot",
    "StrategyUpdate",
    "StreamReset",
    "TestMessage",
    "TradeNew",
    "payload",
]

P = TypeVar("P", bound="Payload")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def w(wire: str, nested: type[Payload] | None = None) -> Any:
    """A field read from the payload key `wire` (a list of `nested` models when given)."""
    return field(default=None, metadata={"wire": wire, "nested": nested})


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """A payload; the base of every model (and the model of unknown types: all in `extra`)."""

    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)
    _raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def _wire_fields(cls) -> tuple[tuple[str, str, type[Payload] | None], ...]:
        known = cls.__dict__.get("_cached_fields")
        if known is None:
            known = tuple(
                (f.name, f.metadata["wire"], f.metadata["nested"])
                for f in dataclasses.fields(cls)
                if "wire" in f.metadata
            )
            type.__setattr__(cls, "_cached_fields", known)
        return known

    @classmethod
    def from_dict(cls: type[P], data: Mapping[str, Any]) -> P:
        """The model of a payload; unknown keys (and known ones that are null) go to `extra`."""
        values: dict[str, Any] = {}
        taken: set[str] = set()
        for name, wire, nested in cls._wire_fields():
            if wire not in data:
                continue
            value = data[wire]
            if value is None:
                continue  # kept in extra: round trips as null
            taken.add(wire)
            if nested is not None and isinstance(value, list):
                value = tuple(nested.from_dict(v) if isinstance(v, Mapping) else v for v in value)
            values[name] = value
        extra = {k: v for k, v in data.items() if k not in taken}
        return cls(**values, extra=MappingProxyType(extra) if extra else _EMPTY, _raw=data)

    def to_dict(self) -> dict[str, Any]:
        """The payload again, as the server sent it."""
        out: dict[str, Any] = {}
        for name, wire, nested in self._wire_fields():
            value = getattr(self, name)
            if value is None:
                continue
            if nested is not None and isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, Payload) else v for v in value]
            out[wire] = value
        out.update(self.extra)
        return out

    # -- read like the dict it came from -------------------------------------------------------

    @property
    def raw(self) -> Mapping[str, Any]:
        return self._raw if isinstance(self._raw, Mapping) else self.to_dict()

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def keys(self) -> Iterator[str]:
        return iter(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot(Payload):
    """The state a stream starts from (SPEC 3): it names no single symbol."""

    @property
    def symbol(self) -> None:
        return None


# -- orders, fills, positions, trades -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdate(Payload):
    order_id: str | None = w("orderId")
    symbol: str | None = w("symbol")
    side: str | None = w("side")
    qty: float | None = w("qty")
    status: str | None = w("status")
    type: str | None = w("type")
    limit_price: float | None = w("limitPrice")
    reason: str | None = w("reason")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFill(Payload):
    order_id: str | None = w("orderId")
    symbol: str | None = w("symbol")
    side: str | None = w("side")
    filled_qty: float | None = w("filledQty")
    filled_avg_price: float | None = w("filledAvgPrice")
    status: str | None = w("status")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionUpdate(Payload):
    symbol: str | None = w("symbol")
    quantity: float | None = w("quantity")
    entry_price: float | None = w("entryPrice")
    current_price: float | None = w("currentPrice")
    value: float | None = w("value")
    unrealized_pnl: float | None = w("unrealizedPnL")
    realized_pnl: float | None = w("realizedPnL")
    total_value: float | None = w("totalValue")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeNew(Payload):
    trade_id: str | None = w("tradeId")
    symbol: str | None = w("symbol")
    side: str | None = w("side")
    price: float | None = w("price")
    qty: float | None = w("qty")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceUpdate(Payload):
    symbol: str | None = w("symbol")
    price: float | None = w("price")
    bid: float | None = w("bid")
    ask: float | None = w("ask")
    size: float | None = w("size")
    source: str | None = w("source")
    exchange_ts: float | str | None = w("exchangeTs")
    delta: bool | None = w("delta")
    timestamp: str | None = w("timestamp")


# -- snapshots -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OrdersSnapshot(Snapshot):
    snapshot: bool | None = w("snapshot")
    orders: tuple[OrderUpdate, ...] | None = w("orders", OrderUpdate)
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionsSnapshot(Snapshot):
    snapshot: bool | None = w("snapshot")
    positions: tuple[PositionUpdate, ...] | None = w("positions", PositionUpdate)
    total_value: float | None = w("totalValue")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class PricesSnapshot(Snapshot):
    initializing: bool | None = w("initializing")
    prices: tuple[PriceUpdate, ...] | None = w("prices", PriceUpdate)
    timestamp: str | None = w("timestamp")


# -- alerts, decisions, agents, strategies, providers, scans -----------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert(Payload):
    alert_id: str | None = w("alertId")
    rule_id: str | None = w("ruleId")
    kind: str | None = w("kind")
    level: str | None = w("level")
    severity: str | None = w("severity")
    symbol: str | None = w("symbol")
    message: str | None = w("message")
    value: float | None = w("value")
    threshold: float | None = w("threshold")
    urgent: bool | None = w("urgent")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertAck(Payload):
    alert_id: str | None = w("alertId")
    acked_at: str | None = w("ackedAt")
    by: str | None = w("by")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class AiDecision(Payload):
    agent_id: str | None = w("agentId")
    symbol: str | None = w("symbol")
    action: str | None = w("action")
    confidence: float | None = w("confidence")
    reasoning: str | None = w("reasoning")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatus(Payload):
    agent_id: str | None = w("agentId")
    state: str | None = w("state")
    status: str | None = w("status")
    symbol: str | None = w("symbol")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyUpdate(Payload):
    strategy_id: str | None = w("strategyId")
    status: str | None = w("status")
    signal: str | None = w("signal")
    symbol: str | None = w("symbol")
    action: str | None = w("action")
    confidence: float | None = w("confidence")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderStatus(Payload):
    name: str | None = w("name")
    kind: str | None = w("kind")
    state: str | None = w("state")
    symbols: Sequence[str] | None = w("symbols")
    reason: str | None = w("reason")
    messages: int | None = w("messages")
    last_message_at: str | None = w("lastMessageAt")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanResult(Payload):
    scan_id: str | None = w("scanId")
    symbol: str | None = w("symbol")
    value: float | None = w("value")
    reason: str | None = w("reason")
    hash: str | None = w("hash")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanStatus(Payload):
    scan_id: str | None = w("scanId")
    cycle: int | None = w("cycle")
    scanned: int | None = w("scanned")
    total: int | None = w("total")
    results: int | None = w("results")
    duration_ms: float | None = w("durationMs")
    timestamp: str | None = w("timestamp")


# -- control events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(Payload):
    client_id: str | None = w("clientId")
    stream: str | None = w("stream")
    v: int | None = w("v")
    recovered: bool | None = w("recovered")
    transport: str | None = w("transport")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamReset(Payload):
    recovered: bool | None = w("recovered")
    reason: str | None = w("reason")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimitNotice(Payload):
    message: str | None = w("message")
    limit: int | None = w("limit")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthExpiredNotice(Payload):
    message: str | None = w("message")
    timestamp: str | None = w("timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class TestMessage(Payload):
    __test__ = False  # not a pytest test class

    message: str | None = w("message")
    timestamp: str | None = w("timestamp")


# Event type -> (model of an update, model of a snapshot of that type).
MODELS: dict[str, tuple[type[Payload], type[Payload] | None]] = {
    "order:update": (OrderUpdate, OrdersSnapshot),
    "order:fill": (OrderFill, None),
    "position:update": (PositionUpdate, PositionsSnapshot),
    "price:update": (PriceUpdate, PricesSnapshot),
    "trade:new": (TradeNew, None),
    "alert:new": (Alert, None),
    "alert:ack": (AlertAck, None),
    "ai:decision": (AiDecision, None),
    "agent:status": (AgentStatus, None),
    "strategy:update": (StrategyUpdate, None),
    "provider:status": (ProviderStatus, None),
    "scan:result": (ScanResult, None),
    "scan:status": (ScanStatus, None),
    "connected": (Connected, None),
    "stream:reset": (StreamReset, None),
    "connection:limit": (ConnectionLimitNotice, None),
    "auth:expired": (AuthExpiredNotice, None),
    "test": (TestMessage, None),
}


def payload(type_: str, data: Any) -> Any:
    """The model of an event's payload (a non-object payload is returned as it is)."""
    if not isinstance(data, Mapping):
        return data
    update, snapshot = MODELS.get(type_, (Payload, None))
    if snapshot is not None and (data.get("snapshot") or data.get("initializing")):
        return snapshot.from_dict(data)
    return update.from_dict(data)
