"""Time that moves only when a test says so: a FakeClock and a `sleep` whose sleepers wake
when `advance` moves the clock past their deadline (for components that take a `sleep`)."""

from __future__ import annotations

import asyncio
import heapq
import itertools

from tickwire.core.clock import FakeClock


class ManualTime:
    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.requested: list[float] = []  # every delay asked for, in order

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.clock.monotonic() + seconds, next(self._order), future))
        await future

    @property
    def sleeping(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float, settle: float = 0.02) -> None:
        """Move the clock by `seconds`, waking every sleeper whose deadline passes, in order.
        After each wake the woken task runs (real I/O included) until some task sleeps
        again, as many as slept before (bounded by half a second of real time), so timers
        set after I/O count from the right moment. Then I/O settles for `settle` s."""
        target = self.clock.monotonic() + seconds
        while True:
            self._sleepers = [s for s in self._sleepers if not s[2].done()]
            heapq.heapify(self._sleepers)
            if not self._sleepers or self._sleepers[0][0] > target:
                break
            before = len(self._sleepers)
            deadline, _, future = heapq.heappop(self._sleepers)
            if deadline > self.clock.monotonic():
                self.clock.advance(deadline - self.clock.monotonic())
            future.set_result(None)
            loop = asyncio.get_running_loop()
            until = loop.time() + 0.5
            await asyncio.sleep(0)
            while self.sleeping < before and loop.time() < until:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.002)
        if target > self.clock.monotonic():
            self.clock.advance(target - self.clock.monotonic())
        await asyncio.sleep(settle)


class InstantTime:
    """A `sleep` that returns at once, moving the clock by the delay and recording it."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.requested: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        self.clock.advance(max(0.0, seconds))
        await asyncio.sleep(0)
