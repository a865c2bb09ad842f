"""Connection attempts per client IP: a sliding window of the last minute."""

from __future__ import annotations

import math
from collections import deque

from tickwire.core.clock import Clock


class RateLimiter:
    """At most `limit` attempts per `window_s` per key; 0 disables it."""

    def __init__(self, clock: Clock, limit: int, window_s: float = 60.0, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._attempts: dict[str, deque[float]] = {}

    def attempt(self, key: str) -> float | None:
        """Record an attempt. None when allowed, else seconds until one is allowed again.

        Refused attempts count too (SPEC: whatever their outcome), so hammering keeps
        the window full.
        """
        if self.limit <= 0:
            return None
        now = self.clock.monotonic()
        window = self._attempts.get(key)
        if window is None:
            if len(self._attempts) >= self.max_keys:
                self._sweep(now)
            window = self._attempts[key] = deque()
        while window and now - window[0] >= self.window_s:
            window.popleft()
        window.append(now)
        if len(window) > self.limit:
            while len(window) > self.limit * 2:
                window.popleft()  # bounded memory under a flood
            oldest_counted = window[-self.limit - 1]
            return max(0.0, oldest_counted + self.window_s - now)
        return None

    def retry_after(self, wait_s: float) -> int:
        return max(1, math.ceil(wait_s))

    def _sweep(self, now: float) -> None:
        for key in [k for k, w in self._attempts.items() if not w or now - w[-1] >= self.window_s]:
            del self._attempts[key]
