"""`RedisBroker`: the `Broker` interface over the components of this package.

The facade builds the components, wires them with small explicit references, starts and
stops their loops, and delegates each Broker method to the component that owns it:

    publishing.Publisher   submit -> ordered pipelined writer -> stamped events
    subscription.Subscription  the node's one subscription, control messages, markers
    delivery.Delivery      per-log order, holds, repair, resets, echo waits and catch-up
    reading.Reader         history, snapshots, keyed values
    presence.Presence      presence updates, heartbeat and burying, connect rate
    ingest.Ingest          the ingest lease and stream (only with an IngestHandler)
    records.Records        journals and leases
    scripts.Link           the pool, key names and Lua scripts they all use
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from tickwire.brokers.base import (
    Batch,
    Broker,
    BrokerSink,
    History,
    IngestHandler,
    Record,
    Snapshot,
    Stored,
    journal_ttl_ms,
)
from tickwire.brokers.redis.delivery import Delivery
from tickwire.brokers.redis.ingest import Ingest
from tickwire.brokers.redis.presence import Presence
from tickwire.brokers.redis.publishing import Publisher
from tickwire.brokers.redis.reading import Reader
from tickwire.brokers.redis.records import Records
from tickwire.brokers.redis.scripts import Link, split_url
from tickwire.brokers.redis.subscription import Subscription
from tickwire.brokers.redis.tasks import Tasks
from tickwire.core.clock import Clock, SystemClock
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.domain.catalog import STATE_KINDS

if TYPE_CHECKING:
    from tickwire.config import Settings

log = logging.getLogger("tickwire.redis")

START_WAIT_S = 3.0  # how long `start` waits for the first subscription


class RedisBroker(Broker):
    name = "redis"
    manages_buffer_ttl = True
    shared_limits = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str | None = None,
        user_history: int = 100,
        public_history: int = 100,
        state_capacity: int = 1000,
        buffer_ttl_s: float = 300.0,
        state_ttl_s: float = 7 * 86400.0,
        max_conns_per_user: int = 10,
        node_id: str | None = None,
        socket_timeout_s: float = 5.0,
        heartbeat_s: float = 1.0,
        dead_after_s: float = 10.0,
        echo_timeout_s: float = 2.0,
        ingest: bool = True,
        clock: Clock | None = None,
    ) -> None:
        redis_url, url_prefix = split_url(url)
        self.prefix = prefix or url_prefix
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.ingest_enabled = ingest
        self.link = Link(redis_url, self.prefix, socket_timeout_s=socket_timeout_s)
        self.where = self.link.where
        self.tasks = Tasks()
        kinds = ",".join(STATE_KINDS)
        buffer_ttl_ms, state_ttl_ms = int(buffer_ttl_s * 1000), int(state_ttl_s * 1000)
        self.state_ttl_ms = state_ttl_ms
        clock = clock or SystemClock()
        self.reader = Reader(self.link, kinds=kinds, state_ttl_ms=state_ttl_ms)
        self.subscription = Subscription(
            self.link, self.tasks, node_id=self.node_id, clock=clock, echo_timeout_s=echo_timeout_s
        )
        self.delivery = Delivery(self.reader, self.subscription, self.tasks, echo_timeout_s=echo_timeout_s)
        self.publisher = Publisher(
            self.link,
            self.tasks,
            self.delivery,
            user_history=user_history,
            public_history=public_history,
            state_capacity=state_capacity,
            buffer_ttl_ms=buffer_ttl_ms,
            state_ttl_ms=state_ttl_ms,
            kinds=kinds,
            echo_timeout_s=echo_timeout_s,
        )
        self.presence = Presence(
            self.link,
            self.tasks,
            self.subscription,
            node_id=self.node_id,
            max_conns_per_user=max_conns_per_user,
            buffer_ttl_ms=buffer_ttl_ms,
            heartbeat_s=heartbeat_s,
            dead_after_ms=int(dead_after_s * 1000),
        )
        self.ingest: Ingest | None = None
        self.records = Records(self.link, self.node_id)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> RedisBroker:
        return cls(
            settings.broker,
            user_history=settings.user_buffer,
            public_history=settings.public_buffer,
            state_capacity=settings.state_capacity,
            buffer_ttl_s=settings.buffer_ttl_s,
            state_ttl_s=settings.state_ttl_s,
            max_conns_per_user=settings.max_conns_per_user,
            clock=clock,
        )

    @property
    def stats(self) -> dict[str, int]:
        return {
            "repairs": self.delivery.repairs,
            "resets": self.delivery.resets,
            "reconnects": self.subscription.reconnects,
            "ingested": self.ingest.ingested if self.ingest is not None else 0,
        }

    # -- lifecycle -----------------------------------------------------------------

    async def start(self, sink: BrokerSink, ingest: IngestHandler | None = None) -> None:
        self.tasks.stopping = False
        self.delivery.attach(sink)
        self.presence.attach(sink)
        self.subscription.attach(sink, self.delivery.accept, self._resubscribed)
        spawn = self.tasks.spawn
        spawn(self.subscription.run(), "tickwire-redis-subscriber")
        spawn(self.presence.run_heartbeat(), "tickwire-redis-heartbeat")
        spawn(self.presence.run(), "tickwire-redis-presence")
        spawn(self.publisher.run(), "tickwire-redis-writer")
        if self.ingest_enabled and ingest is not None:
            self.ingest = Ingest(self.link, self.tasks, ingest, node_id=self.node_id)
            spawn(self.ingest.run(), "tickwire-redis-ingest")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscription.ready.wait(), START_WAIT_S)
        if not self.subscription.subscribed:
            log.warning("Redis is not reachable yet; the node keeps trying", extra={"redis": self.where})

    def _resubscribed(self) -> None:
        """The subscription is back after a loss: repair what was missed, and tell Redis
        again which connections this node holds."""
        self.delivery.resync()
        self.presence.resync()

    async def stop(self) -> None:
        self.tasks.stopping = True
        await self.tasks.cancel_all()
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self.presence.leave(), 1.0)
        self.publisher.fail_queued()
        self.subscription.detach()
        self.delivery.detach()
        self.presence.detach()
        await self.link.close()

    # -- publishing ------------------------------------------------------------------

    def submit(self, batch: Batch) -> Awaitable[list[Event]]:
        """Queue the batch now (its place in the order is fixed by this call); the awaitable
        gives the stamped events once this node's subscription delivered them."""
        return self.publisher.submit(batch)

    async def broadcast(self, type_: str, data: dict[str, Any]) -> None:
        await self.subscription.control({"t": "broadcast", "type": type_, "data": data})

    # -- reading ---------------------------------------------------------------------

    async def history(self, log: str, after: Position | None, *, since_ms: int | None = None) -> History:
        history = await self.reader.history(log, after, since_ms=since_ms)
        await self.delivery.catch_up(log, history.end)
        return history

    async def snapshot(self, log: str, kinds: Sequence[str]) -> Snapshot:
        snapshot = await self.reader.snapshot(log, kinds)
        await self.delivery.catch_up(log, snapshot.end)
        return snapshot

    async def get_state(self, log: str, kind: str, key: str) -> dict[str, Any] | None:
        return await self.reader.get_state(log, kind, key)

    async def load(self, refs: Sequence[tuple[str, str]]) -> list[Stored]:
        return await self.reader.load(refs)

    async def members(self, index: str) -> set[str]:
        return await self.reader.members(index)

    async def strategy_owner(self, strategy_id: str) -> str | None:
        return await self.reader.strategy_owner(strategy_id)

    async def forget_history(self, log: str) -> None:
        await self.reader.forget_history(log)

    async def healthy(self) -> bool:
        if not self.subscription.subscribed:
            return False
        try:
            return bool(await asyncio.wait_for(self.link.client.ping(), 1.0))
        except (RedisError, OSError, TimeoutError):
            return False

    # -- journals and leases (records.py) --------------------------------------------

    async def journal_add(
        self,
        journal: str,
        records: Sequence[Record],
        *,
        cap: int,
        retention_ms: int,
        user: str | None = None,
    ) -> None:
        ttl_ms = journal_ttl_ms(retention_ms, self.state_ttl_ms if user is not None else 0)
        await self.records.add(journal, records, cap, retention_ms, ttl_ms)

    async def journal_patch(self, journal: str, record_id: str, fields: dict[str, Any]) -> Record | None:
        return await self.records.patch(journal, record_id, fields)

    async def journal_get(self, journal: str, record_id: str) -> Record | None:
        return await self.records.get(journal, record_id)

    async def journal_page(
        self, journal: str, *, before: str | None = None, limit: int = 100, since_ms: int = 0
    ) -> list[Record]:
        return await self.records.page(journal, before, limit, since_ms)

    async def lease(self, name: str, holder: str, ttl_s: float) -> bool:
        return await self.records.lease(name, ttl_s, holder)

    async def release(self, name: str, holder: str) -> None:
        await self.records.lease(name, 0, holder)

    # -- cluster-wide limits ---------------------------------------------------------

    def connection_opened(self, user: str, serial: int, evicted: Sequence[int] = ()) -> None:
        self.presence.connection_opened(user, serial, evicted)

    def connection_closed(self, user: str, serial: int) -> None:
        self.presence.connection_closed(user, serial)

    async def connect_attempt(self, key: str, limit: int, window_s: float) -> float | None:
        return await self.presence.connect_attempt(key, limit, window_s)
