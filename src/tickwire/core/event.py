"""Events, and what an event type can declare about itself.

An `Event` is immutable once stamped with its log position. Its wire forms (SSE
frame, WebSocket frames) are computed lazily, once per format, and cached on the
event, so every subscriber of one event writes the same bytes object.

Logs are named here: each user has a log `user:{id}`; any other name is a public log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from tickwire.core.ids import Position, format_id

Scope = Literal["user", "public"]

USER_LOG_PREFIX = "user:"
# A user id: what a token's `sub` and a publish's `user` may be (it names a log and a stream).
USER_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,128}$")


def user_log(user_id: str) -> str:
    return USER_LOG_PREFIX + user_id


def log_user(log: str) -> str | None:
    return log[len(USER_LOG_PREFIX) :] if log.startswith(USER_LOG_PREFIX) else None


@dataclass(frozen=True, slots=True)
class EventType:
    """What the server knows about one event type: where it goes, what it changes, and
    what a valid payload looks like (a catalogue of them is in domain/catalog.py)."""

    name: str
    scope: Scope
    public_log: str | None = None
    # Keyed state this type updates: (state kind, field holding the key).
    state: tuple[str, str] | None = None
    # Always a latest-value tick (never kept in history).
    always_tick: bool = False
    # Fields that must hold an id: a non-empty string (at most 128 characters) or an integer.
    required: tuple[str, ...] = ()
    # Fields that, when present, must be finite numbers (and not negative, for `non_negative`).
    numbers: tuple[str, ...] = ()
    non_negative: frozenset[str] = frozenset()
    # Fields that, when present, must be strings (names, keys, statuses).
    texts: tuple[str, ...] = ()
    # Fields that, when present, must be one of the listed strings.
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Fields added when the publisher leaves them out.
    defaults: tuple[tuple[str, Any], ...] = ()
    # (field, value): events with that value go out ahead of anything that may wait.
    urgent_when: tuple[str, Any] | None = None
    # The field naming an item this event registers for the log's user (first one owns it).
    item_field: str | None = None
    # The field naming the item of an item stream (`strategies/{id}`, `scans/{id}`) the event
    # belongs to: its `seq` counts the log's events of its type and that item.
    sequence_field: str | None = None


# Types that are not in the catalogue but travel on the wire.
CONTROL_TYPES = frozenset({"connected", "stream:reset", "connection:limit", "test"})
URGENT_FIELD = "urgent"


def sequence_key(type_: str, item: str | None) -> str:
    """What a log event's `seq` counts: events of its type (of its item, for the types of item
    streams: `EventType.sequence_field`).
    A stream is a union of types (of one item), so per-key continuity is its continuity."""
    return type_ if item is None else f"{type_}:{item}"


def iso_timestamp(ms: int) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as every payload carries."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Event:
    """One stamped event: a log position, an id, a payload and cached wire forms."""

    __slots__ = (
        "_json",
        "_wire",
        "base",
        "data",
        "delta",
        "id",
        "key",
        "log",
        "ms",
        "pos",
        "seq",
        "tick",
        "trace",
        "type",
        "urgent",
    )

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
        self.urgent = data.get(URGENT_FIELD) is True
        # The correlation id of the request that published it (live events only), for logs.
        self.trace: str | None = None
        # A log event's number among the log's events of its sequence key (`sequence_key`):
        # consecutive, so a reader sees a hole in a stream without asking the server.
        self.seq: int | None = None
        # A keyed public tick as fanned out on this node: the id and payload of the previous
        # tick of its key, and the delta against it, made once for every delta subscriber
        # (core/delta.py).
        self.base: tuple[str, dict[str, Any]] | None = None
        self.delta: Event | None = None
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
