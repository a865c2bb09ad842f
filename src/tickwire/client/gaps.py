"""Per-stream cursors: the resume point, duplicates, and what counts as a gap.

Ids. A tickwire id is `{unix_ms}-{token}`; the token packs a log position
`(epoch, offset, tick)` (core/ids.py): `offset` counts the log events of one log, `tick`
counts everything stamped on it, and a tick (a latest-value update that history does not
keep) carries the offset of the last log event before it. This client decodes ids to order
and deduplicate events. An id it cannot decode is opaque: deduplicated by its text and
resumed from, never ordered.

Sequence numbers. Every log event carries `seq`, its number among its log's events of the
same sequence key (core/event.py `sequence_key`: the event type, or `type:item` for the
events of item streams: `strategy:update:<strategyId>`, `scan:result:<scanId>`), consecutive from 1 and never reused; ticks carry none. A stream is a union
of whole sequence keys, so continuity per key is the stream's continuity, checked locally
with no request: per (stream, key) the first event after a start, a `stream:reset` or a
resume from a given id (a checkpoint) sets the base; the next one must be base + 1.

- Duplicate (dropped, counted): an id delivered before (bounded memory, `RecentIds`); a log
  event at or before `log_pos` (the server sends a stream's log events in log order); a
  `seq` at or below the key's last; a keyed update (`price:update`, `position:update`) at
  or before the last one delivered for the same symbol, or before the last snapshot.
- Gap (`Verdict.CHECK`): a `seq` more than one above the key's last; or an event of another
  epoch with no `stream:reset` before it (the log lost its history). The router asks the
  events endpoint after the key's last event (routing.py) and delivers the events of that
  key numbered in between; an unrecoverable answer becomes a `stream:reset`. A jump the
  answer does not fill costs that request and is not counted as a gap.

Events that arrive by polling are never checked: a poll answer is the server's own list of
everything after its `after`. One check also answers later jumps whose event it listed, so
a burst of losses costs one request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tickwire.client.dedup import RecentIds
from tickwire.client.events import KEYED_TYPES, WireEvent, is_snapshot
from tickwire.core.event import sequence_key
from tickwire.core.ids import MalformedId, Position, parse_id
from tickwire.domain.catalog import EVENT_TYPES

# Event types whose `seq` counts per item (a strategy, a scan), and the field naming the item.
ITEM_FIELDS = {t.name: t.sequence_field for t in EVENT_TYPES.values() if t.sequence_field is not None}


def seq_key(type_: str, data: Any) -> str:
    """The sequence key a log event's `seq` counts in (core/event.py `sequence_key`)."""
    field = ITEM_FIELDS.get(type_)
    item = data.get(field) if field is not None and isinstance(data, dict) else None
    return sequence_key(type_, None if item is None else str(item))


def position_of(event_id: str | None) -> Position | None:
    """The position an id encodes, or None for an opaque (foreign or malformed) id."""
    if event_id is None:
        return None
    try:
        return parse_id(event_id)
    except MalformedId:
        return None


def id_order(event_id: str) -> tuple[int, int, int]:
    """A sort key for ids of one stream: `(unix_ms, offset, tick)`; within one epoch it is
    the log's order (a log stamps in time order), across epochs the time order."""
    pos = position_of(event_id)
    head = event_id[:13]
    ms = int(head) if head.isdigit() else 0
    return (ms, pos.offset, pos.tick) if pos is not None else (ms, 0, 0)


def earliest(ids: Iterable[str | None]) -> str | None:
    """The earliest of `ids` by `id_order`; None when any is None (nothing to resume from)."""
    best: str | None = None
    for event_id in ids:
        if event_id is None:
            return None
        if best is None or id_order(event_id) < id_order(best):
            best = event_id
    return best


def _before_or_at(a: Position, b: Position) -> bool:
    return (a.offset, a.tick) <= (b.offset, b.tick)


class Verdict(Enum):
    DELIVER = "deliver"
    DUPLICATE = "duplicate"  # seen before, or behind the cursor
    STALE = "stale"  # a keyed value older than the one already applied
    CHECK = "check"  # a hole: ask the server


@dataclass(frozen=True, slots=True)
class GapCheck:
    """A hole in one sequence key: the events numbered between `low` and `high` (both
    exclusive) are missing; `after` is where to ask from, `until` the offset of the event
    that revealed the hole (an answer reaching it has listed the whole hole)."""

    after: str | None
    key: str
    low: int
    high: int
    until: int
    epoch_changed: bool = False

    def contains(self, event: WireEvent) -> bool:
        seq = event.seq
        return seq is not None and self.low < seq < self.high and seq_key(event.type, event.data) == self.key


class StreamCursor:
    """Everything the client knows about how far one stream got."""

    def __init__(self, stream: str, dedup_capacity: int = 4096, key_capacity: int = 10_000) -> None:
        self.stream = stream
        self.ids = RecentIds(dedup_capacity)
        self.key_capacity = key_capacity
        self.epoch: int | None = None
        self.log_pos: Position | None = None
        self.mark: Position | None = None  # the highest position delivered
        self.resume_id: str | None = None
        self.keys: dict[tuple[str, str], Position] = {}  # (type, symbol) -> last position, oldest first
        self.seqs: dict[str, tuple[int, str]] = {}  # sequence key -> (last seq, its event's id)
        self.floor: Position | None = None  # keyed values at or before it are in the snapshot
        self.started = False  # a session carried the stream (it is caught up with its wire)
        self.state_floor: Position | None = None  # events at or before it are older than local state
        self._checked: set[str] = set()  # ids listed by the last gap check
        self._checked_events: list[WireEvent] = []
        self._parsed: tuple[str | None, Position | None] = (None, None)  # decide() -> accept()

    def _position(self, event_id: str) -> Position | None:
        parsed = self._parsed
        if parsed[0] == event_id:
            return parsed[1]
        pos = position_of(event_id)
        self._parsed = (event_id, pos)
        return pos

    # -- decisions -------------------------------------------------------------------

    def decide(
        self, type_: str, event_id: str | None, data: Any, seq: int | None = None
    ) -> tuple[Verdict, GapCheck | None]:
        """What to do with an event of this stream; changes nothing."""
        if event_id is None:
            return Verdict.DELIVER, None
        if event_id in self.ids:
            return Verdict.DUPLICATE, None
        pos = self._position(event_id)
        if pos is None:
            return Verdict.DELIVER, None
        if self.epoch is not None and pos.epoch != self.epoch:
            check = GapCheck(self.resume_id, "", 0, 0, pos.offset, epoch_changed=True)
            return Verdict.CHECK, check
        if is_snapshot(type_, data):
            return Verdict.DELIVER, None
        if type_ in KEYED_TYPES:
            key = data.get("symbol") if isinstance(data, dict) else None
            last = self.keys.get((type_, key)) if isinstance(key, str) else None
            if last is not None and (pos.offset, pos.tick) <= (last.offset, last.tick):
                return Verdict.STALE, None
            floor = self.floor
            if floor is not None and (pos.offset, pos.tick) <= (floor.offset, floor.tick):
                return Verdict.STALE, None
        elif self.log_pos is not None and _before_or_at(pos, self.log_pos):
            return Verdict.DUPLICATE, None
        if seq is None:
            return Verdict.DELIVER, None
        key = seq_key(type_, data)
        last_seq = self.seqs.get(key)
        if last_seq is None or seq == last_seq[0] + 1:
            return Verdict.DELIVER, None
        if seq <= last_seq[0]:
            return Verdict.DUPLICATE, None
        return Verdict.CHECK, GapCheck(last_seq[1], key, last_seq[0], seq, pos.offset)

    # -- updates ---------------------------------------------------------------------

    def accept(self, type_: str, event_id: str | None, data: Any, seq: int | None = None) -> Position | None:
        """Record a delivered event; its position (None for an opaque id or none)."""
        if event_id is None:
            return None
        self.ids.add(event_id)
        pos = self._position(event_id)
        if pos is None:
            self.resume_id = event_id
            return None
        if self.epoch != pos.epoch:
            self._forget_positions()
            self.epoch = pos.epoch
        mark = self.mark
        if mark is None or (pos.offset, pos.tick) > (mark.offset, mark.tick):
            self.mark = pos
            self.resume_id = event_id
        snapshot = is_snapshot(type_, data)
        if snapshot:
            self.floor = pos if self.floor is None or not _before_or_at(pos, self.floor) else self.floor
        elif type_ in KEYED_TYPES:
            key = data.get("symbol") if isinstance(data, dict) else None
            if isinstance(key, str):
                self._remember(self.keys, (type_, key), pos)
        if seq is not None:
            self._remember(self.seqs, seq_key(type_, data), (seq, event_id))
        if (snapshot or type_ not in KEYED_TYPES) and (
            self.log_pos is None or not _before_or_at(pos, self.log_pos)
        ):
            self.log_pos = pos
        return pos

    def _remember(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Set `key` as the most recent entry of a bounded table (the oldest goes first)."""
        table.pop(key, None)
        table[key] = value
        if len(table) > self.key_capacity:
            del table[next(iter(table))]

    def applies(self, pos: Position | None) -> bool:
        """Whether an event at `pos` is newer than the local state (see `state_floor`)."""
        floor = self.state_floor
        if floor is None or pos is None:
            return True
        if pos.epoch != floor.epoch:
            return True
        return (pos.offset, pos.tick) > (floor.offset, floor.tick)

    def seed(self, event_id: str | None) -> None:
        """Start from an id given by the user (resume after it)."""
        self.reset()
        if event_id is None:
            return
        self.resume_id = event_id
        pos = position_of(event_id)
        if pos is not None:
            self.epoch = pos.epoch
            self.mark = self.log_pos = pos

    def reset(self) -> None:
        """The server could not resume the stream (`stream:reset`): start over."""
        self.resume_id = None
        self._forget_positions()

    def _forget_positions(self) -> None:
        self.state_floor = None
        self.epoch = None
        self.log_pos = None
        self.mark = None
        self.floor = None
        self.keys.clear()
        self.seqs.clear()
        self._checked = set()
        self._checked_events = []

    # -- the last gap check ----------------------------------------------------------------

    def remember_check(self, events: Sequence[WireEvent]) -> None:
        """Keep the events a check returned: they answer later holes they list."""
        self._checked_events = list(events)
        self._checked = {event.id for event in events if event.id is not None}

    def answer_from_last_check(self, event_id: str | None, check: GapCheck) -> list[WireEvent] | None:
        """The undelivered events of `check`'s hole, if the last check listed `event_id`
        (so it saw everything up to it); None when it cannot tell."""
        if check.epoch_changed or event_id is None or event_id not in self._checked:
            return None
        return self.missing(self._checked_events, check)

    def missing(self, events: Sequence[WireEvent], check: GapCheck) -> list[WireEvent]:
        """The events of a check's answer that fill its hole and were not delivered."""
        if check.epoch_changed:
            return []
        ids = self.ids
        return [e for e in events if check.contains(e) and e.id not in ids]


class ResumeIds(dict[str, str | None]):
    """Each stream's resume id (None: start fresh). `started` names the streams a session
    carried that have no id (nothing of theirs came yet): on a shared connection (the `/me`
    of sse.py) they need no fresh start, they are caught up with their wire-mates."""

    started: frozenset[str] = frozenset()


class Cursors:
    """Every stream's cursor, made on first use: where each stream resumes."""

    def __init__(self, dedup_capacity: int = 4096, key_capacity: int = 10_000) -> None:
        self.dedup_capacity = dedup_capacity
        self.key_capacity = key_capacity
        self._by_stream: dict[str, StreamCursor] = {}

    def get(self, stream: str) -> StreamCursor:
        cursor = self._by_stream.get(stream)
        if cursor is None:
            cursor = self._by_stream[stream] = StreamCursor(stream, self.dedup_capacity, self.key_capacity)
        return cursor

    def names(self) -> list[str]:
        return list(self._by_stream)

    def seeded(self, stream: str) -> bool:
        cursor = self._by_stream.get(stream)
        return cursor is not None and cursor.resume_id is not None

    def seed(self, last_event_ids: Mapping[str, str | None]) -> None:
        """Resume streams after ids the caller kept."""
        for stream, event_id in last_event_ids.items():
            if event_id is not None:
                self.get(stream).seed(event_id)

    def resume_ids(self, streams: Iterable[str] | None = None) -> ResumeIds:
        """The resume id of each of `streams` (default: every stream seen so far)."""
        names = list(self._by_stream if streams is None else streams)
        out = ResumeIds((name, self.get(name).resume_id) for name in names)
        out.started = frozenset(n for n in names if out[n] is None and self._by_stream[n].started)
        return out
