"""Per-stream cursors: the resume point, duplicates, and what counts as a gap.

Ids. A tickwire id is `{unix_ms}-{token}`; the token packs a log position
`(epoch, offset, tick)` (core/ids.py): `offset` counts the log events of one log, `tick`
counts everything stamped on it, and a tick (a latest-value update that history does not
keep) carries the offset of the last log event before it. This client decodes ids to order
and deduplicate events. An id it cannot decode is opaque: deduplicated by its text and
resumed from, never ordered, never used to find gaps.

Why an offset jump is not a gap. A stream is a filtered view of one log (`orders` is the
order events of the user's log, `prices?symbols=A` the A ticks of the prices log). Offsets
count the log's events, so consecutive events of a stream skip the offsets of events that
belong to the log's other streams. Only the server knows the filter's result, so the
client asks it (the events endpoint applies the stream's own filter) before it calls a
jump a gap.

Definitions, per stream and within one epoch:

- `log_pos`: the highest position of a log event or snapshot delivered on the stream.
- `covered`: the offset up to which the client holds every log event of the stream. It
  advances to the offset of each delivered event, to a snapshot's end offset (a snapshot
  carries the id of the end of its log), to a resume point given by the user, and over a
  checked range.
- Duplicate (dropped, counted): an id delivered before (bounded memory, `RecentIds`); a log
  event at or before `log_pos` (the server sends a stream's log events in log order, so it
  was delivered already); a keyed update (`price:update`, `position:update`) at or before
  the last one delivered for the same symbol, or before the last snapshot (an older value
  than one already applied).
- Gap candidate: an event that leaves offsets the client has not seen between `covered`
  and its own offset: `(covered, offset)` for a log event, `(covered, offset]` for a price
  tick (the log event at a tick's own offset precedes it); or an event of another epoch
  with no `stream:reset` before it (the log lost its history).
- Gap: a candidate for which `GET /api/stream/{stream}/events?after=<resume id>` returns
  log events of the stream inside the range that were not delivered, or answers
  `recovered: false`. A candidate answered with nothing in range is a filtered skip and
  not a gap (counted as a gap check only).

Events that arrive by polling are never candidates: a poll answer is the server's own
filtered list of everything after its `after`, so what it skips is not in the stream.

Repair (routing.py): the missing events are delivered, marked `repaired`, before the event
that revealed them; an unrecoverable answer is surfaced as `stream:reset` and its fresh
snapshot (or buffered events) delivered and applied. One check answers every later
candidate whose event it already lists, so a burst of filtered skips costs one request.

Known limits: a stream whose log was empty when the client started has no position until
its first event arrives (the snapshot of an empty log carries no id), so a reconnect before
then starts fresh and the events of that window arrive inside the new snapshot, not one by
one. `position:update` is a log event when a fill opens or changes a position and a
tick when a price marks it; ids do not say which, so it is ordered per symbol and takes the
log-event range `(covered, offset)`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tickwire.client.dedup import RecentIds
from tickwire.client.events import KEYED_TYPES, TICK_TYPES, WireEvent, is_snapshot, key_of
from tickwire.core.ids import MalformedId, Position, parse_id


def position_of(event_id: str | None) -> Position | None:
    """The position an id encodes, or None for an opaque (foreign or malformed) id."""
    if event_id is None:
        return None
    try:
        return parse_id(event_id)
    except MalformedId:
        return None


def _before_or_at(a: Position, b: Position) -> bool:
    return (a.offset, a.tick) <= (b.offset, b.tick)


class Verdict(Enum):
    DELIVER = "deliver"
    DUPLICATE = "duplicate"  # seen before, or behind the cursor
    STALE = "stale"  # a keyed value older than the one already applied
    CHECK = "check"  # a gap candidate: ask the server first


@dataclass(frozen=True, slots=True)
class GapCheck:
    """The offsets a candidate leaves unseen, and where to ask from."""

    after: str | None
    low: int  # exclusive
    high: int
    inclusive: bool
    epoch_changed: bool = False

    def contains(self, pos: Position) -> bool:
        return self.low < pos.offset < self.high or (self.inclusive and pos.offset == self.high)


class StreamCursor:
    """Everything the client knows about how far one stream got."""

    def __init__(self, stream: str, dedup_capacity: int = 4096, key_capacity: int = 10_000) -> None:
        self.stream = stream
        self.ids = RecentIds(dedup_capacity)
        self.key_capacity = key_capacity
        self.epoch: int | None = None
        self.log_pos: Position | None = None
        self.covered: int | None = None
        self.mark: Position | None = None  # the highest position delivered
        self.resume_id: str | None = None
        self.keys: OrderedDict[str, Position] = OrderedDict()
        self.floor: Position | None = None  # keyed values at or before it are in the snapshot
        self._checked: dict[str, Position] = {}  # ids listed by the last gap check
        self._checked_events: list[WireEvent] = []

    # -- decisions -------------------------------------------------------------------

    def decide(self, type_: str, event_id: str | None, data: Any) -> tuple[Verdict, GapCheck | None]:
        """What to do with an event of this stream; changes nothing."""
        if event_id is None:
            return Verdict.DELIVER, None
        if event_id in self.ids:
            return Verdict.DUPLICATE, None
        pos = position_of(event_id)
        if pos is None:
            return Verdict.DELIVER, None
        if self.epoch is not None and pos.epoch != self.epoch:
            check = GapCheck(self.resume_id, self.covered or 0, pos.offset, True, epoch_changed=True)
            return Verdict.CHECK, check
        if is_snapshot(type_, data):
            return Verdict.DELIVER, None
        if type_ in KEYED_TYPES:
            key = key_of(type_, data)
            last = self.keys.get(f"{type_}|{key}") if key is not None else None
            if last is not None and _before_or_at(pos, last):
                return Verdict.STALE, None
            if self.floor is not None and _before_or_at(pos, self.floor):
                return Verdict.STALE, None
        elif self.log_pos is not None and _before_or_at(pos, self.log_pos):
            return Verdict.DUPLICATE, None
        if self.covered is None:
            return Verdict.DELIVER, None
        inclusive = type_ in TICK_TYPES
        unseen = pos.offset > self.covered + (0 if inclusive else 1)
        if unseen:
            return Verdict.CHECK, GapCheck(self.resume_id, self.covered, pos.offset, inclusive)
        return Verdict.DELIVER, None

    # -- updates ---------------------------------------------------------------------

    def accept(self, type_: str, event_id: str | None, data: Any) -> None:
        """Record a delivered event."""
        if event_id is None:
            return
        self.ids.add(event_id)
        pos = position_of(event_id)
        if pos is None:
            self.resume_id = event_id
            return
        if self.epoch != pos.epoch:
            self._forget_positions()
            self.epoch = pos.epoch
        if self.mark is None or not _before_or_at(pos, self.mark):
            self.mark = pos
            self.resume_id = event_id
        snapshot = is_snapshot(type_, data)
        if snapshot:
            self.floor = pos if self.floor is None or not _before_or_at(pos, self.floor) else self.floor
        key = key_of(type_, data)
        if key is not None:
            name = f"{type_}|{key}"
            self.keys[name] = pos
            self.keys.move_to_end(name)
            if len(self.keys) > self.key_capacity:
                self.keys.popitem(last=False)
        if (snapshot or type_ not in KEYED_TYPES) and (
            self.log_pos is None or not _before_or_at(pos, self.log_pos)
        ):
            self.log_pos = pos
        self.covered = pos.offset if self.covered is None else max(self.covered, pos.offset)

    def cover(self, check: GapCheck) -> None:
        """Everything of the stream in the checked range has been delivered."""
        if check.epoch_changed:
            return
        high = check.high if check.inclusive else check.high - 1
        self.covered = high if self.covered is None else max(self.covered, high)

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
            self.covered = pos.offset

    def reset(self) -> None:
        """The server could not resume the stream (`stream:reset`): start over."""
        self.resume_id = None
        self._forget_positions()

    def _forget_positions(self) -> None:
        self.epoch = None
        self.log_pos = None
        self.covered = None
        self.mark = None
        self.floor = None
        self.keys.clear()
        self._checked = {}
        self._checked_events = []

    # -- the last gap check ----------------------------------------------------------------

    def remember_check(self, events: Sequence[WireEvent]) -> None:
        """Keep the events a check returned: they answer later candidates they list."""
        self._checked_events = list(events)
        self._checked = {}
        for event in events:
            pos = position_of(event.id)
            if event.id is not None and pos is not None:
                self._checked[event.id] = pos

    def answer_from_last_check(self, event_id: str | None, check: GapCheck) -> list[WireEvent] | None:
        """The undelivered events of `check`'s range, if the last check listed `event_id`
        (so it saw everything up to it); None when it cannot tell."""
        if check.epoch_changed or event_id is None or event_id not in self._checked:
            return None
        return self.missing(self._checked_events, check, event_id)

    def missing(self, events: Sequence[WireEvent], check: GapCheck, event_id: str | None) -> list[WireEvent]:
        """The events of a check's answer that fall in its range and were not delivered."""
        out = []
        for event in events:
            pos = position_of(event.id)
            if pos is None or event.id == event_id or event.id in self.ids:
                continue
            if pos.epoch != self.epoch or not check.contains(pos):
                continue
            if event.type in TICK_TYPES:
                continue  # current values: the revealing tick or a later one supersedes them
            out.append(event)
        return out


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

    def seed(self, last_event_ids: Mapping[str, str]) -> None:
        """Resume streams after ids the caller kept."""
        for stream, event_id in last_event_ids.items():
            self.get(stream).seed(event_id)

    def resume_ids(self, streams: Iterable[str] | None = None) -> dict[str, str | None]:
        """The resume id of each of `streams` (default: every stream seen so far)."""
        names = self._by_stream if streams is None else streams
        return {name: self.get(name).resume_id for name in names}
