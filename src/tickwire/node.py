"""A tickwire node: the async glue between a broker, the hub and the transports.

The node validates and derives what is published (positions from fills, marks from
prices), hands it to the broker, receives every stamped event back from the broker
and dispatches it through the hub. Transports call `attach` to start a stream on a
connection (snapshot, buffered events or replay, then live) and `poll` for the
request/response form of the same thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any

from tickwire.brokers.base import Broker, History, Publication
from tickwire.brokers.memory import MemoryBroker
from tickwire.config import Settings
from tickwire.core.clock import Clock, SystemClock
from tickwire.core.connection import Connection
from tickwire.core.event import EVENT_TYPES, Event, iso_timestamp, log_user, user_log
from tickwire.core.hub import Hub, Subscription
from tickwire.core.ids import MalformedId, Position, parse_id
from tickwire.core.log import MALFORMED, Reset
from tickwire.core.ratelimit import RateLimiter
from tickwire.core.sanitize import sanitize
from tickwire.core.streams import Stream, snapshot_payloads
from tickwire.core.throttle import Throttle
from tickwire.domain.portfolio import Portfolio
from tickwire.errors import BrokerUnavailable, ConfigError, PublishError, StreamError
from tickwire.metrics import Metrics
from tickwire.publishing import PublishRequest, parse_publish_body
from tickwire.wire.sse import SSECodec

log = logging.getLogger("tickwire.node")

MAX_POLL_LIMIT = 1000
MAX_POLL_WAIT_S = 30.0


def make_broker(settings: Settings) -> Broker:
    if settings.broker == "memory":
        return MemoryBroker(
            user_history=settings.user_buffer,
            public_history=settings.public_buffer,
            state_capacity=settings.state_capacity,
        )
    if settings.broker.startswith(("redis://", "rediss://", "unix://")):
        from tickwire.brokers.redis import RedisBroker  # only Redis deployments load it

        return RedisBroker.from_settings(settings)
    raise ConfigError(f"TICKWIRE_BROKER={settings.broker}: use `memory` or a redis:// URL")


class Node:
    def __init__(
        self, settings: Settings, *, broker: Broker | None = None, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.broker = broker or make_broker(settings)
        self.hub = Hub(
            clock=self.clock, throttle_s=settings.throttle_s, max_conns_per_user=settings.max_conns_per_user
        )
        self.hub.on_user_idle = self._user_idle
        self.sse_codec = SSECodec(settings.retry_ms)
        self.metrics = Metrics()
        self.metrics.connections = self.connection_counts
        self.metrics.outbox_bytes = lambda: sum(c.outbox.pending_bytes for c in self.hub.connections.values())
        self.portfolio = Portfolio()
        self.marks: Throttle[tuple[str, dict[str, Any]]] = Throttle(self.clock, settings.throttle_s)
        self.connect_limiter = RateLimiter(self.clock, settings.connect_rate)
        self._publish_lock = asyncio.Lock()
        self._idle_users: dict[str, float] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = False

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start(self)
        self._timer = asyncio.create_task(self._run_timers(), name="tickwire-timers")
        self.started = True

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a background task that lives as long as the node (demo feeds, plugins)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        self.started = False
        tasks = [t for t in (self._timer, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in list(self.hub.connections.values()):
            conn.close("shutdown")
        await self.broker.stop()

    async def _run_timers(self) -> None:
        interval = min(0.1, max(0.01, self.settings.throttle_s / 4))
        next_sweep = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                self.hub.release_throttled()
                due = self.marks.due()
                if due:
                    await self._publish_marks(due)
                now = self.clock.monotonic()
                if now >= next_sweep:
                    next_sweep = now + 1.0
                    await self._sweep_idle_users(now)
            except Exception:
                log.exception("timer step failed")

    # -- broker sink ---------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        self.hub.dispatch(event)
        waiters = self._waiters.pop(event.log, None)
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def on_broadcast(self, type_: str, data: dict[str, Any]) -> None:
        self.hub.broadcast(type_, data)

    # -- shared-broker sink (brokers/base.py ClusterSink) --------------------------

    def on_reset(self, log_name: str, reason: str) -> None:
        """The broker lost a log's continuity (e.g. Redis restarted without its data):
        every subscription of it gets `stream:reset` and a fresh snapshot, never silence."""
        for conn in list(self.hub.connections.values()):
            for sub in list(conn.subscriptions.values()):
                if sub.stream.log == log_name and not conn.closing:
                    sub.holding = True  # live events wait for the new snapshot
                    self.spawn(self._restart(sub, Reset(reason)), "tickwire-reset")
        waiters = self._waiters.pop(log_name, None)
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(None)

    async def _restart(self, sub: Subscription, reset: Reset) -> None:
        self._send_reset(sub, reset)
        try:
            await self._start_fresh(sub)
        except BrokerUnavailable:
            sub.conn.close("broker_unavailable")

    def on_evict(self, serial: int) -> None:
        """The cluster-wide per-user cap chose this node's connection as the oldest."""
        conn = self.hub.connections.get(serial)
        if conn is not None and not conn.closing:
            self.hub.limit_exceeded(conn)
            log.info(
                "connection limit (cluster): closed oldest connection",
                extra={"client_id": conn.client_id, "user": conn.user, "correlation_id": conn.correlation_id},
            )

    def watched_logs(self) -> set[str]:
        return {
            sub.stream.log for conn in self.hub.connections.values() for sub in conn.subscriptions.values()
        }

    def local_connections(self) -> list[tuple[str, int]]:
        return [
            (c.user, c.serial) for c in self.hub.connections.values() if c.user is not None and not c.closing
        ]

    async def ingest(self, body: Any) -> list[str | None]:
        """A publish body that arrived through the broker (Redis ingest stream)."""
        return await self.publish(parse_publish_body(body))

    # -- publishing ----------------------------------------------------------------

    async def publish(self, requests: Sequence[PublishRequest]) -> list[str | None]:
        """Stamp a validated batch atomically; the ids of the requested events, in order."""
        ms = self.clock.wall_ms()
        ts = iso_timestamp(ms)
        pending: Awaitable[list[Event]] | None = None
        async with self._publish_lock:
            pubs: list[Publication] = []
            owned: list[int] = []  # index in pubs of each request's own event
            for index, req in enumerate(requests):
                data = sanitize(req.data)
                if "timestamp" not in data:
                    data = {**data, "timestamp": ts}
                owned.append(len(pubs))
                try:
                    pubs.extend(self._derive(req, data, ts))
                except ValueError as exc:  # the domain refused it (e.g. an impossible fill)
                    raise PublishError(str(exc), index if len(requests) > 1 else None) from None
            if self.broker.ordered_submit:  # the order is fixed here; wait for it unlocked
                pending = self.broker.submit(pubs, ms)
            else:
                events = await self.broker.publish(pubs, ms)
        if pending is not None:
            events = await pending
        marks: list[tuple[str, dict[str, Any]]] = []
        for event in events:
            self.metrics.published.labels(event.type).inc()
            if event.type == "price:update":
                marks.extend(self._mark(event.data))
        if marks:
            await self._publish_marks(marks)
        return [events[i].id for i in owned]

    def _derive(self, req: PublishRequest, data: dict[str, Any], ts: str) -> list[Publication]:
        """The request's own publication, plus what the domain derives from it."""
        spec = EVENT_TYPES[req.type]
        log_name = user_log(req.user) if req.user is not None else (spec.public_log or "")
        state = (spec.state[0], str(data[spec.state[1]])) if spec.state is not None else None
        strategy = str(data["strategyId"]) if req.type == "strategy:update" else None
        if req.type == "alert:new" and "level" not in data:
            data = {**data, "level": "info"}
        extra: list[Publication] = []
        user = req.user
        if user is not None and req.type == "order:update":
            self.portfolio.apply_order(user, data)
        elif user is not None and req.type == "order:fill":
            for position in self.portfolio.apply_fill(user, data):
                position["timestamp"] = ts
                extra.append(
                    Publication(
                        "position:update", position, log_name, state=("positions", str(position["symbol"]))
                    )
                )
        elif user is not None and req.type == "position:update":
            data = self.portfolio.apply_position(user, data)
        own = Publication(req.type, data, log_name, tick=spec.always_tick, state=state, strategy=strategy)
        return [own, *extra]

    def _mark(self, price: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Position marks a price causes, minus those the throttle holds back."""
        value = price.get("price")
        symbol = price.get("symbol")
        if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(symbol, str):
            return []
        out = []
        try:
            marks = self.portfolio.mark(symbol, float(value))
        except ValueError:
            return []
        for user, position in marks:
            released = self.marks.offer(f"{user}|{symbol}", (user, position))
            if released is not None:
                out.append(released)
        return out

    async def _publish_marks(self, marks: list[tuple[str, dict[str, Any]]]) -> None:
        ms = self.clock.wall_ms()
        ts = iso_timestamp(ms)
        pubs = [
            Publication(
                "position:update",
                {**position, "timestamp": ts},
                user_log(user),
                tick=True,
                state=("positions", str(position["symbol"])),
            )
            for user, position in marks
        ]
        if self.broker.ordered_submit:
            await self.broker.submit(pubs, ms)  # queued behind what was derived before
        else:
            await self.broker.publish(pubs, ms)

    async def broadcast_test(self, message: str) -> int:
        data = {"message": message, "timestamp": iso_timestamp(self.clock.wall_ms())}
        await self.broker.broadcast("test", data)
        return len(self.hub.connections)

    # -- streams -------------------------------------------------------------------

    async def check_strategy(self, stream: Stream, user: str | None, admin: bool) -> Stream:
        """The strategy stream on its owner's log; 404 when unknown, 403 when not yours."""
        if stream.strategy_id is None:
            return stream
        owner = await self.broker.strategy_owner(stream.strategy_id)
        if owner is None:
            raise StreamError(404, "Strategy not found")
        if owner != user and not admin:
            raise StreamError(403, "This strategy belongs to another user")
        return dataclasses.replace(stream, log=user_log(owner))

    def register(self, conn: Connection) -> None:
        """Count a new connection for its user (closing the oldest over the cap)."""
        if conn.user is not None:
            self._idle_users.pop(conn.user, None)
        evicted = self.hub.add_connection(conn)
        for old in evicted:
            log.info(
                "connection limit: closed oldest connection",
                extra={"client_id": old.client_id, "user": old.user, "correlation_id": old.correlation_id},
            )
        if conn.user is not None:
            self.broker.connection_opened(conn.user, conn.serial, [c.serial for c in evicted])

    def unregister(self, conn: Connection) -> None:
        known = conn.serial in self.hub.connections
        self.hub.remove_connection(conn)
        if known and conn.user is not None:
            self.broker.connection_closed(conn.user, conn.serial)

    async def connect_attempt(self, ip: str) -> float | None:
        """Count a connection attempt (SPEC 5): None when allowed, else seconds to wait.
        A shared broker counts for the whole cluster; while it is away, this node counts."""
        if self.broker.shared_limits and self.settings.connect_rate > 0:
            try:
                return await self.broker.connect_attempt(ip, self.settings.connect_rate, 60.0)
            except BrokerUnavailable:
                pass
        return self.connect_limiter.attempt(ip)

    async def attach(
        self, conn: Connection, stream: Stream, last_event_id: str | None, name: str | None = None
    ) -> bool:
        """Start `stream` on `conn`: replay or snapshot, then live. True when resumed."""
        sub = self.hub.subscribe(conn, stream, name)
        if last_event_id is None:
            await self._start_fresh(sub)
            return True
        try:
            pos: Position | None = parse_id(last_event_id)
        except MalformedId:
            pos = None
        history = await self.broker.history(stream.log, pos) if pos is not None else None
        if history is None or history.reset is not None:
            reset = MALFORMED if history is None else history.reset
            assert reset is not None
            self._send_reset(sub, reset)
            await self._start_fresh(sub)
            return False
        self.metrics.replays.inc()
        for event in self._replay_events(stream, history):
            sub.replay(event)
        sub.go_live(history.end)
        return True

    def _send_reset(self, sub: Subscription, reset: Reset) -> None:
        self.metrics.resets.labels(reset.reason).inc()
        data = {"recovered": False, "reason": reset.reason, "timestamp": iso_timestamp(self.clock.wall_ms())}
        sub.conn.send_control("stream:reset", data, sub.name)

    async def _start_fresh(self, sub: Subscription) -> None:
        events, end = await self._fresh_events(sub.stream)
        for event in events:
            sub.replay(event)
        sub.go_live(end)

    async def _fresh_events(self, stream: Stream) -> tuple[list[Event], Position]:
        """What a new connection gets (the snapshot, or the buffered log events),
        and the log position it reflects."""
        ms = self.clock.wall_ms()
        kinds = stream.definition.snapshot
        if kinds:
            snap = await self.broker.snapshot(stream.log, kinds)
            pos = None if snap.empty else snap.end
            payloads = snapshot_payloads(stream, snap.states, ms)
            return [Event(t, d, stream.log, pos, ms) for t, d in payloads], snap.end
        history = await self.broker.history(stream.log, None)
        return [e for e in history.events if stream.matches(e)], history.end

    def _replay_events(self, stream: Stream, history: History) -> list[Event]:
        return [e for e in history.events if stream.matches(e)] + [
            t for t in history.ticks if stream.matches(t)
        ]

    async def poll(self, stream: Stream, after: str | None, limit: int, wait: float) -> dict[str, Any]:
        """SPEC section 7: events after an id (or a fresh start), optionally long-polled."""
        deadline = self.clock.monotonic() + wait
        while True:
            events, recovered, reason = await self._poll_once(stream, after)
            if events or wait <= 0 or not recovered:
                break
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                break
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(stream.log, set()).add(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                break
            finally:
                waiters = self._waiters.get(stream.log)
                if waiters is not None:
                    waiters.discard(fut)
                    if not waiters:
                        self._waiters.pop(stream.log, None)
        events = events[:limit]
        body: dict[str, Any] = {
            "events": [{"event": e.type, "id": e.id, "data": e.data} for e in events],
            "lastEventId": next(
                (e.id for e in reversed(events) if e.id is not None), after if recovered else None
            ),
            "recovered": recovered,
        }
        if reason is not None:
            body["reason"] = reason
        return body

    async def _poll_once(self, stream: Stream, after: str | None) -> tuple[list[Event], bool, str | None]:
        if after is None:
            return (await self._fresh_events(stream))[0], True, None
        try:
            pos = parse_id(after)
        except MalformedId:
            self.metrics.resets.labels(MALFORMED.reason).inc()
            return (await self._fresh_events(stream))[0], False, MALFORMED.reason
        history = await self.broker.history(stream.log, pos)
        if history.reset is not None:
            self.metrics.resets.labels(history.reset.reason).inc()
            return (await self._fresh_events(stream))[0], False, history.reset.reason
        return self._replay_events(stream, history), True, None

    # -- housekeeping --------------------------------------------------------------

    def _user_idle(self, user: str) -> None:
        if self.broker.manages_buffer_ttl:
            return  # the broker expires it once the user has no connection on any node
        self._idle_users[user] = self.clock.monotonic()

    async def _sweep_idle_users(self, now: float) -> None:
        ttl = self.settings.buffer_ttl_s
        expired = [u for u, since in self._idle_users.items() if now - since >= ttl]
        for user in expired:
            del self._idle_users[user]
            await self.broker.forget_history(user_log(user))
            log.info("user buffer cleared after idle TTL", extra={"user": user, "ttl_s": ttl})

    def connection_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for conn in self.hub.connections.values():
            counts[conn.transport] = counts.get(conn.transport, 0) + 1
        return counts

    def users_of(self, log_name: str) -> str | None:
        return log_user(log_name)
