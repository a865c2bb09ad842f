"""A tickwire node: lifecycle and wiring.

    publish ─► pipeline (pipeline/) ─► broker ─► sink (sink.py) ─► hub (core/hub.py)
    transports ─► sessions (sessions.py): register, attach ◄─ reader (reader.py)
    housekeeping (timers.py): throttled ticks, processors' held-back events, idle users

Everything the node does is done by one of these components; the node builds them from
the settings, starts and stops them, and is where an application reaches them
(`node.publish`, `node.pipeline`, `node.sessions`...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from tickwire.brokers.base import Broker
from tickwire.brokers.memory import MemoryBroker
from tickwire.codes import CloseReason
from tickwire.config import Settings
from tickwire.core.clock import Clock, SystemClock
from tickwire.core.event import iso_timestamp
from tickwire.core.hub import Hub
from tickwire.core.sanitize import PayloadRules
from tickwire.domain.alerting import Alerting
from tickwire.domain.catalog import EVENT_TYPES, catalog, is_finished
from tickwire.domain.positions import PositionsProcessor
from tickwire.errors import ConfigError
from tickwire.metrics import Metrics
from tickwire.node.reader import StreamReader
from tickwire.node.sessions import Sessions
from tickwire.node.sink import NodeSink
from tickwire.node.timers import Housekeeping
from tickwire.pipeline import Processor, PublishPipeline, PublishRequest, Validator
from tickwire.tasks import cancel_until_done
from tickwire.upstream.manager import UpstreamManager
from tickwire.upstream.runtime import Runtime, Sleep

log = logging.getLogger("tickwire.node")


def make_broker(settings: Settings, clock: Clock | None = None) -> Broker:
    if settings.broker == "memory":
        return MemoryBroker(
            user_history=settings.user_buffer,
            public_history=settings.public_buffer,
            state_capacity=settings.state_capacity,
            finished=is_finished,
            clock=clock,
            buffer_ttl_s=settings.buffer_ttl_s,
            state_ttl_s=settings.state_ttl_s,
            max_users=settings.max_users,
        )
    if settings.broker.startswith(("redis://", "rediss://", "unix://")):
        from tickwire.brokers.redis import RedisBroker  # only Redis deployments load it

        return RedisBroker.from_settings(settings, clock=clock)
    raise ConfigError(f"TICKWIRE_BROKER={settings.broker}: use `memory` or a redis:// URL")


class Node:
    def __init__(
        self,
        settings: Settings,
        *,
        broker: Broker | None = None,
        clock: Clock | None = None,
        processors: Sequence[Processor] = (),
        sleep: Sleep | None = None,
    ) -> None:
        """`processors` run after the built-in ones (positions from fills and prices, alert
        rules), before the alert history (which records the alerts they publish too).
        `sleep` is how upstream connections wait (tests pass one they move by hand)."""
        self.settings = settings
        self.clock = clock = clock or SystemClock()
        self.broker = broker = broker or make_broker(settings, clock)
        self.metrics = metrics = Metrics()
        self.catalog = catalog(settings.max_symbols)
        self.hub = Hub(
            clock=clock, throttle_s=settings.throttle_s, max_conns_per_user=settings.max_conns_per_user
        )
        self.positions = PositionsProcessor(broker, clock, settings.throttle_s)
        self.alerting = alerting = Alerting(settings, broker, clock, metrics, self.spawn)  # SPEC 13
        self.pipeline = PublishPipeline(
            broker,
            clock,
            Validator(EVENT_TYPES, settings.publish_max_batch),
            [self.positions, alerting.engine, *processors, alerting.history],
            metrics,
            PayloadRules(
                max_depth=settings.max_depth,
                max_string=settings.max_string,
                max_items=settings.max_items,
                strip=settings.strip_fields,
            ),
        )
        self.reader = StreamReader(broker, clock, metrics, settings.throttle_s)
        self.sessions = Sessions(
            self.hub,
            broker,
            self.reader,
            clock=clock,
            metrics=metrics,
            connect_rate=settings.connect_rate,
            spawn=self.spawn,
        )
        self.sink = NodeSink(self.hub, self.reader, self.sessions, metrics)
        self.sink.observers.append(alerting.engine.observe)
        self.sessions.item_logs["scans"] = alerting.scans.stream_log
        self.housekeeping = Housekeeping(self.hub, self.pipeline, broker, clock, settings.throttle_s)
        runtime = Runtime(clock, sleep or asyncio.sleep)
        self.upstreams = UpstreamManager(settings.upstreams, self.pipeline.publish, broker, runtime)
        if self.upstreams:
            self.hub.on_key_demand = self.upstreams.on_key_demand  # readers' symbols -> upstream demand
        metrics.upstreams = self.upstreams.stats
        metrics.connections = self.sessions.connection_counts
        metrics.tracked_users = broker.held_users
        metrics.buffered_events = broker.held_events
        metrics.outbox_bytes = lambda: sum(c.outbox.pending_bytes for c in self.hub.connections.values())
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = False

    async def start(self) -> None:
        await self.broker.start(self.sink, ingest=self._ingest)
        self._timer = asyncio.create_task(self.housekeeping.run(), name="tickwire-timers")
        self.spawn(self.alerting.runner.run(), "tickwire-scans")
        await self.upstreams.start()
        self.started = True

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a background task that lives as long as the node (demo feeds, plugins)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        """Stop the node: close every connection (each flushes what is queued, then ends;
        `tickwire serve` has done this at the start of shutdown already, see
        server/app.py `close_connections`), cancel timers and background feeds, stop the broker."""
        self.started = False
        await self.upstreams.stop()
        self.sessions.close_all(CloseReason.SHUTDOWN)
        await cancel_until_done([t for t in (self._timer, *self._tasks) if t is not None])
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.alerting.close(), 1.0)
        await self.broker.stop()

    async def publish(self, requests: Sequence[PublishRequest], trace: str | None = None) -> list[str | None]:
        """Publish a validated batch in-process (SPEC 9); the ids of its events, in order.
        `trace` is a correlation id the log lines about these events will carry."""
        return await self.pipeline.publish(requests, trace=trace)

    async def _ingest(self, body: Any, entry_id: str) -> list[str | None]:
        """A publish body from the broker's ingest stream: the same stages as HTTP."""
        return await self.pipeline.publish_body(body, ingest_id=entry_id, trace=f"ingest:{entry_id}")

    async def broadcast_test(self, message: str, trace: str | None = None) -> int:
        """`event: test` to every connection of every node (SPEC 2, POST /api/stream/test)."""
        data = {"message": message, "timestamp": iso_timestamp(self.clock.wall_ms())}
        await self.broker.broadcast("test", data)
        log.debug(
            "test broadcast",
            extra={"publish_correlation_id": trace, "connections": len(self.hub.connections)},
        )
        return len(self.hub.connections)
