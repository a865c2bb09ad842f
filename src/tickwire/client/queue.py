"""The bounded delivery queue between the client and its user, with priorities.

Rules:

1. Order. Each stream is a FIFO lane, so a stream's events are delivered in the order they
   were accepted. Among lanes, `get()` serves the lane holding the most urgent pending item
   (a lane inherits the priority of its most urgent item, so an error alert waiting behind an
   info alert pulls its whole lane forward); ties go to the oldest head.
2. Bound. At most `capacity` items wait. When a new item does not fit:
   a. a droppable item with a conflation key replaces the queued item of the same key
      (the newer value wins, queued at the end; counted as dropped, reason `conflated`);
   b. otherwise the oldest droppable item of the lowest priority (queued or the new one)
      is dropped and counted (reason `full`);
   c. when nothing is droppable (log events are never dropped) `put()` waits for room:
      backpressure, which stops the client reading its socket, which lets the server's
      slow-consumer policy and history do their jobs.
3. `close()` ends `get()` once the queue is drained (raising the error given, if any).

Nothing here does I/O; `put` and `get` are the only awaits.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from tickwire.client.errors import ClientError

T = TypeVar("T")


class QueueClosed(ClientError):
    """`get()` on a closed, drained queue."""


class _Entry(Generic[T]):
    __slots__ = ("alive", "item", "key", "priority", "seq")

    def __init__(self, item: T, priority: int, key: Hashable | None, seq: int) -> None:
        self.item = item
        self.priority = priority
        self.key = key
        self.seq = seq
        self.alive = True


class _Lane(Generic[T]):
    __slots__ = ("counts", "entries")

    def __init__(self) -> None:
        self.entries: deque[_Entry[T]] = deque()
        self.counts: dict[int, int] = {}

    def head(self) -> _Entry[T] | None:
        while self.entries and not self.entries[0].alive:
            self.entries.popleft()
        return self.entries[0] if self.entries else None

    def best(self) -> int:
        return min(p for p, n in self.counts.items() if n > 0)


class DeliveryQueue(Generic[T]):
    def __init__(
        self,
        capacity: int,
        *,
        priority: Callable[[T], int],
        droppable: Callable[[T], bool],
        lane: Callable[[T], str],
        key: Callable[[T], Hashable | None] = lambda item: None,
        on_drop: Callable[[T, str], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.capacity = capacity
        self._priority = priority
        self._droppable = droppable
        self._lane_of = lane
        self._key = key
        self._on_drop = on_drop
        self._lanes: dict[str, _Lane[T]] = {}
        self._keys: dict[Hashable, _Entry[T]] = {}
        self._droppables: dict[int, deque[_Entry[T]]] = {}  # oldest first, dead ones skipped
        self._size = 0
        self._seq = itertools.count()
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._error: BaseException | None = None
        self.dropped = 0
        self.waits = 0  # times put() had to wait for room (backpressure)

    def __len__(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    # -- producer ------------------------------------------------------------------

    async def put(self, item: T) -> None:
        """Queue `item`, dropping by priority or waiting for room as the rules say."""
        while not self._offer(item):
            self.waits += 1
            self._room.clear()
            await self._room.wait()

    def put_nowait(self, item: T) -> bool:
        """Queue `item` if the rules allow it without waiting; False when it must wait."""
        return self._offer(item)

    def force(self, item: T) -> None:
        """Queue `item` even over the bound (for an item already accepted when its
        producer is cancelled: it must not be lost)."""
        self._append(item)

    def _offer(self, item: T) -> bool:
        if self._closed:
            raise QueueClosed("queue closed")
        if self._size < self.capacity:
            self._append(item)
            return True
        new_droppable = self._droppable(item)
        key = self._key(item) if new_droppable else None
        if key is not None:
            old = self._keys.get(key)
            if old is not None and old.alive:
                self._kill(old, "conflated")
                self._append(item)
                return True
        victim = self._victim()
        new_priority = self._priority(item)
        if new_droppable and (victim is None or new_priority >= victim.priority):
            self._count_drop(item, "full")
            return True
        if victim is None:
            return False
        self._kill(victim, "full")
        self._append(item)
        return True

    def _victim(self) -> _Entry[T] | None:
        """The oldest droppable entry of the lowest priority."""
        for priority in sorted(self._droppables, reverse=True):
            entries = self._droppables[priority]
            while entries and not entries[0].alive:
                entries.popleft()
            if entries:
                return entries[0]
        return None

    def _append(self, item: T) -> None:
        name = self._lane_of(item)
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane()
        priority = self._priority(item)
        can_drop = self._droppable(item)
        key = self._key(item) if can_drop else None
        entry = _Entry(item, priority, key, next(self._seq))
        lane.entries.append(entry)
        if can_drop:
            self._droppables.setdefault(priority, deque()).append(entry)
        lane.counts[priority] = lane.counts.get(priority, 0) + 1
        if key is not None:
            self._keys[key] = entry
        self._size += 1
        self._readable.set()

    def _kill(self, entry: _Entry[T], reason: str) -> None:
        entry.alive = False
        self._forget(entry)
        self._count_drop(entry.item, reason)

    def _forget(self, entry: _Entry[T]) -> None:
        lane = self._lanes[self._lane_of(entry.item)]
        lane.counts[entry.priority] -= 1
        if entry.key is not None and self._keys.get(entry.key) is entry:
            del self._keys[entry.key]
        self._size -= 1

    def _count_drop(self, item: T, reason: str) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(item, reason)

    # -- consumer ------------------------------------------------------------------

    def get_nowait(self) -> T | None:
        best: tuple[int, int] | None = None
        chosen: _Lane[T] | None = None
        for lane in self._lanes.values():
            head = lane.head()
            if head is None:
                continue
            rank = (lane.best(), head.seq)
            if best is None or rank < best:
                best, chosen = rank, lane
        if chosen is None:
            return None
        entry = chosen.entries.popleft()
        entry.alive = False
        self._forget(entry)
        dropq = self._droppables.get(entry.priority)
        if dropq:
            while dropq and not dropq[0].alive:
                dropq.popleft()
            if len(dropq) > 2 * self.capacity:
                self._droppables[entry.priority] = deque(e for e in dropq if e.alive)
        self._room.set()
        if self._size == 0:
            self._readable.clear()
            self._lanes.clear()
            self._droppables.clear()
        return entry.item

    async def get(self) -> T:
        """The next item; raises `QueueClosed` (or the close error) once closed and drained."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise QueueClosed("queue closed")
            await self._readable.wait()

    def close(self, error: BaseException | None = None) -> None:
        self._closed = True
        self._error = error
        self._readable.set()
        self._room.set()
