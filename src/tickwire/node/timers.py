"""The node's housekeeping timer: throttled ticks, held-back derived events, idle users.

One task for the whole node, waking every quarter of the throttle window (10-100 ms):
- public ticks the hub's throttle held back are fanned out when their window ends;
- what processors held back (throttled position marks) is published (`publish_due`);
- once a second, the history of users idle for the buffer TTL is dropped.
"""

from __future__ import annotations

import asyncio
import logging

from tickwire.brokers.base import Broker
from tickwire.core.clock import Clock
from tickwire.core.event import user_log
from tickwire.core.hub import Hub
from tickwire.node.retention import IdleUsers
from tickwire.pipeline import PublishPipeline

log = logging.getLogger("tickwire.node")

SWEEP_EVERY_S = 1.0


class Housekeeping:
    def __init__(
        self,
        hub: Hub,
        pipeline: PublishPipeline,
        broker: Broker,
        idle_users: IdleUsers,
        clock: Clock,
        throttle_s: float,
    ) -> None:
        self.hub = hub
        self.pipeline = pipeline
        self.broker = broker
        self.idle_users = idle_users
        self.clock = clock
        self.interval_s = min(0.1, max(0.01, throttle_s / 4))
        self._next_sweep = 0.0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.step()
            except Exception:
                log.exception("timer step failed")

    async def step(self) -> None:
        self.hub.release_throttled()
        await self.pipeline.publish_due()
        now = self.clock.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY_S
            await self.sweep_idle_users()

    async def sweep_idle_users(self) -> None:
        """Drop the history of users idle for the buffer TTL."""
        for user in self.idle_users.expired():
            await self.broker.forget_history(user_log(user))
            log.info(
                "user buffer cleared after idle TTL", extra={"user": user, "ttl_s": self.idle_users.ttl_s}
            )
