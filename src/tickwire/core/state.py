"""Keyed latest values beside a log: orders, positions, prices, strategies.

Each entry remembers the position of its last change and whether that change was a
tick. A resume replays log events from history and then needs only the entries a
tick changed since the resume position: log-event changes arrive with the replay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tickwire.core.ids import Position

# Whether a value is finished (e.g. a closed order): finished entries are evicted first.
Finished = Callable[[dict[str, Any]], bool]


def never_finished(value: dict[str, Any]) -> bool:
    return False


@dataclass(slots=True)
class StateEntry:
    value: dict[str, Any]
    pos: Position
    tick: bool
    type: str
    ms: int


class KeyedState:
    """Latest value per key for one (log, kind), with delta merge and a bound.

    When over `capacity`, the oldest entries that `finished` says are done (terminal
    orders, closed positions) are evicted first, then the oldest of all.
    """

    def __init__(self, capacity: int = 1000, finished: Finished = never_finished) -> None:
        self.capacity = capacity
        self.finished = finished
        self._entries: dict[str, StateEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def entry(self, key: str) -> StateEntry | None:
        return self._entries.get(key)

    def merge(
        self, key: str, delta: dict[str, Any], pos: Position, *, tick: bool, type_: str, ms: int
    ) -> dict[str, Any]:
        """Merge a delta into the key's value (fields absent from the delta are kept)."""
        entry = self._entries.pop(key, None)
        if entry is None:
            entry = StateEntry(dict(delta), pos, tick, type_, ms)
        else:
            entry.value.update(delta)
            entry.pos, entry.tick, entry.type, entry.ms = pos, tick, type_, ms
        self._entries[key] = entry  # re-insert: dict order is recency order
        if len(self._entries) > self.capacity:
            self._evict()
        return entry.value

    def remove(self, key: str) -> None:
        self._entries.pop(key, None)

    def values(self) -> list[dict[str, Any]]:
        return [e.value for e in self._entries.values()]

    def items(self) -> Iterator[tuple[str, StateEntry]]:
        return iter(list(self._entries.items()))

    def ticks_after(self, pos: Position, since_ms: int | None = None) -> list[StateEntry]:
        """Entries last changed by a tick after `pos` (or before it but stamped at or after
        `since_ms`), oldest change first."""
        changed = [
            e
            for e in self._entries.values()
            if e.tick and (e.pos.after(pos) or (since_ms is not None and e.ms >= since_ms and e.pos != pos))
        ]
        changed.sort(key=lambda e: (e.pos.offset, e.pos.tick))
        return changed

    def _evict(self) -> None:
        excess = len(self._entries) - self.capacity
        done = [k for k, e in self._entries.items() if self.finished(e.value)][:excess]
        for key in done:
            del self._entries[key]
        while len(self._entries) > self.capacity:
            del self._entries[next(iter(self._entries))]
