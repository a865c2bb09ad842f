"""Reconnect delays: exponential backoff with jitter.

The nominal delay starts at `initial` and doubles (`factor`) after each failure up to `max`;
each delay handed out is the nominal one times a random factor in [1 - jitter, 1 + jitter],
so clients that lost the same server do not come back in lockstep. With the defaults:
1, 2, 4, 8, 16, 16, ... seconds, each +-20%. `reset()` after a successful connection starts
over at `initial`. The random source is injected, so tests get exact sequences.

`backoff()` is the same sequence as a generator (the model of `websockets.client.backoff`).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Random = Callable[[], float]  # uniform in [0, 1), like random.random


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delays between attempts; every number in seconds. `jitter` 0.2 = +-20%."""

    initial: float = 1.0
    max: float = 16.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max < self.initial:
            raise ValueError("backoff needs 0 <= initial <= max")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")

    def nominal(self, failures: int) -> float:
        """The delay before retrying after `failures` failures in a row (1 = the first)."""
        delay = self.initial
        for _ in range(max(0, failures - 1)):
            delay *= self.factor
            if delay >= self.max:
                return self.max
        return min(delay, self.max)

    def bounds(self, failures: int) -> tuple[float, float]:
        nominal = self.nominal(failures)
        return nominal * (1 - self.jitter), nominal * (1 + self.jitter)


class Backoff:
    """The delays of one run of failures; `reset()` after a success."""

    def __init__(self, policy: BackoffPolicy | None = None, random: Random | None = None) -> None:
        self.policy = policy or BackoffPolicy()
        self._random = random or _random.random
        self.failures = 0

    def next(self) -> float:
        """Count a failure and return how long to wait before the next attempt."""
        self.failures += 1
        low, high = self.policy.bounds(self.failures)
        return low + (high - low) * self._random()

    def reset(self) -> None:
        self.failures = 0


def backoff(policy: BackoffPolicy | None = None, random: Random | None = None) -> Iterator[float]:
    """An endless generator of delays: `for delay in backoff(): ...`."""
    state = Backoff(policy, random)
    while True:
        yield state.next()
