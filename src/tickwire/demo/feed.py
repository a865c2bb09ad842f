"""How demo components run: what they publish to, how they are paced, what they report.

Every demo component (market, paper broker, bots) takes a `Publisher` rather than
a `Node`, so a test can hand it a recording fake or a real node with a fake clock,
and none of them sleeps: `every()` is the only place that waits, and it keeps a
schedule on the clock (catching up after a stall) instead of drifting by the time
each step takes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tickwire.core.clock import Clock
from tickwire.core.event import iso_timestamp
from tickwire.pipeline import PublishRequest

log = logging.getLogger("tickwire.demo")

MIN_SLEEP_S = 0.01
"""The shortest wait between two wake-ups; faster rates run several steps per wake-up."""

MAX_CATCH_UP = 100
"""Steps run at once after a stall; a longer backlog is dropped, not replayed."""


class Publisher(Protocol):
    """What demo components publish through: a `tickwire.node.Node` satisfies it."""

    @property
    def clock(self) -> Clock: ...

    async def publish(self, requests: Sequence[PublishRequest]) -> list[str | None]: ...


@dataclass(slots=True)
class AgentStats:
    """The bookkeeping a system agent shows in its `agent:status` broadcasts."""

    agent_id: str
    name: str
    processed: int = 0
    last_run_ms: int | None = None

    def record(self, count: int, now_ms: int) -> None:
        self.processed += count
        self.last_run_ms = now_ms

    def status(self, now_ms: int) -> dict[str, object]:
        last = self.last_run_ms
        return {
            "agentId": self.agent_id,
            "name": self.name,
            "state": "running",
            "lastRunAt": iso_timestamp(last if last is not None else now_ms),
            "processed": self.processed,
        }


async def every(interval_s: float, clock: Clock, step: Callable[[int], Awaitable[object]], name: str) -> None:
    """Await `step(due)` every `interval_s` seconds, forever (until cancelled).

    `due` is how many intervals passed since the last call: at least 1, more when the
    rate is faster than `MIN_SLEEP_S` or the loop stalled. A failing step is logged and
    the loop goes on: one bad tick must not stop the demo.
    """
    if interval_s <= 0:
        raise ValueError(f"interval must be positive, got {interval_s}")
    next_at = clock.monotonic() + interval_s
    while True:
        await asyncio.sleep(max(MIN_SLEEP_S, next_at - clock.monotonic()))
        now = clock.monotonic()
        due = 1 + max(0, int((now - next_at) / interval_s))
        if due > MAX_CATCH_UP:
            due, next_at = MAX_CATCH_UP, now + interval_s
        else:
            next_at += due * interval_s
        try:
            await step(due)
        except Exception:
            log.exception("demo step failed", extra={"task": name})
