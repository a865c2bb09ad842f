"""The node's one subscription (`{p}:events` + `{p}:control`): connect, read, decode, and
reconnect with backoff when it fails or goes silent.

Stamped batches become Events handed to `accept` (Delivery puts them in order); control
messages are broadcasts and evictions for the sink, and markers (`control()` publishes one
and waits until it comes back, which means everything published before it arrived too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from tickwire.brokers.base import BrokerSink
from tickwire.brokers.redis.scripts import Link
from tickwire.brokers.redis.tasks import Tasks
from tickwire.core.clock import Clock
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.errors import BrokerUnavailable

log = logging.getLogger("tickwire.redis")

FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0


class Subscription:
    def __init__(
        self, link: Link, tasks: Tasks, *, node_id: str, clock: Clock, echo_timeout_s: float
    ) -> None:
        self._link = link
        self._tasks = tasks
        self._node_id = node_id
        self._clock = clock
        self._echo_timeout_s = echo_timeout_s
        self._events_channel = link.keys.events.encode()
        self._sink: BrokerSink | None = None
        self._accept: Callable[[Event], None] = lambda event: None
        self._on_back: Callable[[], None] = lambda: None
        self._markers: dict[str, asyncio.Future[None]] = {}
        self._read_task: asyncio.Task[None] | None = None
        self._seen = 0.0  # clock.monotonic() of the last message (pings keep it fresh)
        self._connected_before = False
        self.subscribed = False
        self.ready = asyncio.Event()
        self.reconnects = 0

    def attach(self, sink: BrokerSink, accept: Callable[[Event], None], on_back: Callable[[], None]) -> None:
        """Deliver to `sink` and `accept`; call `on_back` when a lost subscription is back."""
        self._sink, self._accept, self._on_back = sink, accept, on_back

    def detach(self) -> None:
        self._sink = None
        self.subscribed = False

    async def run(self) -> None:
        """Hold the subscription, reconnecting with backoff (<= 1 s) until the broker stops."""
        backoff = FIRST_BACKOFF_S
        while not self._tasks.stopping:
            conn: AbstractConnection = self._link.pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await self._connect(conn)
                backoff = FIRST_BACKOFF_S
                self._read_task = asyncio.ensure_future(self._read_messages(conn))
                await asyncio.wait({self._read_task})
                if not self._read_task.cancelled():
                    self._read_task.result()
            except asyncio.CancelledError:
                if self._read_task is not None:
                    self._read_task.cancel()
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                if self.subscribed or not self._connected_before:
                    log.warning(
                        "Redis subscription lost", extra={"redis": self._link.where, "error": str(exc)}
                    )
            finally:
                self.subscribed = False
                self._read_task = None
                with contextlib.suppress(Exception):
                    await conn.disconnect()
            if self._tasks.stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _connect(self, conn: AbstractConnection) -> None:
        await conn.connect()  # type: ignore[no-untyped-call]
        await conn.send_command("SUBSCRIBE", self._link.keys.events, self._link.keys.control)
        for _ in range(2):
            await conn.read_response(timeout=5.0)
        self._seen = self._clock.monotonic()
        self.subscribed = True
        if self._connected_before:
            self.reconnects += 1
            log.warning(
                "Redis subscription is back; repairing what was missed", extra={"redis": self._link.where}
            )
            try:
                self._on_back()
            except Exception:  # the subscription itself is fine: keep it
                log.exception("could not repair after the subscription came back")
        self._connected_before = True
        self.ready.set()

    async def _read_messages(self, conn: AbstractConnection) -> None:
        while True:
            msg = await conn.read_response(timeout=math.inf)
            self._seen = self._clock.monotonic()
            if not isinstance(msg, list) or len(msg) < 3 or msg[0] != b"message":
                continue
            try:
                if msg[1] == self._events_channel:
                    self.on_batch(msg[2])
                else:
                    self.on_control(msg[2])
            except Exception:
                log.exception("could not handle a Redis message")

    def on_batch(self, payload: bytes) -> None:
        """A `{p}:events` message: `{"v":1,"c":trace?,"events":[[log, epoch, offset, tick, ms,
        type, isTick, kind|null, key|null, data, seq], ...]}` (docs/redis.md; seq is 0 for
        ticks, and absent from messages of nodes before it), each event accepted."""
        accept = self._accept
        batch = orjson.loads(payload)
        trace = batch.get("c")
        for row in batch["events"]:
            log_name, epoch, offset, tick, ms, type_, is_tick, kind, key, data = row[:10]
            ckey = f"{log_name}|{kind}|{key}" if kind is not None else None
            event = Event(
                type_, data, log_name, Position(epoch, offset, tick), ms, key=ckey, tick=bool(is_tick)
            )
            event.trace = trace
            event.seq = (row[10] or None) if len(row) > 10 else None
            accept(event)

    def on_control(self, payload: bytes) -> None:
        msg = orjson.loads(payload)
        kind = msg.get("t")
        sink = self._sink
        if kind == "broadcast" and sink is not None:
            sink.on_broadcast(msg["type"], msg["data"])
        if kind in ("broadcast", "sync"):
            fut = self._markers.get(msg.get("n", ""))
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif kind == "evict":
            node, _, serial = str(msg.get("m", "")).rpartition(":")
            if node == self._node_id and sink is not None and serial.isdigit():
                sink.on_evict(int(serial))

    def restart_if_silent(self, limit_s: float) -> bool:
        """Reconnect a subscription that saw nothing (not even this node's pings) for
        `limit_s` seconds: Redis may have dropped it without closing the socket."""
        silent = self._clock.monotonic() - self._seen > limit_s
        if self.subscribed and silent and self._read_task is not None:
            log.warning("Redis subscription went silent; reconnecting it")
            self._read_task.cancel()
            return True
        return False

    async def control(self, message: dict[str, Any]) -> None:
        """Publish on the control channel and wait until this node's subscription saw it:
        then it has also processed every message Redis sent before it."""
        nonce = secrets.token_hex(8)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._markers[nonce] = fut
        try:
            await self._link.client.publish(self._link.keys.control, orjson.dumps({**message, "n": nonce}))
            if self.subscribed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, self._echo_timeout_s)
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None
        finally:
            self._markers.pop(nonce, None)

    async def sync(self) -> None:
        """Wait until everything Redis published before now went through this subscription
        (at most the echo timeout; not at all while Redis is away)."""
        with contextlib.suppress(BrokerUnavailable):
            await self.control({"t": "sync"})
