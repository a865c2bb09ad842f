"""What the upstream components share: time (clock and sleep, injected so tests move time
by hand instead of sleeping), randomness (backoff jitter) and a way to wait for a command
or a deadline, whichever comes first."""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tickwire.core.clock import Clock, SystemClock

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Runtime:
    clock: Clock = field(default_factory=SystemClock)
    sleep: Sleep = asyncio.sleep
    random: Callable[[], float] = _random.random

    async def wait(self, event: asyncio.Event, within: float | None) -> bool:
        """Wait for `event` at most `within` seconds of this runtime's time (None: no
        bound); True when the event is set."""
        if event.is_set():
            return True
        if within is None:
            await event.wait()
            return True
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep(max(0.0, within)))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                task.cancel()
            await asyncio.wait({waiter, sleeper})
        return event.is_set()
