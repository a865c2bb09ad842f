"""The stream catalogue (SPEC section 2): which log, which events, which snapshot.

A stream is a read view: one log plus a filter. `resolve_stream` turns a request
(path, query parameters, caller) into a `Stream`, or raises `StreamError` with the
HTTP status and message the caller should see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from tickwire.core.event import AGENT_LOG, PRICES_LOG, Event, iso_timestamp, user_log
from tickwire.errors import StreamError

Access = Literal["user", "public"]

ORDER_TYPES = frozenset({"order:update", "order:fill"})
MAX_SYMBOLS = 200
_SYMBOL = re.compile(r"^[A-Za-z0-9._:/^=-]{1,32}$")
_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True, slots=True)
class StreamDef:
    name: str
    access: Access
    types: frozenset[str]
    public_log: str | None = None
    # State kinds sent as the snapshot of a new connection, in order.
    snapshot: tuple[str, ...] = ()
    symbols_param: bool = False
    user_param: bool = False
    strategy: bool = False


STREAMS: dict[str, StreamDef] = {
    d.name: d
    for d in (
        StreamDef("orders", "user", ORDER_TYPES, snapshot=("orders",)),
        StreamDef("positions", "user", frozenset({"position:update"}), snapshot=("positions",)),
        StreamDef(
            "prices",
            "public",
            frozenset({"price:update"}),
            public_log=PRICES_LOG,
            snapshot=("prices",),
            symbols_param=True,
        ),
        StreamDef(
            "trading",
            "user",
            ORDER_TYPES | {"position:update", "trade:new"},
            snapshot=("orders", "positions"),
            user_param=True,
        ),
        StreamDef("ai-decisions", "user", frozenset({"ai:decision"})),
        StreamDef("agents", "public", frozenset({"agent:status"}), public_log=AGENT_LOG),
        StreamDef("strategies", "user", frozenset({"strategy:update"}), strategy=True),
        StreamDef("alerts", "user", frozenset({"alert:new"})),
    )
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user id and roles, or nobody."""

    user: str | None
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def can_publish(self) -> bool:
        return bool(self.roles & {"admin", "publisher"})


ANONYMOUS = Principal(None)


@dataclass(frozen=True, slots=True)
class Stream:
    """A resolved stream: what one subscription reads."""

    name: str  # dotted form used in clientIds and WebSocket names: "strategies.s1"
    definition: StreamDef
    log: str
    symbols: frozenset[str] | None = None
    strategy_id: str | None = None

    @property
    def path(self) -> str:
        """The stream's path after the prefix: `strategies/s1`."""
        return self.definition.name + (f"/{self.strategy_id}" if self.strategy_id else "")

    def matches(self, event: Event) -> bool:
        if event.type not in self.definition.types:
            return False
        if self.symbols is not None and event.data.get("symbol") not in self.symbols:
            return False
        if self.strategy_id is not None and event.data.get("strategyId") != self.strategy_id:
            return False
        return True

    def keep_state(self, kind: str, value: dict[str, Any]) -> bool:
        """Whether a snapshot entry belongs to this stream (symbol filter)."""
        if self.symbols is not None and kind == "prices":
            return value.get("symbol") in self.symbols
        return True


def parse_symbols(raw: str | None) -> frozenset[str] | None:
    if raw is None or raw.strip() == "":
        return None
    symbols = [s.strip() for s in raw.split(",") if s.strip()]
    if len(symbols) > MAX_SYMBOLS:
        raise StreamError(400, f"at most {MAX_SYMBOLS} symbols per stream")
    for s in symbols:
        if not _SYMBOL.match(s):
            raise StreamError(400, f"invalid symbol {s[:40]!r}")
    return frozenset(symbols)


def resolve_stream(path: str, params: dict[str, str], principal: Principal) -> Stream:
    """The stream for `path` (e.g. `orders`, `strategies/s1`) as seen by `principal`.

    Strategy existence and ownership need the registry and are checked by the caller.
    """
    head, _, rest = path.strip("/").partition("/")
    definition = STREAMS.get(head)
    if definition is None or (rest and not definition.strategy) or (definition.strategy and not rest):
        raise StreamError(404, f"Unknown stream '{path[:100]}'")
    if definition.access == "user" and principal.user is None:
        raise StreamError(401, "No valid session found")
    if definition.public_log is not None:
        symbols = parse_symbols(params.get("symbols")) if definition.symbols_param else None
        return Stream(definition.name, definition, definition.public_log, symbols=symbols)
    assert principal.user is not None
    owner = principal.user
    if definition.user_param:
        requested = params.get("userId") or owner
        if requested != owner and not principal.is_admin:
            raise StreamError(403, "You may only read your own trading stream")
        if not _NAME.match(requested):
            raise StreamError(400, "invalid userId")
        owner = requested
    if definition.strategy:
        if not _NAME.match(rest):
            raise StreamError(404, "Strategy not found")
        return Stream(f"strategies.{rest}", definition, user_log(owner), strategy_id=rest)
    return Stream(definition.name, definition, user_log(owner))


def snapshot_payloads(
    stream: Stream, states: dict[str, list[dict[str, Any]]], ms: int
) -> list[tuple[str, dict[str, Any]]]:
    """The snapshot events (type, data) of a new connection to `stream`."""
    ts = iso_timestamp(ms)
    out: list[tuple[str, dict[str, Any]]] = []
    for kind in stream.definition.snapshot:
        values = [v for v in states.get(kind, []) if stream.keep_state(kind, v)]
        if kind == "orders":
            out.append(("order:update", {"snapshot": True, "orders": values, "timestamp": ts}))
        elif kind == "positions":
            open_positions = [v for v in values if v.get("quantity") not in (0, None)]
            total = total_value(open_positions)
            out.append(
                (
                    "position:update",
                    {"snapshot": True, "positions": open_positions, "totalValue": total, "timestamp": ts},
                )
            )
        elif kind == "prices":
            out.append(("price:update", {"initializing": True, "prices": values, "timestamp": ts}))
    return out


def total_value(positions: list[dict[str, Any]]) -> float:
    total = 0.0
    for p in positions:
        value = p.get("value")
        if isinstance(value, int | float):
            total += value
    return round(total, 6)
