"""Presence and limits across nodes.

- Presence: the node's connection opens and closes are queued (in order) and applied by one
  worker with presence.lua: a sorted set per user over all nodes, the per-user cap (the node
  holding the oldest connection closes it, announced on the control channel), and the user's
  history TTL once nobody holds a connection. After Redis was away, the node registers its
  connections again (`resync`).
- Heartbeat: the node marks itself alive in `{p}:nodes` and buries nodes silent for
  `dead_after` (heartbeat.lua); it also pings its own subscription and reconnects it when
  the pings stop coming back.
- Connect rate: one sliding window per client address for all nodes (ratelimit.lua).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError, ResponseError

from tickwire.brokers.base import BrokerSink
from tickwire.brokers.redis.scripts import Link
from tickwire.brokers.redis.tasks import Tasks

log = logging.getLogger("tickwire.redis")

MAX_OPS_PER_ROUND = 256

# ("open" | "close", user, serial, evicted serials) or ("resync",)
PresenceOp = tuple[Any, ...]


class Watchdog(Protocol):
    """The subscription, as the heartbeat checks it."""

    def restart_if_silent(self, limit_s: float) -> bool: ...


class Presence:
    def __init__(
        self,
        link: Link,
        tasks: Tasks,
        watchdog: Watchdog,
        *,
        node_id: str,
        max_conns_per_user: int,
        buffer_ttl_ms: int,
        heartbeat_s: float,
        dead_after_ms: int,
    ) -> None:
        self._link = link
        self._tasks = tasks
        self._watchdog = watchdog
        self._node_id = node_id
        self._cap = max_conns_per_user
        self._buffer_ttl_ms = buffer_ttl_ms
        self.heartbeat_s = heartbeat_s
        self._dead_after_ms = dead_after_ms
        self._ping = orjson.dumps({"t": "ping", "n": node_id})
        self._sink: BrokerSink | None = None
        self._queue: asyncio.Queue[PresenceOp] = asyncio.Queue()
        self.beats = 0  # heartbeats that reached Redis

    def attach(self, sink: BrokerSink) -> None:
        self._sink = sink

    def detach(self) -> None:
        self._sink = None

    # -- presence --------------------------------------------------------------------

    def connection_opened(self, user: str, serial: int, evicted: Sequence[int] = ()) -> None:
        self._queue.put_nowait(("open", user, serial, tuple(evicted)))

    def connection_closed(self, user: str, serial: int) -> None:
        self._queue.put_nowait(("close", user, serial, ()))

    def resync(self) -> None:
        """Register this node's connections again (Redis was away, or lost its data)."""
        self._queue.put_nowait(("resync",))

    async def settled(self) -> None:
        """Wait until every update queued so far was applied (or failed: Redis away)."""
        await self._queue.join()

    async def run(self) -> None:
        """The presence worker: apply queued updates in order, a round at a time."""
        queue = self._queue
        while not self._tasks.stopping:
            ops = [await queue.get()]
            while not queue.empty() and len(ops) < MAX_OPS_PER_ROUND:
                ops.append(queue.get_nowait())
            try:
                await self.apply(ops)
            finally:
                for _ in ops:
                    queue.task_done()

    async def apply(self, ops: Sequence[PresenceOp]) -> None:
        try:
            for op in ops:
                if op[0] == "resync":
                    await self._resync()
                    continue
                try:
                    await self._link.run("presence", self._args(*op))
                except ResponseError as exc:  # this update only: the others still apply
                    log.warning("presence update refused", extra={"error": str(exc)})
        except (RedisError, OSError) as exc:
            # Redis is away: what it knows of this node is rebuilt when it comes back.
            log.debug("presence update failed", extra={"error": str(exc)})

    def _args(self, op: str, user: str, serial: int, evicted: Sequence[int]) -> list[Any]:
        return [op, user, self._node_id, serial, self._cap, self._buffer_ttl_ms, *evicted]

    def _beat_args(self, leaving: bool) -> list[Any]:
        return [self._node_id, self._dead_after_ms, self._buffer_ttl_ms, 1 if leaving else 0]

    async def _resync(self) -> None:
        """Tell Redis again which connections this node holds: forget them all (a leaving
        heartbeat), register each one, and mark the node alive again."""
        conns = self._sink.local_connections() if self._sink is not None else []
        await self._link.run("heartbeat", self._beat_args(leaving=True))
        scripts, prefix = self._link.scripts, self._link.prefix
        async with self._link.client.pipeline(transaction=False) as pipe:
            for user, serial in conns:
                pipe.evalsha(scripts["presence"].sha, 0, prefix, *self._args("open", user, serial, ()))
            pipe.evalsha(scripts["heartbeat"].sha, 0, prefix, *self._beat_args(leaving=False))
            await pipe.execute()

    # -- heartbeat -------------------------------------------------------------------

    async def run_heartbeat(self) -> None:
        while not self._tasks.stopping:
            await self.heartbeat_once()
            await asyncio.sleep(self.heartbeat_s)

    async def heartbeat_once(self) -> int:
        """Mark this node alive, bury silent nodes, ping the subscription and reconnect it
        when it stopped hearing the pings. The number of nodes buried (0 when Redis is away)."""
        try:
            buried = int(await self._link.run("heartbeat", self._beat_args(leaving=False)))
            if buried:
                log.info("buried silent nodes", extra={"nodes": buried})
            await self._link.client.publish(self._link.keys.control, self._ping)
            self._watchdog.restart_if_silent(max(3 * self.heartbeat_s, 2.0))
            self.beats += 1
        except (RedisError, OSError) as exc:
            log.debug("heartbeat failed", extra={"error": str(exc)})
            return 0
        return buried

    async def leave(self) -> None:
        """This node stops: its connections leave the presence sets now."""
        await self._link.run("heartbeat", self._beat_args(leaving=True))

    # -- connect rate ----------------------------------------------------------------

    async def connect_attempt(self, key: str, limit: int, window_s: float) -> float | None:
        try:
            wait_ms = await self._link.run(
                "ratelimit", [key, limit, int(window_s * 1000), secrets.token_hex(6)]
            )
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None
        return None if int(wait_ms) < 0 else int(wait_ms) / 1000
