"""Time as a dependency: every timer in the core reads a `Clock`, never the OS."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (timeouts, windows)."""
        ...

    def wall_ms(self) -> int:
        """Unix time in milliseconds (event ids and timestamps)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that moves only when told to: timing tests run without sleeping."""

    def __init__(self, start_ms: int = 1_767_350_400_000) -> None:
        self._mono = 1000.0
        self._wall_ms = start_ms

    def monotonic(self) -> float:
        return self._mono

    def wall_ms(self) -> int:
        return self._wall_ms

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall_ms += round(seconds * 1000)
