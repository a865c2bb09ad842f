"""Pieces every streaming transport shares: the flusher, the writer's wake-up, client ids."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tickwire.streaming")


class Waker:
    """Wakes one writer task: when its outbox becomes non-empty, or at a deadline.

    One future per wait and at most one timer per connection (re-armed only when it
    fires), so waking a writer costs a `set_result` and nothing else.
    """

    __slots__ = ("_fut", "_loop", "_timer", "_timer_at")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._fut: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def wake(self) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def wait(self, deadline_mono: float, now_mono: float) -> None:
        """Sleep until woken or until `deadline_mono` (the node clock's monotonic time)."""
        loop_deadline = self._loop.time() + max(0.0, deadline_mono - now_mono)
        if self._timer is None or self._timer_at > loop_deadline + 0.001:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = loop_deadline
            self._timer = self._loop.call_at(loop_deadline, self._fire)
        self._fut = self._loop.create_future()
        try:
            await self._fut
        finally:
            self._fut = None

    def _fire(self) -> None:
        self._timer = None
        self.wake()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Flusher:
    """Flushes every connection that became ready, once per event-loop turn.

    `turn` counts its runs: a writer that wrote a frame at once (`Writer.write_now`) queues
    whatever else comes before the next run, so a burst still coalesces into one write."""

    __slots__ = ("_loop", "_ready", "_scheduled", "turn")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready: list[Callable[[], None]] = []
        self._scheduled = False
        self.turn = 0

    def mark(self, flush: Callable[[], None]) -> None:
        self._ready.append(flush)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def end_turn_soon(self) -> None:
        """Make sure the turn ends (`turn` moves on) on the next loop iteration."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        self.turn += 1
        ready, self._ready = self._ready, []
        for flush in ready:
            try:
                flush()
            except Exception:  # one broken connection must not stop the others' writes
                log.exception("flush failed")


def app_flusher(state: Any) -> Flusher:
    """The app's flusher, made on first use (it belongs to the running loop)."""
    flusher: Flusher | None = getattr(state, "flusher", None)
    if flusher is None:
        flusher = state.flusher = Flusher()
    return flusher


class ClientIds:
    """`{userId}-{stream}-{unix_ms}`, the ms bumped so ids are unique on this node."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def next(self, user: str | None, stream: str, now_ms: int) -> str:
        key = (user or "anonymous", stream)
        ms = max(now_ms, self._last.get(key, 0) + 1)
        self._last[key] = ms
        if len(self._last) > 10_000:
            self._last = {k: v for k, v in self._last.items() if v > now_ms}
        return f"{key[0]}-{stream}-{ms}"
