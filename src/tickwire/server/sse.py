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
from tickwire.node import Node
from tickwire.server.http import CORRELATION_HEADER
from tickwire.server.streaming import Waker
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
        node = self.node
        settings = node.settings
        waker = Waker()
        conn = Connection(
            client_id=self.client_id,
            user=self.user,
            transport="sse",
            codec=node.sse_codec,
            clock=node.clock,
            outbox_limit=settings.outbox_bytes,
            notify=waker.wake,
            stats=node.metrics.delivery["sse"],
            ip=self.ip,
            correlation_id=self.correlation_id,
            keepalive_s=settings.keepalive_s,
            idle_timeout_s=settings.idle_timeout_s,
        )
        gz = GzipStream() if self.gzip else None
        aborted = False
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
        writer = asyncio.current_task()
        assert writer is not None

        def abort() -> None:  # a socket that never drains must not pin the writer
            writer.cancel()

        conn.outbox.on_abort = abort
        watcher = asyncio.create_task(_watch_disconnect(receive, conn))
        log.info("sse connected", extra={**extra, "user": self.user, "resume": self.last_event_id})
        try:
            recovered = await node.attach(conn, self.stream, self.last_event_id)
            if self.last_event_id is not None:
                log.info("sse resume", extra={**extra, "recovered": recovered})
            await self._pump(conn, waker, send, gz)
        except OSError:
            conn.close("client_gone")
        except asyncio.CancelledError:
            if conn.outbox.closed != SLOW_CONSUMER:
                raise
            aborted = True
        finally:
            waker.close()
            node.unregister(conn)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            log.info("sse closed", extra={**extra, "reason": conn.outbox.closed})
        if aborted:
            return  # the response is abandoned: the server drops the connection
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": gz.finish() if gz else b"", "more_body": False})

    async def _pump(self, conn: Connection, waker: Waker, send: Send, gz: GzipStream | None) -> None:
        clock = self.node.clock
        latency = self.node.metrics.latency.labels("sse")
        outbox = conn.outbox
        while True:
            if outbox:
                oldest = outbox.oldest_ms
                data = outbox.drain()
                if gz is not None:
                    data = gz.compress(data)
                await send({"type": "http.response.body", "body": data, "more_body": True})
                conn.wrote()
                if oldest:
                    latency.observe(max(0, clock.wall_ms() - oldest) / 1000)
                continue
            if outbox.closed is not None:
                return
            now = clock.monotonic()
            deadline = conn.next_deadline()
            if now >= deadline:
                conn.on_timer()
                continue
            await waker.wait(deadline, now)


async def _watch_disconnect(receive: Receive, conn: Connection) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            conn.close("client_gone")
            return
