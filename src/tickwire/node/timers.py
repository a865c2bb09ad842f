"""The node's housekeeping timer: throttled ticks, held-back derived events, the broker's upkeep.

One task for the whole node, waking every quarter of the throttle window (10-100 ms):
- public ticks the hub's throttle held back are fanned out when their window ends;
- what processors held back (throttled position marks) is published (`publish_due`);
- once a second, the broker's upkeep (`Broker.maintain`: retention of idle users).
"""

from __future__ import annotations

import asyncio
import logging

from tickwire.brokers.base import Broker
from tickwire.core.clock import Clock
from tickwire.core.hub import Hub
from tickwire.pipeline import PublishPipeline

log = logging.getLogger("tickwire.node")

MAINTAIN_EVERY_S = 1.0


class Housekeeping:
    def __init__(
        self,
        hub: Hub,
        pipeline: PublishPipeline,
        broker: Broker,
        clock: Clock,
        throttle_s: float,
    ) -> None:
        self.hub = hub
        self.pipeline = pipeline
        self.broker = broker
        self.clock = clock
        self.interval_s = min(0.1, max(0.01, throttle_s / 4))
        self._next_maintain = 0.0

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
        if now >= self._next_maintain:
            self._next_maintain = now + MAINTAIN_EVERY_S
            await self.broker.maintain()
