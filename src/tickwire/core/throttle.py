"""Per-key throttling of ticks: at most one per key per window, latest value wins.

Leading and trailing edge: the first tick of a quiet key goes out at once; ticks
arriving within the window replace each other and the latest goes out when the
window ends. Throttling happens before ticks are stamped, so ids stay in wire order
and the work is shared by every subscriber.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from tickwire.core.clock import Clock

T = TypeVar("T")
_EPS = 1e-9  # float sums of small steps must not miss a window's end


class Throttle(Generic[T]):
    def __init__(self, clock: Clock, window_s: float) -> None:
        self.clock = clock
        self.window_s = window_s
        self._last_sent: dict[str, float] = {}
        self._pending: dict[str, T] = {}
        self.conflated = 0

    def offer(self, key: str, item: T) -> T | None:
        """The item when it may go now; None when it waits for the window's end."""
        if self.window_s <= 0:
            return item
        now = self.clock.monotonic()
        last = self._last_sent.get(key)
        if last is None or now - last >= self.window_s - _EPS:
            if key in self._pending:
                # A pending value is older than this one: this one replaces it.
                del self._pending[key]
                self.conflated += 1
            self._last_sent[key] = now
            return item
        if key in self._pending:
            self.conflated += 1
        self._pending[key] = item
        return None

    def discard(self, key: str) -> None:
        """Forget the item waiting for `key` (newer news of that key made it stale); the
        window stays, so the next tick of the key still waits for its end."""
        self._pending.pop(key, None)

    def next_due(self) -> float | None:
        """Monotonic time of the earliest pending item's release, None when idle."""
        if not self._pending:
            return None
        return min(self._last_sent[k] for k in self._pending) + self.window_s

    def due(self) -> list[T]:
        """Release the pending items whose window has ended."""
        now = self.clock.monotonic()
        out: list[T] = []
        for key in [k for k in self._pending if now - self._last_sent[k] >= self.window_s - _EPS]:
            out.append(self._pending.pop(key))
            self._last_sent[key] = now
        self._forget_quiet(now)
        return out

    def _forget_quiet(self, now: float) -> None:
        if len(self._last_sent) > 4 * (len(self._pending) + 1024):
            for key in [
                k for k, t in self._last_sent.items() if now - t >= self.window_s and k not in self._pending
            ]:
                del self._last_sent[key]
