"""What the client reads and what it hands to users: stream specs, wire events, client events.

A `StreamSpec` names one stream of the catalogue (SPEC section 2) and its parameters; its
`key` ("orders", "prices", "strategies/s1") names the stream everywhere in the client: in
cursors, in WebSocket subscriptions, in events.

A `WireEvent` is one event as a transport decoded it (SSE frame, WebSocket `event` message,
one item of a poll response). A `ClientEvent` is what `Client.events()` yields: the same
event after resume, dedup, gap repair and local state, with the transport it came by.

Event classes (used by the delivery queue and the cursors):

| class | types | dropped under pressure? |
|---|---|---|
| critical | `alert:new` with level `error`, halts (`status`/`action` = `halt`/`halted`), `stream:reset`, `connection:limit` | never |
| orders | `order:update`, `order:fill`, `trade:new`, `position:update` | never |
| news | other log events (`alert:new`, `ai:decision`, `strategy:update`, `agent:status`), `connected` | never |
| ticks | `price:update` (not snapshots), `test` | yes, lowest first |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any
from urllib.parse import parse_qsl

CONNECTED = "connected"
RESET = "stream:reset"
CONNECTION_LIMIT = "connection:limit"
AUTH_EXPIRED = "auth:expired"
TEST = "test"
CONTROL_TYPES = frozenset({CONNECTED, RESET, CONNECTION_LIMIT, AUTH_EXPIRED, TEST})

# Latest-value updates keyed by symbol: ordered per key, never by log offset alone.
KEYED_TYPES = frozenset({"price:update", "position:update"})
TICK_TYPES = frozenset({"price:update"})
ORDER_TYPES = frozenset({"order:update", "order:fill", "trade:new", "position:update"})


class Priority(IntEnum):
    """Delivery priority: a lower value is more urgent."""

    CRITICAL = 0
    ORDERS = 1
    NEWS = 2
    TICKS = 3


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream: its path after the prefix and its parameters."""

    name: str  # "orders", "prices", "strategies/s1"
    symbols: frozenset[str] | None = None
    user_id: str | None = None

    @property
    def key(self) -> str:
        return self.name

    def params(self) -> dict[str, str]:
        """Query parameters of the stream's HTTP endpoints."""
        out: dict[str, str] = {}
        if self.symbols:
            out["symbols"] = ",".join(sorted(self.symbols))
        if self.user_id is not None:
            out["userId"] = self.user_id
        return out

    def ws_request(self, last_event_id: str | None) -> dict[str, Any]:
        """The stream's entry in a WebSocket `subscribe` (SPEC section 6)."""
        entry: dict[str, Any] = {"stream": self.name}
        if last_event_id is not None:
            entry["lastEventId"] = last_event_id
        if self.symbols:
            entry["symbols"] = sorted(self.symbols)
        if self.user_id is not None:
            entry["userId"] = self.user_id
        return entry

    @classmethod
    def parse(cls, text: str) -> StreamSpec:
        """`"orders"`, `"prices?symbols=AAPL,MSFT"`, `"trading?userId=u1"`, `"strategies/s1"`."""
        name, _, query = text.partition("?")
        name = name.strip("/")
        if not name:
            raise ValueError(f"not a stream name: {text!r}")
        params = dict(parse_qsl(query))
        symbols = frozenset(s for s in params.get("symbols", "").split(",") if s) or None
        return cls(name, symbols, params.get("userId") or None)


def as_spec(stream: str | StreamSpec) -> StreamSpec:
    return stream if isinstance(stream, StreamSpec) else StreamSpec.parse(stream)


@dataclass(frozen=True, slots=True)
class WireEvent:
    """One event as a transport decoded it. `stream` is "" for connection-wide events."""

    stream: str
    type: str
    id: str | None
    data: Any


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """An event delivered by the client.

    `repaired` is True for events fetched from the events endpoint to fill a gap; `transport`
    is the transport it arrived by ("sse", "ws", "poll").
    """

    stream: str
    type: str
    data: Any
    id: str | None
    transport: str
    repaired: bool = False

    @property
    def is_snapshot(self) -> bool:
        return is_snapshot(self.type, self.data)

    @property
    def is_reset(self) -> bool:
        return self.type == RESET

    @property
    def is_control(self) -> bool:
        return self.type in CONTROL_TYPES

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "event": self.type, "id": self.id, "data": self.data}


def is_snapshot(type_: str, data: Any) -> bool:
    return isinstance(data, Mapping) and bool(data.get("snapshot") or data.get("initializing"))


def is_halt(data: Mapping[str, Any]) -> bool:
    return any(str(data.get(k, "")).lower() in ("halt", "halted") for k in ("status", "action"))


def priority_of(type_: str, data: Any) -> Priority:
    fields: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
    if type_ in (RESET, CONNECTION_LIMIT):
        return Priority.CRITICAL
    if type_ == "alert:new" and fields.get("level") == "error":
        return Priority.CRITICAL
    if type_ in ("strategy:update", "agent:status") and is_halt(fields):
        return Priority.CRITICAL
    if type_ in ORDER_TYPES:
        return Priority.ORDERS
    if type_ in TICK_TYPES or type_ == TEST:
        return Priority.TICKS
    return Priority.NEWS


def droppable(type_: str, data: Any) -> bool:
    """Whether the delivery queue may drop the event under pressure: ticks only."""
    if type_ == TEST:
        return True
    return type_ in TICK_TYPES and not is_snapshot(type_, data)


def key_of(type_: str, data: Any) -> str | None:
    """The state key of a keyed latest-value update (its symbol), if any."""
    if type_ in KEYED_TYPES and isinstance(data, Mapping) and not is_snapshot(type_, data):
        symbol = data.get("symbol")
        return symbol if isinstance(symbol, str) else None
    return None
