"""The SSE transport: one ASGI response per stream connection.

The writer task sleeps until its outbox has something (or a keepalive / idle
deadline passes), then writes everything queued in one `send`. A second task per
connection waits for the client to go away. Nothing is created per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.types import Message, Receive, Scope, Send

from tickwire.core.connection import Connection
from tickwire.core.event import iso_timestamp
from tickwire.core.outbox import SLOW_CONSUMER
from tickwire.core.streams import Stream
from tickwire.errors import BrokerUnavailable
from tickwire.node import Node
from tickwire.server.http import CORRELATION_HEADER
from tickwire.server.streaming import RAW_SEND, EagerSend, Flusher, Waker
from tickwire.wire.sse import GzipStream

log = logging.getLogger("tickwire.sse")


class SSEResponse:
    """An ASGI app streaming one `Stream` to one client."""

    def __init__(
        self,
        node: Node,
        stream: Stream,
        *,
        user: str | None,
        client_id: str,
        last_event_id: str | None,
        correlation_id: str,
        cors: dict[str, str],
        gzip: bool,
        ip: str,
        flusher: Flusher,
    ) -> None:
        self.node = node
        self.stream = stream
        self.user = user
        self.client_id = client_id
        self.last_event_id = last_event_id
        self.correlation_id = correlation_id
        self.cors = cors
        self.gzip = gzip
        self.ip = ip
        self.flusher = flusher

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"connection", b"keep-alive"),
            (b"x-accel-buffering", b"no"),
            (CORRELATION_HEADER.encode(), self.correlation_id.encode()),
        ]
        if self.gzip:
            headers += [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.cors.items()]
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        send = scope.get(RAW_SEND, send)  # see server.app.TickwireApp
        node = self.node
        settings = node.settings
        waker = Waker()
        writer = _Writer(node, send, GzipStream() if self.gzip else None, waker, self.flusher)
        conn = Connection(
            client_id=self.client_id,
            user=self.user,
            transport="sse",
            codec=node.sse_codec,
            clock=node.clock,
            outbox_limit=settings.outbox_bytes,
            notify=writer.notify,
            stats=node.metrics.delivery["sse"],
            ip=self.ip,
            correlation_id=self.correlation_id,
            keepalive_s=settings.keepalive_s,
            idle_timeout_s=settings.idle_timeout_s,
            conflate=settings.throttle_ms > 0,
        )
        writer.conn = conn
        extra = {
            "client_id": self.client_id,
            "correlation_id": self.correlation_id,
            "stream": self.stream.name,
        }
        await send({"type": "http.response.start", "status": 200, "headers": self._headers()})
        conn.send_control(
            "connected",
            {
                "clientId": self.client_id,
                "stream": self.stream.name,
                "timestamp": iso_timestamp(node.clock.wall_ms()),
            },
        )
        node.register(conn)
        task = asyncio.current_task()
        assert task is not None

        def abort() -> None:  # a socket that never drains must not pin the writer
            task.cancel()

        conn.outbox.on_abort = abort
        watcher = asyncio.create_task(_watch_disconnect(receive, conn))
        log.info("sse connected", extra={**extra, "user": self.user, "resume": self.last_event_id})
        aborted = False
        try:
            try:
                recovered = await node.attach(conn, self.stream, self.last_event_id)
            except BrokerUnavailable as exc:  # the broker is away: end the response, the client retries
                log.warning("sse stream not started: broker unavailable", extra={**extra, "error": str(exc)})
                conn.close("broker_unavailable")
                recovered = False
            if self.last_event_id is not None:
                log.info("sse resume", extra={**extra, "recovered": recovered})
            await writer.run()
        except OSError:
            conn.close("client_gone")
        except asyncio.CancelledError:
            if conn.outbox.closed != SLOW_CONSUMER:
                raise
            aborted = True
        finally:
            waker.close()
            node.unregister(conn)
            conn.outbox.on_abort = None  # break the connection's reference cycles so that
            writer.conn = None  # reference counting frees it (see server.gcpolicy)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            log.info("sse closed", extra={**extra, "reason": conn.outbox.closed})
        if aborted:
            return  # the response is abandoned: the server drops the connection
        with contextlib.suppress(OSError):
            await writer.finish()


class _Writer:
    """Moves one connection's outbox to its socket.

    Ready connections are flushed by the `Flusher` right after dispatch, writing in the
    dispatching code (see `EagerSend`); the connection's task only sleeps for its timers
    and completes writes that had to wait for the socket.
    """

    __slots__ = ("_flushing", "_marked", "clock", "conn", "flusher", "gz", "latency", "sender", "waker")

    def __init__(self, node: Node, send: Send, gz: GzipStream | None, waker: Waker, flusher: Flusher) -> None:
        self.clock = node.clock
        self.latency = node.metrics.latency["sse"]
        self.sender = EagerSend(send)
        self.gz = gz
        self.waker = waker
        self.flusher = flusher
        self.conn: Connection | None = None
        self._marked = False
        self._flushing = False  # the task itself is writing: leave it alone

    def notify(self) -> None:
        if self._flushing or self.sender.parked:
            self.waker.wake()
        elif not self._marked:
            self._marked = True
            self.flusher.mark(self.flush)

    def _message(self) -> tuple[Message, int]:
        assert self.conn is not None
        outbox = self.conn.outbox
        oldest = outbox.oldest_ms
        data = outbox.drain()
        if self.gz is not None:
            data = self.gz.compress(data)
        return {"type": "http.response.body", "body": data, "more_body": True}, oldest

    def _wrote(self, oldest: int) -> None:
        assert self.conn is not None
        self.conn.wrote()
        if oldest:
            self.latency.observe(max(0, self.clock.wall_ms() - oldest) / 1000)

    def flush(self) -> None:
        """Write what is queued, now, unless the task is busy or the socket is full."""
        self._marked = False
        conn = self.conn
        if conn is None:  # the response ended after this flush was scheduled
            return
        if self._flushing or self.sender.parked or conn.outbox.closed is not None or not conn.outbox:
            self.waker.wake()
            return
        message, oldest = self._message()
        try:
            done = self.sender.try_send(message)
        except Exception:  # the peer is gone (the server refuses to write any more)
            conn.close("client_gone")
            self.waker.wake()
            return
        if done:
            self._wrote(oldest)
        else:
            self.waker.wake()  # the task completes the parked write

    async def run(self) -> None:
        """The connection's task: parked writes, closing, keepalive and idle timers."""
        conn = self.conn
        assert conn is not None
        outbox = conn.outbox
        clock = self.clock
        while True:
            if self.sender.parked:
                await self.sender.finish()
                self._wrote(0)
                continue
            if outbox:
                message, oldest = self._message()
                self._flushing = True
                try:
                    await self.sender.send(message)
                finally:
                    self._flushing = False
                self._wrote(oldest)
                continue
            if outbox.closed is not None:
                return
            now = clock.monotonic()
            deadline = conn.next_deadline()
            if now >= deadline:
                conn.on_timer()
                continue
            await self.waker.wait(deadline, now)

    async def finish(self) -> None:
        """End the response (the gzip trailer, then the last chunk)."""
        body = self.gz.finish() if self.gz is not None else b""
        await self.sender.send({"type": "http.response.body", "body": body, "more_body": False})


async def _watch_disconnect(receive: Receive, conn: Connection) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            conn.close("client_gone")
            return
