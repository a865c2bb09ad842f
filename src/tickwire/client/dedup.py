"""Bounded memory of the event ids a stream has delivered.

An insertion-ordered set that forgets its oldest ids beyond `capacity`, so memory is
bounded whatever the stream's length. Old duplicates beyond the window are still caught
by position (see gaps.py): an id this old is behind the stream's cursor.
"""

from __future__ import annotations


class RecentIds:
    __slots__ = ("_ids", "capacity")

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError("dedup capacity must be at least 1")
        self.capacity = capacity
        self._ids: dict[str, None] = {}  # insertion-ordered: the oldest first

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> None:
        ids = self._ids
        if event_id in ids:
            del ids[event_id]  # to the end: the most recent
        ids[event_id] = None
        if len(ids) > self.capacity:
            del ids[next(iter(ids))]
