"""This node's connections: who is connected, the streams they read, and what the broker
says about them.

- `register` / `unregister`: the per-user cap (the oldest connection over it is closed
  with `connection:limit`); the broker is told, for presence and the buffer TTL;
- `attach`: a stream on a connection: a holding subscription first, then the reader's
  start (snapshot, buffered events or replay; `stream:reset` when a resume failed),
  then live events, with nothing lost or doubled in between (core/hub.py);
- `reset_log` / `evict`: what a shared broker reports (a log it could not repair; a
  connection the cluster-wide cap closed);
- `close_all` / `wait_closed`: shutdown. Every connection is closed (each flushes what is
  queued, then ends), connections registered afterwards are closed at once, `stopping` is
  set (long-polls answer what they have), and `wait_closed` waits for the transports to
  have ended them, with a bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tickwire.brokers.base import Broker
from tickwire.codes import CloseReason
from tickwire.core.clock import Clock
from tickwire.core.connection import Connection
from tickwire.core.event import iso_timestamp, user_log
from tickwire.core.hub import Hub, Subscription
from tickwire.core.log import Reset
from tickwire.core.ratelimit import RateLimiter
from tickwire.core.streams import Principal, Stream
from tickwire.errors import BrokerUnavailable, StreamError
from tickwire.metrics import Metrics
from tickwire.node.reader import Start, StreamReader

log = logging.getLogger("tickwire.node")

Spawn = Callable[[Coroutine[Any, Any, Any], str], Any]
ItemLog = Callable[[str, Principal], Awaitable[str]]


class Sessions:
    def __init__(
        self,
        hub: Hub,
        broker: Broker,
        reader: StreamReader,
        *,
        clock: Clock,
        metrics: Metrics,
        connect_rate: int,
        spawn: Spawn,
    ) -> None:
        self.hub = hub
        self.broker = broker
        self.reader = reader
        self.clock = clock
        self.metrics = metrics
        self.connect_rate = connect_rate
        self.connect_limiter = RateLimiter(clock, connect_rate)
        # Item streams whose log depends on the item (stream name -> (item, caller) -> log, or
        # StreamError 404/403): scans. Other item streams are strategies (`strategy_owner`).
        self.item_logs: dict[str, ItemLog] = {}
        self._spawn = spawn
        # Set when the node starts closing its connections (shutdown): no new ones stay open.
        self.stopping = asyncio.Event()
        self._all_closed = asyncio.Event()

    # -- admission ---------------------------------------------------------------------

    async def connect_attempt(self, ip: str) -> float | None:
        """Count a connection attempt (SPEC 5): None when allowed, else seconds to wait.
        A shared broker counts for the whole cluster; while it is away, this node counts."""
        if self.broker.shared_limits and self.connect_rate > 0:
            try:
                return await self.broker.connect_attempt(ip, self.connect_rate, 60.0)
            except BrokerUnavailable:
                pass
        return self.connect_limiter.attempt(ip)

    async def check_owner(self, stream: Stream, principal: Principal) -> Stream:
        """A stream of an owned item (a strategy) on its owner's log; 404 when unknown, 403
        when not the caller's (admins read any). A composite stream's items must be the
        caller's own (it reads one log)."""
        if stream.parts:
            for part in stream.parts:
                if part.item is not None and (await self.check_owner(part, principal)).log != stream.log:
                    raise StreamError(
                        403, f"This {part.definition.item_label.lower()} belongs to another user"
                    )
            return stream
        if stream.item is None:
            return stream
        item_log = self.item_logs.get(stream.definition.name)
        if item_log is not None:
            return dataclasses.replace(stream, log=await item_log(stream.item, principal))
        owner = await self.broker.strategy_owner(stream.item)
        label = stream.definition.item_label
        if owner is None:
            raise StreamError(404, f"{label} not found")
        if owner != principal.user and not principal.is_admin:
            raise StreamError(403, f"This {label.lower()} belongs to another user")
        return dataclasses.replace(stream, log=user_log(owner))

    # -- connections ---------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        """Count a new connection for its user (closing the oldest over the cap); the broker
        keeps the user's history while some connection of theirs is open."""
        evicted = self.hub.add_connection(conn)
        for old in evicted:
            log.warning("connection limit: closed oldest connection", extra=_extra(old))
        if conn.user is not None:
            self.broker.connection_opened(conn.user, conn.serial, [c.serial for c in evicted])
        if self.stopping.is_set():  # admitted while the node began to stop: go elsewhere
            conn.close(CloseReason.SHUTDOWN)

    def unregister(self, conn: Connection) -> None:
        known = conn.serial in self.hub.connections
        self.hub.remove_connection(conn)
        if known and conn.user is not None:
            self.broker.connection_closed(conn.user, conn.serial)
        if self.stopping.is_set() and not self.hub.connections:
            self._all_closed.set()

    # -- shutdown ----------------------------------------------------------------------------

    def close_all(self, reason: str = CloseReason.SHUTDOWN) -> int:
        """Close every connection of this node (SSE responses end and WebSockets get 1001
        after what is queued); from now on new ones are closed as they register. Returns
        how many were open."""
        self.stopping.set()
        conns = list(self.hub.connections.values())
        for conn in conns:
            conn.close(reason)
        if not self.hub.connections:
            self._all_closed.set()
        return len(conns)

    async def wait_closed(self, timeout_s: float) -> int:
        """After `close_all`: wait until the transports ended every connection, at most
        `timeout_s`; how many are still open."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._all_closed.wait()
        except TimeoutError:
            pass
        return len(self.hub.connections)

    def evict(self, serial: int) -> None:
        """The cluster-wide per-user cap chose this node's connection as the oldest."""
        conn = self.hub.connections.get(serial)
        if conn is not None and not conn.closing:
            self.hub.limit_exceeded(conn)
            log.warning("connection limit (cluster): closed oldest connection", extra=_extra(conn))

    def watched_logs(self) -> set[str]:
        return {
            sub.stream.log for conn in self.hub.connections.values() for sub in conn.subscriptions.values()
        }

    def local_connections(self) -> list[tuple[str, int]]:
        return [
            (c.user, c.serial) for c in self.hub.connections.values() if c.user is not None and not c.closing
        ]

    def connection_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for conn in self.hub.connections.values():
            counts[conn.transport] = counts.get(conn.transport, 0) + 1
        return counts

    # -- streams ---------------------------------------------------------------------------

    async def attach(
        self, conn: Connection, stream: Stream, last_event_id: str | None, name: str | None = None
    ) -> bool:
        """Start `stream` on `conn`: replay or snapshot, then live. True when resumed (or new)."""
        sub = self.hub.subscribe(conn, stream, name)
        start = await self.reader.start(stream, last_event_id)
        self._begin(sub, start)
        return start.recovered

    def _begin(self, sub: Subscription, start: Start) -> None:
        if start.reset is not None:
            self._send_reset(sub, start.reset)
        for event in start.events:
            sub.replay(event)
        sub.go_live(start.end)

    def _send_reset(self, sub: Subscription, reset: Reset) -> None:
        data = {"recovered": False, "reason": reset.reason, "timestamp": iso_timestamp(self.clock.wall_ms())}
        sub.conn.send_control("stream:reset", data, sub.name)

    def reset_log(self, log_name: str, reason: str) -> None:
        """The broker lost a log's continuity (e.g. Redis restarted without its data): every
        subscription of it gets `stream:reset` and a fresh snapshot, never silence."""
        for conn in list(self.hub.connections.values()):
            for sub in list(conn.subscriptions.values()):
                if sub.stream.log == log_name and not conn.closing:
                    sub.holding = True  # live events wait for the new snapshot
                    self._spawn(self._restart(sub, Reset(reason)), "tickwire-reset")

    async def _restart(self, sub: Subscription, reset: Reset) -> None:
        self.metrics.resets.labels(reset.reason).inc()
        try:
            fresh = await self.reader.fresh(sub.stream)
        except BrokerUnavailable:
            self._send_reset(sub, reset)
            sub.conn.close(CloseReason.BROKER_UNAVAILABLE)
            return
        self._begin(sub, Start(fresh.events, fresh.end, reset))


def _extra(conn: Connection) -> dict[str, Any]:
    """The ids of a connection the per-user cap closed. Admitting a connection involves no
    publish, so these lines carry no `publish_correlation_id` (README, "Following an order")."""
    return {"client_id": conn.client_id, "user": conn.user, "correlation_id": conn.correlation_id}
