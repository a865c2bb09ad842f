"""Events and the catalogue of event types.

An `Event` is immutable once stamped with its log position. Its wire forms (SSE
frame, WebSocket frames) are computed lazily, once per format, and cached on the
event, so every subscriber of one event writes the same bytes object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from tickwire.core.ids import Position, format_id

Scope = Literal["user", "public"]

USER_LOG_PREFIX = "user:"
PRICES_LOG = "prices"
AGENT_LOG = "agent"
PUBLIC_LOGS = (PRICES_LOG, AGENT_LOG)


def user_log(user_id: str) -> str:
    return USER_LOG_PREFIX + user_id


def log_user(log: str) -> str | None:
    return log[len(USER_LOG_PREFIX) :] if log.startswith(USER_LOG_PREFIX) else None


@dataclass(frozen=True, slots=True)
class EventType:
    """What the server knows about one event type."""

    name: str
    scope: Scope
    public_log: str | None = None
    # Keyed state this type updates: (state kind, field holding the key).
    state: tuple[str, str] | None = None
    # Always a latest-value tick (never kept in history).
    always_tick: bool = False
    required: tuple[str, ...] = ()


EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType("order:update", "user", state=("orders", "orderId"), required=("orderId",)),
        EventType("order:fill", "user", state=("orders", "orderId"), required=("orderId",)),
        EventType("position:update", "user", state=("positions", "symbol"), required=("symbol",)),
        EventType("trade:new", "user"),
        EventType("ai:decision", "user"),
        EventType("strategy:update", "user", state=("strategies", "strategyId"), required=("strategyId",)),
        EventType("alert:new", "user", required=("message",)),
        EventType(
            "price:update",
            "public",
            public_log=PRICES_LOG,
            state=("prices", "symbol"),
            always_tick=True,
            required=("symbol",),
        ),
        EventType("agent:status", "public", public_log=AGENT_LOG),
    )
}

# Types that are not in the catalogue but travel on the wire.
CONTROL_TYPES = frozenset({"connected", "stream:reset", "connection:limit", "test"})


def iso_timestamp(ms: int) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as every payload carries."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def is_urgent(type_: str, data: dict[str, Any]) -> bool:
    """Error-level alerts go out ahead of everything that may wait."""
    return type_ == "alert:new" and data.get("level") == "error"


class Event:
    """One stamped event: a log position, an id, a payload and cached wire forms."""

    __slots__ = ("_json", "_wire", "data", "id", "key", "log", "ms", "pos", "tick", "type", "urgent")

    def __init__(
        self,
        type_: str,
        data: dict[str, Any],
        log: str,
        pos: Position | None,
        ms: int,
        *,
        key: str | None = None,
        tick: bool = False,
    ) -> None:
        self.type = type_
        self.data = data
        self.log = log
        self.pos = pos
        self.ms = ms
        self.id: str | None = format_id(ms, pos) if pos is not None else None
        self.key = key
        self.tick = tick
        self.urgent = is_urgent(type_, data)
        self._json: bytes | None = None
        self._wire: dict[str, bytes] = {}

    @property
    def json(self) -> bytes:
        """The payload as compact JSON, encoded once."""
        if self._json is None:
            self._json = orjson.dumps(self.data)
        return self._json

    def wire(self, fmt: str, encode: Callable[[Event], bytes]) -> bytes:
        """The bytes of this event in one wire format, computed on first use."""
        frame = self._wire.get(fmt)
        if frame is None:
            frame = self._wire[fmt] = encode(self)
        return frame

    def __repr__(self) -> str:
        return f"Event({self.type!r}, log={self.log!r}, id={self.id!r}, tick={self.tick})"
