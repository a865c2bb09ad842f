"""A bounded log: offsets, epochs, and the replay rule.

Offsets never repeat within an epoch; trimming or clearing history keeps counting
from where it was, so a client holding an old id learns that it is too old
(`Reset`) instead of silently receiving someone else's offsets.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from tickwire.core.event import Event
from tickwire.core.ids import Position


@dataclass(frozen=True, slots=True)
class Reset:
    """A resume position that cannot be honoured, and why (sent to the client)."""

    reason: str


UNKNOWN_EPOCH = Reset("unknown_epoch")
TOO_OLD = Reset("history_trimmed")
AHEAD = Reset("unknown_position")
MALFORMED = Reset("malformed_id")


def check_resume(pos: Position, end: Position, first_offset: int) -> Reset | None:
    """Why `pos` cannot be resumed in a log ending at `end`, or None when it can.

    `first_offset` is the oldest offset still retained (end.offset + 1 when empty).
    """
    if pos.epoch != end.epoch:
        return UNKNOWN_EPOCH
    if pos.after(end):
        return AHEAD
    if pos.offset + 1 < first_offset:
        return TOO_OLD
    return None


class EventLog:
    """The retained history of one log plus its counters."""

    def __init__(self, name: str, epoch: int, capacity: int) -> None:
        self.name = name
        self.epoch = epoch
        self.capacity = capacity
        self._offset = 0
        self._tick = 0
        self._events: deque[Event] = deque(maxlen=capacity)
        self._seqs: dict[str, int] = {}  # sequence key -> the last number given

    @property
    def end(self) -> Position:
        """Position of the last thing stamped on this log (log event or tick)."""
        return Position(self.epoch, self._offset, self._tick)

    @property
    def first_offset(self) -> int:
        return self._events[0].pos.offset if self._events else self._offset + 1  # type: ignore[union-attr]

    def __len__(self) -> int:
        return len(self._events)

    def append(
        self, type_: str, data: dict[str, Any], ms: int, key: str | None = None, seq_key: str | None = None
    ) -> Event:
        """Stamp and keep a log event, numbered within its sequence key (its type by default)."""
        self._offset += 1
        self._tick += 1
        event = Event(type_, data, self.name, self.end, ms, key=key)
        counted = seq_key or type_
        event.seq = self._seqs[counted] = self._seqs.get(counted, 0) + 1
        self._events.append(event)
        return event

    def stamp_tick(self, type_: str, data: dict[str, Any], ms: int, key: str | None) -> Event:
        """Stamp a tick: it gets a unique position but is not kept."""
        self._tick += 1
        return Event(type_, data, self.name, self.end, ms, key=key, tick=True)

    def read_after(self, pos: Position, limit: int | None = None) -> list[Event] | Reset:
        """Log events after `pos`, oldest first, or why that is impossible."""
        reset = check_resume(pos, self.end, self.first_offset)
        if reset is not None:
            return reset
        return self.tail(self._offset - pos.offset, limit)

    def tail(self, count: int, limit: int | None = None) -> list[Event]:
        """The last `count` retained events (all retained when count is larger)."""
        count = min(count, len(self._events))
        start = len(self._events) - count
        stop = len(self._events) if limit is None else min(len(self._events), start + limit)
        return [self._events[i] for i in range(start, stop)]

    def clear(self) -> None:
        """Forget the history (buffer TTL); offsets keep counting."""
        self._events.clear()
