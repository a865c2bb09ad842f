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
   c. when nothing is droppable `put()` waits for room (`put_nowait` says False): the
      caller decides (outlet.py spills log events to history instead of waiting).
   An item put with `conflate_always` replaces the queued item of its key even when there is
   room (a consumer that only wants the latest value per key).
3. `close()` ends `get()` once the queue is drained (raising the error given, if any).

Nothing here does I/O; `put` and `get` are the only awaits. `offer` is the fast path of a
caller that classified the item itself (lane, priority, droppable, key).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from tickwire.client.errors import ClientError

T = TypeVar("T")
LEVELS = 4  # priorities 0 (most urgent) .. 3


class QueueClosed(ClientError):
    """`get()` on a closed, drained queue."""


class _Entry(Generic[T]):
    __slots__ = ("alive", "item", "key", "lane", "priority", "seq")

    def __init__(self, item: T, lane: _Lane[T], priority: int, key: Hashable | None, seq: int) -> None:
        self.item = item
        self.lane = lane
        self.priority = priority
        self.key = key
        self.seq = seq
        self.alive = True


class _Lane(Generic[T]):
    __slots__ = ("counts", "entries")

    def __init__(self) -> None:
        self.entries: deque[_Entry[T]] = deque()
        self.counts = [0] * LEVELS

    def best(self) -> int:
        counts = self.counts
        for priority in range(LEVELS):
            if counts[priority]:
                return priority
        return LEVELS


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
        self._droppables: list[deque[_Entry[T]]] = [deque() for _ in range(LEVELS)]
        self._size = 0
        self._seq = 0
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._error: BaseException | None = None
        self.dropped = 0
        self.waits = 0  # times put() had to wait for room

    def __len__(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    # -- producer ------------------------------------------------------------------

    async def put(self, item: T) -> None:
        """Queue `item`, dropping by priority or waiting for room as the rules say."""
        while not self.put_nowait(item):
            self.waits += 1
            self._room.clear()
            await self._room.wait()

    def put_nowait(self, item: T) -> bool:
        """Queue `item` if the rules allow it without waiting; False when it must wait."""
        can_drop = self._droppable(item)
        return self.offer(
            item, self._lane_of(item), self._priority(item), can_drop, self._key(item) if can_drop else None
        )

    def force(self, item: T) -> None:
        """Queue `item` even over the bound (an item that must not wait nor be lost)."""
        can_drop = self._droppable(item)
        self._append(
            item, self._lane_of(item), self._priority(item), can_drop, self._key(item) if can_drop else None
        )

    def offer(
        self,
        item: T,
        lane: str,
        priority: int,
        can_drop: bool,
        key: Hashable | None,
        conflate_always: bool = False,
    ) -> bool:
        """`put_nowait` for an item the caller classified: False when it must wait."""
        if self._closed:
            raise QueueClosed("queue closed")
        if key is not None and (conflate_always or self._size >= self.capacity):
            old = self._keys.get(key)
            if old is not None and old.alive:
                self._kill(old, "conflated")
                self._append(item, lane, priority, can_drop, key)
                return True
        if self._size < self.capacity:
            self._append(item, lane, priority, can_drop, key)
            return True
        victim = self._victim()
        if can_drop and (victim is None or priority >= victim.priority):
            self._count_drop(item, "full")
            return True
        if victim is None:
            return False
        self._kill(victim, "full")
        self._append(item, lane, priority, can_drop, key)
        return True

    def _victim(self) -> _Entry[T] | None:
        """The oldest droppable entry of the lowest priority."""
        for priority in range(LEVELS - 1, -1, -1):
            entries = self._droppables[priority]
            while entries and not entries[0].alive:
                entries.popleft()
            if entries:
                return entries[0]
        return None

    def _append(self, item: T, name: str, priority: int, can_drop: bool, key: Hashable | None) -> None:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane()
        self._seq += 1
        entry = _Entry(item, lane, priority, key, self._seq)
        lane.entries.append(entry)
        lane.counts[priority] += 1
        if can_drop:
            self._droppables[priority].append(entry)
            if key is not None:
                self._keys[key] = entry
        self._size += 1
        if self._size == 1:
            self._readable.set()

    def _kill(self, entry: _Entry[T], reason: str) -> None:
        entry.alive = False
        self._forget(entry)
        self._count_drop(entry.item, reason)

    def _forget(self, entry: _Entry[T]) -> None:
        entry.lane.counts[entry.priority] -= 1
        key = entry.key
        if key is not None and self._keys.get(key) is entry:
            del self._keys[key]
        self._size -= 1

    def _count_drop(self, item: T, reason: str) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(item, reason)

    def take_lane(self, name: str, predicate: Callable[[T], bool], remove: bool) -> list[T]:
        """The waiting items of lane `name` that `predicate` accepts, oldest first; taken out
        of the queue when `remove` (moved to another consumer, not dropped)."""
        lane = self._lanes.get(name)
        if lane is None:
            return []
        out = []
        for entry in lane.entries:
            if entry.alive and predicate(entry.item):
                out.append(entry.item)
                if remove:
                    entry.alive = False
                    self._forget(entry)
        if remove and out and self._size == 0:
            self._readable.clear()
        if remove and out:
            self._room.set()
        return out

    # -- consumer ------------------------------------------------------------------

    def get_nowait(self) -> T | None:
        lanes = self._lanes
        if len(lanes) == 1:
            chosen: _Lane[T] | None = next(iter(lanes.values()))
        else:
            chosen = self._choose()
        if chosen is None:
            return None
        entries = chosen.entries
        while entries and not entries[0].alive:
            entries.popleft()
        if not entries:
            return None
        entry = entries.popleft()
        entry.alive = False
        self._forget(entry)
        if entry.key is not None or self._droppables[entry.priority]:
            self._trim(entry.priority)
        room = self._room
        if not room.is_set():
            room.set()
        if self._size == 0:
            self._readable.clear()
            lanes.clear()
            for dq in self._droppables:
                dq.clear()
        return entry.item

    def _choose(self) -> _Lane[T] | None:
        best: tuple[int, int] | None = None
        chosen: _Lane[T] | None = None
        for lane in self._lanes.values():
            entries = lane.entries
            while entries and not entries[0].alive:
                entries.popleft()
            if not entries:
                continue
            rank = (lane.best(), entries[0].seq)
            if best is None or rank < best:
                best, chosen = rank, lane
        return chosen

    def _trim(self, priority: int) -> None:
        dropq = self._droppables[priority]
        while dropq and not dropq[0].alive:
            dropq.popleft()
        if len(dropq) > 2 * self.capacity:
            self._droppables[priority] = deque(e for e in dropq if e.alive)

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
