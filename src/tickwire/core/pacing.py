"""The per-connection tick cap (TICKWIRE_CLIENT_MAX_EVENTS_S): a token bucket on the
node clock.

`rate` ticks per second, in bursts of at most `rate` (at least one). The outbox asks
`take()` for every tick it would queue; the ticks refused wait in the outbox, one per key,
until `next_at()` (core/outbox.py rule 5).
"""

from __future__ import annotations

import math

from tickwire.core.clock import Clock

_EPS = 1e-9  # float sums of small refills must not miss the moment a token is whole


class TickPacer:
    __slots__ = ("_at", "_clock", "_tokens", "burst", "rate")

    def __init__(self, clock: Clock, rate: float) -> None:
        if rate <= 0:
            raise ValueError("a tick cap needs a rate above 0 (0 means no cap: no pacer)")
        self._clock = clock
        self.rate = rate
        self.burst = max(1.0, rate)
        self._tokens = self.burst
        self._at = clock.monotonic()

    def _refill(self) -> float:
        now = self._clock.monotonic()
        tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._tokens, self._at = tokens, now
        return tokens

    def take(self) -> bool:
        """One tick may go now (and is counted), or False when over the cap."""
        if self._refill() >= 1.0 - _EPS:
            self._tokens -= 1.0
            return True
        return False

    def next_at(self) -> float:
        """Monotonic time at which `take()` succeeds again: -inf when it would now (a time
        read before this call must not look earlier than it)."""
        missing = 1.0 - self._refill()
        if missing <= _EPS:
            return -math.inf
        return self._at + missing / self.rate
