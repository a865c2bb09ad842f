"""Server-Sent Events (SPEC 2-4): `GET {prefix}/{stream}`, one response per stream.

After admission the response streams the `connected` event, the start (snapshot,
buffered events or replay), then live events, all through the connection's outbox and
the writer (server/writer.py); a second task waits for the client to go away. The driver is
the native one (drivers/native.py, its outbox holding HTTP chunks) when the server passed
its response cycle, else the ASGI one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tickwire.codes import CloseReason
from tickwire.config import Settings
from tickwire.core.connection import Connection
from tickwire.core.event import iso_timestamp
from tickwire.core.streams import Stream
from tickwire.drivers.asgi import ASGIStreamDriver, raw_send
from tickwire.drivers.native import NativeStreamDriver, native_stream
from tickwire.errors import BrokerUnavailable, Refused
from tickwire.node import Node
from tickwire.server.admission import Admission
from tickwire.server.http import CORRELATION_HEADER, client_ip, cors_headers, error_response, query_bytes
from tickwire.server.streaming import Flusher, app_flusher
from tickwire.server.writer import Writer
from tickwire.wire.sse import ChunkedSSECodec, GzipStream, SSECodec
from tickwire.wire.ws import PROTOCOL_VERSION

log = logging.getLogger("tickwire.sse")

# Paths under the prefix that are not streams but other endpoints' (other methods).
POST_ONLY = frozenset({"test"})


def wrong_method(request: Request, path: str) -> Response | None:
    if path.strip("/") == "ws":
        return error_response(
            request,
            400,
            "This endpoint speaks WebSocket: connect with a WebSocket client (Upgrade: websocket)",
        )
    if path.strip("/") in POST_ONLY:
        return error_response(
            request, 405, "Method not allowed: use POST", "POST, OPTIONS", extra={"Allow": "POST, OPTIONS"}
        )
    return None


async def sse_endpoint(request: Request) -> Response | SSEResponse:
    path = request.path_params["stream"]
    refused = wrong_method(request, path)
    if refused is not None:
        return refused
    state = request.app.state
    await state.ensure_started()
    admission: Admission = state.admission
    try:
        stream, principal = await admission.admit_stream(
            ip=client_ip(request),
            headers=request.headers,
            query=query_bytes(request),
            path=path,
            params=request.query_params,
        )
    except Refused as exc:
        return error_response(request, exc.status, exc.message, extra=exc.headers)
    node = admission.node
    return SSEResponse(
        admission,
        stream,
        codec=state.sse_codec,
        chunk_codec=state.sse_chunk_codec,
        user=principal.user,
        expires_at=principal.expires_at,
        client_id=state.client_ids.next(principal.user, stream.name, node.clock.wall_ms()),
        last_event_id=resume_id(request, node.settings),
        correlation_id=request.state.correlation_id,
        cors=cors_headers(node.settings, request.headers.get("origin"), "GET, OPTIONS"),
        gzip=accepts_gzip(request.headers.get("accept-encoding", "")),
        ip=client_ip(request),
        flusher=app_flusher(state),
    )


def resume_id(request: Request, settings: Settings) -> str | None:
    value = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if value is None or value == "":
        return None
    return value[: settings.max_last_event_id]


def accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            q = params.strip().removeprefix("q=").strip()
            return not (q and _is_zero(q))
    return False


def _is_zero(q: str) -> bool:
    try:
        return float(q) == 0
    except ValueError:
        return False


class SSEResponse:
    """An ASGI app streaming one `Stream` to one client."""

    def __init__(
        self,
        admission: Admission,
        stream: Stream,
        *,
        codec: SSECodec,
        chunk_codec: ChunkedSSECodec,
        user: str | None,
        expires_at: float | None,
        client_id: str,
        last_event_id: str | None,
        correlation_id: str,
        cors: dict[str, str],
        gzip: bool,
        ip: str,
        flusher: Flusher,
    ) -> None:
        self.admission = admission
        self.stream = stream
        self.codec = codec
        self.chunk_codec = chunk_codec
        self.user = user
        self.expires_at = expires_at
        self.client_id = client_id
        self.last_event_id = last_event_id
        self.correlation_id = correlation_id
        self.cors = cors
        self.gzip = gzip
        self.ip = ip
        self.flusher = flusher
        self.log_extra = {"client_id": client_id, "correlation_id": correlation_id, "stream": stream.name}

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
        node: Node = self.admission.node
        driver: NativeStreamDriver | ASGIStreamDriver | None = native_stream(scope, receive, self.ip)
        if driver is None:
            driver = ASGIStreamDriver(raw_send(scope, send), receive, self.ip)
        await driver.start(200, self._headers())
        gz = GzipStream() if self.gzip else None
        codec: SSECodec | ChunkedSSECodec = self.codec
        if isinstance(driver, NativeStreamDriver) and driver.chunked and gz is None:
            driver.prechunked = True  # the outbox holds chunks: its bytes are written as they are
            codec = self.chunk_codec
        writer = Writer(
            driver,
            self.flusher,
            node.clock,
            node.metrics.latency["sse"],
            frames=False,
            compress=gz.compress if gz is not None else None,
        )
        conn = self.admission.connection(
            client_id=self.client_id,
            user=self.user,
            transport="sse",
            codec=codec,
            notify=writer.notify,
            ip=self.ip,
            correlation_id=self.correlation_id,
            expires_at=self.expires_at,
        )
        writer.attach(conn)
        connected = {"clientId": self.client_id, "stream": self.stream.name, "v": PROTOCOL_VERSION}
        conn.send_control("connected", {**connected, "timestamp": iso_timestamp(node.clock.wall_ms())})
        self.admission.register(conn)
        watcher = asyncio.create_task(_close_when_gone(driver, conn))
        log.info("sse connected", extra={**self.log_extra, "user": self.user, "resume": self.last_event_id})
        try:
            await self._start(node, conn)
            await writer.run()
        finally:
            node.sessions.unregister(conn)
            writer.detach()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            log.info("sse closed", extra={**self.log_extra, "reason": conn.outbox.closed})
        if writer.aborted:
            return  # the response is abandoned: the server drops the connection
        with contextlib.suppress(OSError):
            if gz is not None:
                driver.write(gz.finish())
            await driver.close()

    async def _start(self, node: Node, conn: Connection) -> None:
        try:
            recovered = await node.sessions.attach(conn, self.stream, self.last_event_id)
        except BrokerUnavailable as exc:  # the broker is away: end the response, the client retries
            log.warning(
                "sse stream not started: broker unavailable", extra={**self.log_extra, "error": str(exc)}
            )
            conn.close(CloseReason.BROKER_UNAVAILABLE)
            return
        if self.last_event_id is not None:
            log.info("sse resume", extra={**self.log_extra, "recovered": recovered})


async def _close_when_gone(driver: NativeStreamDriver | ASGIStreamDriver, conn: Connection) -> None:
    await driver.wait_disconnect()
    conn.close(CloseReason.CLIENT_GONE)
