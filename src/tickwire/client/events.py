"""What the client reads and what it hands to users: stream specs, wire events, client events.

A `StreamSpec` names one stream of the catalogue (SPEC section 2) and its parameters; its
`key` ("orders", "prices", "strategies/s1") names the stream everywhere in the client: in
cursors, in WebSocket subscriptions, in events. Names and symbols are checked when a spec
is made, so a mistake (a string where a list belongs, a comma-separated list in one
string) is refused with a clear `ValueError` instead of reaching the server.

A `WireEvent` is one event as a transport decoded it (SSE frame, WebSocket `event` message,
one item of a poll response). A `ClientEvent` is what `Client.events()` yields: the same
event after resume, dedup, gap repair and local state, with the transport it came by.
`event.raw` is the payload as received (a dict); `event.data` is the same payload as a typed
model (models.py), built on first access.

Event classes (used by the delivery queue and the cursors):

| class | types | dropped under pressure? |
|---|---|---|
| critical | urgent events (`"urgent": true`: error alerts), halts (`status`/`action` = `halt`/`halted`), `stream:reset`, `connection:limit` | never |
| orders | `order:update`, `order:fill`, `trade:new`, `position:update` | never |
| news | other log events (`alert:new`, `ai:decision`, `strategy:update`, `agent:status`), `connected` | never |
| ticks | `price:update` (not snapshots), `test` | yes, lowest first |
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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

STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*(/[A-Za-z0-9._:-]+)?$")
SYMBOL = re.compile(r"^[A-Za-z0-9._:/^=-]{1,32}$")  # the server's KEY_PATTERN (core/streams.py)


class Priority(IntEnum):
    """Delivery priority: a lower value is more urgent."""

    CRITICAL = 0
    ORDERS = 1
    NEWS = 2
    TICKS = 3


def as_items(value: str | Iterable[str] | None, what: str) -> list[str] | None:
    """A list of names from a list or one name: `"AAPL"` is `["AAPL"]`, never `A, A, P, L`.
    A string holding several names (`"AAPL,MSFT"`) is refused: pass a list."""
    if value is None:
        return None
    if isinstance(value, str):
        if "," in value:
            raise ValueError(f"{what}: pass a list, not one comma-separated string ({value!r})")
        return [value]
    if isinstance(value, bytes | bytearray):
        raise TypeError(f"{what}: expected a string or a list of strings, got bytes")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{what}: expected strings, got {type(item).__name__} ({item!r})")
    return items


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream: its path after the prefix and its parameters."""

    name: str  # "orders", "prices", "strategies/s1"
    symbols: frozenset[str] | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not STREAM_NAME.fullmatch(self.name):
            raise ValueError(
                f"not a stream name: {self.name!r} (e.g. 'orders', 'prices?symbols=A,B', 'strategies/s1'; "
                "several streams go in a list)"
            )
        if self.symbols is not None:
            for symbol in self.symbols:
                if not isinstance(symbol, str) or not SYMBOL.fullmatch(symbol):
                    raise ValueError(f"stream {self.name}: not a symbol: {symbol!r}")

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
        if not isinstance(text, str):
            raise TypeError(f"a stream is a string or a StreamSpec, not {type(text).__name__}")
        name, _, query = text.partition("?")
        name = name.strip("/")
        params = dict(parse_qsl(query))
        symbols = frozenset(s for s in params.get("symbols", "").split(",") if s) or None
        return cls(name, symbols, params.get("userId") or None)


def as_spec(stream: str | StreamSpec) -> StreamSpec:
    return stream if isinstance(stream, StreamSpec) else StreamSpec.parse(stream)


def as_specs(streams: str | StreamSpec | Iterable[str | StreamSpec]) -> list[StreamSpec]:
    """Streams from a list, or from one stream given alone (`Client(url, "prices")`)."""
    if isinstance(streams, str | StreamSpec):
        return [as_spec(streams)]
    return [as_spec(s) for s in streams]


class WireEvent:
    """One event as a transport decoded it. `stream` is "" for connection-wide events.

    `urgent` is the envelope's flag (WebSocket); `replayed` says the transport knows it was
    sent to catch up after a resume; `seq` is a log event's number among its log's events of
    the same sequence key (`sequence_key`), None for ticks and control events (gaps.py).
    """

    __slots__ = ("data", "id", "replayed", "seq", "stream", "type", "urgent")

    def __init__(
        self,
        stream: str,
        type: str,
        id: str | None,
        data: Any,
        urgent: bool = False,
        replayed: bool = False,
        seq: int | None = None,
    ) -> None:
        self.stream = stream
        self.type = type
        self.id = id
        self.data = data
        self.urgent = urgent
        self.replayed = replayed
        self.seq = seq

    def __repr__(self) -> str:
        return f"WireEvent({self.stream!r}, {self.type!r}, {self.id!r}, {self.data!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WireEvent):
            return NotImplemented
        return (self.stream, self.type, self.id, self.data) == (
            other.stream,
            other.type,
            other.id,
            other.data,
        )

    __hash__ = None  # type: ignore[assignment]

    def to(self, stream: str) -> WireEvent:
        """The same event on another stream (a part of a composite connection)."""
        return WireEvent(stream, self.type, self.id, self.data, self.urgent, self.replayed, self.seq)


class ClientEvent:
    """An event delivered by the client.

    `raw` is the payload as received; `data` the typed model of it (models.py: `OrderUpdate`,
    `PricesSnapshot`, ...; unknown fields in `data.extra`). `repaired` is True for events
    fetched from the events endpoint to fill a gap; `replayed` for events sent to catch up
    (a resume's replay, a repair, history fetched for a consumer that fell behind);
    `urgent` for events the server flags urgent (error alerts); `transport` is the transport
    it arrived by ("sse", "ws", "poll").
    """

    __slots__ = ("_data", "id", "raw", "repaired", "replayed", "stream", "transport", "type", "urgent")

    def __init__(
        self,
        stream: str,
        type: str,
        raw: Any,
        id: str | None,
        transport: str,
        repaired: bool = False,
        replayed: bool = False,
        urgent: bool = False,
    ) -> None:
        self.stream = stream
        self.type = type
        self.raw = raw
        self.id = id
        self.transport = transport
        self.repaired = repaired
        self.replayed = replayed or repaired
        self.urgent = urgent or (raw.__class__ is dict and raw.get("urgent") is True)
        self._data: Any = None

    @property
    def data(self) -> Any:
        """The payload as a typed model (models.py), made once on first access."""
        data = self._data
        if data is None:
            from tickwire.client.models import payload

            data = self._data = payload(self.type, self.raw)
        return data

    @property
    def is_snapshot(self) -> bool:
        return is_snapshot(self.type, self.raw)

    @property
    def is_reset(self) -> bool:
        return self.type == RESET

    @property
    def is_control(self) -> bool:
        return self.type in CONTROL_TYPES

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "event": self.type, "id": self.id, "data": self.raw}

    def __repr__(self) -> str:
        flags = "".join(
            f", {name}=True" for name in ("repaired", "replayed", "urgent") if getattr(self, name)
        )
        return f"ClientEvent({self.stream!r}, {self.type!r}, id={self.id!r}, raw={self.raw!r}{flags})"


def seq_of(value: Any) -> int | None:
    """An envelope's `seq`: a positive int, or None (absent or not a number)."""
    return value if value.__class__ is int and value > 0 else None


def is_snapshot(type_: str, data: Any) -> bool:
    return isinstance(data, Mapping) and bool(data.get("snapshot") or data.get("initializing"))


def is_halt(data: Mapping[str, Any]) -> bool:
    return any(str(data.get(k, "")).lower() in ("halt", "halted") for k in ("status", "action"))


def priority_of(type_: str, data: Any, urgent: bool = False) -> Priority:
    if type_ in TICK_TYPES:
        return Priority.TICKS
    if urgent or type_ in (RESET, CONNECTION_LIMIT):
        return Priority.CRITICAL
    fields: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
    if type_ == "alert:new" and (fields.get("level") == "error" or fields.get("urgent") is True):
        return Priority.CRITICAL
    if type_ in ("strategy:update", "agent:status") and is_halt(fields):
        return Priority.CRITICAL
    if type_ in ORDER_TYPES:
        return Priority.ORDERS
    if type_ == TEST:
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
