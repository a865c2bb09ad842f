"""The WebSocket transport (SPEC section 6): `/api/stream/ws`, many streams on one socket.

Theory of operation. Per connection the ASGI coroutine runs the reader loop (client
commands in) and one writer task drains the connection's outbox frame by frame, one
`websocket.send` per frame, so nothing is created per event. Replies (`subscribed`,
`error`, `pong`...) go through the same outbox as events: one order, one bound.

    handshake:  connect rate -> subprotocol (codec) -> `?streams=` -> credentials -> accept | deny
    reader:     size bound -> command rate -> decode -> parse -> run (auth, subscribe...)
    writer:     drain frames | ping frame | keepalive/idle timers | close with a code

The connection is registered with the hub (and so counted against the user's cap,
together with SSE) once it is authenticated as a user, or at its first subscription
when anonymous. Closing is a reason on the core `Connection`; the writer turns it
into a close code (codes.py). A slow consumer (outbox over its bound) is closed with
4008 even while the writer is stuck in a send to a peer that stopped reading: the
send is cancelled and the close frame queued behind what the server still buffers.

Credentials: `Authorization: Bearer` or the `session` cookie at the handshake, or an
`auth` message. Browsers send cookies on cross-site WebSocket handshakes and CORS does
not apply to WebSockets, so the cookie counts only when the handshake's Origin is this
host or one of TICKWIRE_CORS_ORIGINS (a listed origin, never `*`); otherwise the socket
is anonymous. Bad credentials close with 4001.

Ping frames are not part of ASGI. The uvicorn protocol of server/ws_protocol.py
(what `tickwire serve` runs) adds the scope extension
`tickwire.websocket.ping`: the app sends `{"type": "tickwire.websocket.ping", "bytes":
<unix ms>}` and receives `{"type": "tickwire.websocket.pong", "bytes": ...}` for the
pongs that answer it, so the app measures RTT and closes after two missed pongs. The
same protocol closes with 1001 on shutdown. Under another ASGI server the app sends no
ping frames (that server's keepalive applies) and clients measure RTT with the `ping`
command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import Message, Receive, Scope, Send

from tickwire import codes
from tickwire.config import Settings
from tickwire.core.connection import Connection
from tickwire.core.hub import CONNECTION_LIMIT
from tickwire.core.outbox import SLOW_CONSUMER
from tickwire.core.streams import ANONYMOUS, Principal, resolve_stream
from tickwire.errors import StreamError
from tickwire.metrics import Metrics
from tickwire.node import Node
from tickwire.server.auth import Authenticator, token_from_headers
from tickwire.server.http import CORRELATION_HEADER, correlation_id, error_body
from tickwire.server.streaming import RAW_SEND, ClientIds, EagerSend, Flusher, Waker, app_flusher
from tickwire.server.ws_protocol import (
    CLOSE_TIMEOUT_S,
    FRAMES_EXTENSION,
    PING,
    PING_EXTENSION,
    PONG,
    RAW_FRAME,
)
from tickwire.wire.codecs import DecodeError, FramedCodec, WSCodec, choose_codec
from tickwire.wire.ws import (
    MAX_COMMANDS_PER_S,
    MAX_MESSAGE_BYTES,
    MAX_SUBSCRIPTIONS,
    Auth,
    Command,
    Ping,
    ProtocolError,
    Subscribe,
    TokenBucket,
    Unsubscribe,
    authenticated,
    error,
    normalize_stream,
    parse_command,
    pong,
    subscribed,
    unsubscribed,
)

log = logging.getLogger("tickwire.ws")

MISSED_PONGS_TO_CLOSE = 2
# Rejected commands in a row (beyond the rate) before the connection is closed with 1008.
MAX_REJECTED_IN_A_ROW = 2 * MAX_COMMANDS_PER_S

# Connection close reasons (Connection.close / Outbox.closed) -> close codes.
POLICY = "policy"
UNAUTHORIZED = "unauthorized"
PING_TIMEOUT = "ping_timeout"
INTERNAL = "internal"
CLIENT_GONE = "client_gone"
CLOSE_FOR_REASON: dict[str, codes.CloseCode] = {
    SLOW_CONSUMER: codes.SLOW_CONSUMER,
    CONNECTION_LIMIT: codes.CONNECTION_LIMIT,
    "shutdown": codes.GOING_AWAY,
    "idle_timeout": codes.CloseCode(1000, "idle_timeout", True, "idle timeout: nothing sent either way"),
    UNAUTHORIZED: codes.UNAUTHORIZED,
    POLICY: codes.POLICY_VIOLATION,
    PING_TIMEOUT: codes.CloseCode(1011, "ping_timeout", True, "ping timeout: two pings unanswered"),
    INTERNAL: codes.INTERNAL_ERROR,
}

RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WSMetrics:
    """WebSocket health, on the node's registry (one set per node)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rtt = Histogram(
            "tickwire_ws_rtt_seconds",
            "Round trip of server ping frames (ping sent to pong received)",
            buckets=RTT_BUCKETS,
            registry=registry,
        )
        self.missed_pongs = Counter(
            "tickwire_ws_missed_pongs", "Server pings not answered within one interval", registry=registry
        )
        self.closes = Counter(
            "tickwire_ws_closes", "WebSocket connections ended, by reason", ["reason"], registry=registry
        )
        self.errors = Counter(
            "tickwire_ws_errors", "`error` messages sent, by code", ["code"], registry=registry
        )
        self.sockets = Gauge(
            "tickwire_ws_sockets",
            "Open WebSocket connections, registered with the hub or not",
            registry=registry,
        )
        self.lagging = Gauge(
            "tickwire_ws_lagging", "WebSocket connections whose last ping is unanswered", registry=registry
        )


_ws_metrics: weakref.WeakKeyDictionary[Metrics, WSMetrics] = weakref.WeakKeyDictionary()


def ws_metrics(metrics: Metrics) -> WSMetrics:
    found = _ws_metrics.get(metrics)
    if found is None:
        found = _ws_metrics[metrics] = WSMetrics(metrics.registry)
    return found


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie_allowed(headers: Mapping[str, str], settings: Settings) -> bool:
    """Whether a session cookie on this handshake may authenticate it (see the module doc)."""
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser: browsers always send Origin on WebSocket handshakes
    if not settings.cors_any and origin in settings.cors_origins:
        return True
    host = headers.get("host")
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return host is not None and netloc.lower() == host.lower()


def _handshake_token(headers: Mapping[str, str], settings: Settings) -> str | None:
    if not _cookie_allowed(headers, settings):
        headers = {k: v for k, v in headers.items() if k != "cookie"}
    return token_from_headers(headers)


def _utf8_len_over(text: str, limit: int) -> bool:
    if len(text) > limit:
        return True
    return len(text) * 4 > limit and len(text.encode()) > limit


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    raw = text.encode()[:123]
    return raw.decode("utf-8", "ignore")


class WebSocketEndpoint:
    """The ASGI app of `/api/stream/ws` (a Starlette `WebSocketRoute` endpoint).

    The node comes from the app's state; given here, its WebSocket metrics exist from the
    start rather than from the first connection.
    """

    def __init__(self, node: Node | None = None) -> None:
        if node is not None:
            ws_metrics(node.metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        await state.ensure_started()
        node: Node = state.node
        settings = node.settings
        headers = _headers(scope)
        cid = correlation_id(headers)
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        try:
            await self._handshake(scope, receive, send, node, settings, headers, cid, ip)
        except OSError:  # the client went away during the handshake (uvicorn: ClientDisconnected)
            return

    async def _handshake(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        node: Node,
        settings: Settings,
        headers: dict[str, str],
        cid: str,
        ip: str,
    ) -> None:
        metrics = ws_metrics(node.metrics)
        wait = await node.connect_attempt(ip)
        if wait is not None:
            retry = node.connect_limiter.retry_after(wait)
            node.metrics.rejected.labels("connect_rate").inc()
            await _deny(
                scope,
                send,
                429,
                f"Too many connection attempts from this address: at most {settings.connect_rate} per minute; "
                f"retry in {retry} s",
                cid,
                {"retry-after": str(retry)},
            )
            return
        offered = [str(p) for p in scope.get("subprotocols") or []]
        codec = choose_codec(offered)
        if codec is None:
            await _deny(
                scope, send, 400, "Unsupported subprotocol: offer tickwire.json or tickwire.msgpack", cid
            )
            return
        try:
            initial = _query_subscription(scope, settings)
        except ProtocolError as exc:
            await _deny(scope, send, 400, exc.message, cid)
            return
        state = scope["app"].state
        authenticate: Authenticator = state.authenticate
        token = _handshake_token(headers, settings)
        principal = ANONYMOUS
        bad_credentials = False
        if token is not None:
            try:
                found = await authenticate(token)
            except Exception:  # e.g. a session store that is down
                log.exception("authenticator failed", extra={"correlation_id": cid})
                await _deny(scope, send, 503, "Authentication is unavailable; retry later", cid)
                return
            if found is None or found.user is None:
                bad_credentials = True
            else:
                principal = found
        accept: dict[str, Any] = {
            "type": "websocket.accept",
            "headers": [(CORRELATION_HEADER.encode(), cid.encode())],
        }
        if offered:
            accept["subprotocol"] = codec.subprotocol
        await send(accept)
        if bad_credentials:
            metrics.closes.labels(codes.UNAUTHORIZED.name).inc()
            log.info("ws refused: bad credentials", extra={"correlation_id": cid, "ip": ip})
            await send(
                {
                    "type": "websocket.close",
                    "code": codes.UNAUTHORIZED.code,
                    "reason": codes.UNAUTHORIZED.reason,
                }
            )
            return
        session = WSSession(
            node,
            scope.get(RAW_SEND, send),
            codec,
            principal,
            authenticate=authenticate,
            client_ids=state.client_ids,
            correlation_id=cid,
            ip=ip,
            pings=PING_EXTENSION in (scope.get("extensions") or {}),
            framed=FRAMES_EXTENSION in (scope.get("extensions") or {}),
            flusher=app_flusher(state),
        )
        await session.run(receive, initial)


def _query_subscription(scope: Scope, settings: Settings) -> Subscribe | None:
    """`?streams=prices,alerts[&symbols=A,B]`: streams to subscribe at connect, for clients that
    only read (load generators, `websocat`); the answer is a `subscribed` without `rid`."""
    raw: bytes = scope.get("query_string") or b""
    if not raw:
        return None
    if len(raw) > settings.max_query:
        raise ProtocolError(codes.BAD_REQUEST, f"Query string too long: at most {settings.max_query} bytes")
    params = dict(parse_qsl(raw.decode("latin-1")))
    names = [n for n in params.get("streams", "").split(",") if n]
    if not names:
        return None
    symbols = [s for s in params.get("symbols", "").split(",") if s]
    streams = [
        {"stream": name, **({"symbols": symbols} if symbols and normalize_stream(name) == "prices" else {})}
        for name in names
    ]
    command = parse_command({"type": "subscribe", "streams": streams})
    assert isinstance(command, Subscribe)
    return command


async def _deny(
    scope: Scope, send: Send, status: int, message: str, cid: str, extra: dict[str, str] | None = None
) -> None:
    """Refuse a handshake: an HTTP error response when the server can send one, else a close."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = error_body(status, message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (CORRELATION_HEADER.encode(), cid.encode()),
            *((k.encode(), v.encode()) for k, v in (extra or {}).items()),
        ]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": codes.POLICY_VIOLATION.code, "reason": _reason(message)})


class WSSession:
    """One accepted WebSocket: its core `Connection`, reader loop and writer task."""

    def __init__(
        self,
        node: Node,
        send: Send,
        codec: WSCodec,
        principal: Principal,
        *,
        authenticate: Authenticator,
        client_ids: ClientIds,
        correlation_id: str,
        ip: str,
        pings: bool,
        flusher: Flusher,
        framed: bool = False,
    ) -> None:
        self.node = node
        self.framed = framed
        if framed:
            codec = FramedCodec(codec)
        self.send = send
        self.sender = EagerSend(send)
        self.flusher = flusher
        self._marked = False
        self._unsent: list[bytes] = []  # drained frames behind a send that had to wait
        self.codec = codec
        self.principal = principal
        self.authenticate = authenticate
        self.client_ids = client_ids
        self.pings = pings
        self.metrics = ws_metrics(node.metrics)
        settings = node.settings
        clock = node.clock
        self.waker = Waker()
        self.conn = Connection(
            client_id=client_ids.next(principal.user, "ws", clock.wall_ms()),
            user=principal.user,
            transport="ws",
            codec=codec,
            clock=clock,
            outbox_limit=settings.outbox_bytes,
            notify=self._notify,
            stats=node.metrics.delivery["ws"],
            ip=ip,
            correlation_id=correlation_id,
            keepalive_s=settings.keepalive_s,
            idle_timeout_s=settings.idle_timeout_s,
            conflate=settings.throttle_ms > 0,
        )
        self.conn.outbox.on_abort = self._abort
        self.bucket = TokenBucket(clock, MAX_COMMANDS_PER_S)
        self.rejected_in_a_row = 0
        self.registered = False
        self.close_text: str | None = None
        self.ping_interval = settings.ws_ping_s
        self.ping_at = clock.monotonic() + self.ping_interval
        self.pings_out: dict[bytes, float] = {}  # payload -> monotonic send time, at most 2
        self.missed = 0
        self.rtt: float | None = None
        self._writer: asyncio.Task[None] | None = None
        self._in_send = False
        self._cut = False

    @property
    def log_extra(self) -> dict[str, Any]:
        return {
            "client_id": self.conn.client_id,
            "correlation_id": self.conn.correlation_id,
            "user": self.conn.user,
        }

    # -- lifecycle -----------------------------------------------------------------

    async def run(self, receive: Receive, initial: Subscribe | None = None) -> None:
        """Serve the socket until it closes; `initial` is run first (the `?streams=` query)."""
        self.metrics.sockets.inc()
        if self.principal.user is not None:
            self._register()
        log.info("ws connected", extra={**self.log_extra, "codec": self.codec.subprotocol})
        self._writer = asyncio.create_task(self._write_loop(), name=f"tickwire-ws-{self.conn.client_id}")
        try:
            if initial is not None:
                await self._subscribe(initial)
            await self._read_loop(receive)
        finally:
            self.conn.close(CLIENT_GONE)  # kept only when nothing closed it before
            writer = self._writer
            if not writer.done():
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self.waker.close()
            self.conn.outbox.on_abort = None  # no reference cycle outlives the socket
            if self.registered:
                self.node.unregister(self.conn)
            if self.missed:
                self.metrics.lagging.dec()
            self.metrics.sockets.dec()
            reason = self.conn.outbox.closed or CLIENT_GONE
            self.metrics.closes.labels(
                CLOSE_FOR_REASON[reason].name if reason in CLOSE_FOR_REASON else reason
            ).inc()
            log.info(
                "ws closed",
                extra={
                    **self.log_extra,
                    "reason": reason,
                    "rtt_ms": None if self.rtt is None else round(self.rtt * 1000, 3),
                },
            )

    def _abort(self) -> None:
        """The outbox gave up on its client (slow consumer). A peer that stopped reading
        holds the writer in `send`: cut that send so the writer can close with 4008 (the
        batch in flight is lost; the client resumes from history)."""
        if self._in_send and not self._cut and self._writer is not None:
            self._cut = True
            self._writer.cancel()

    def _register(self) -> None:
        self.node.register(self.conn)
        self.registered = True

    def close(self, reason: str, text: str | None = None) -> None:
        if self.conn.outbox.closed is None and text is not None:
            self.close_text = text
        self.conn.close(reason)

    def reply(self, message: dict[str, Any]) -> None:
        """Queue a reply behind what is already queued (bounded like events)."""
        if message.get("type") == "error":
            self.metrics.errors.labels(message["code"]).inc()
        self.conn.outbox.put(self.codec.encode(message), event=False)

    # -- reader --------------------------------------------------------------------

    async def _read_loop(self, receive: Receive) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if self.conn.closing:
                    continue  # until the close handshake ends
                try:
                    await self._on_message(message)
                except Exception:  # a bug must cost this connection at most, never the server
                    log.exception("ws command failed", extra=self.log_extra)
                    self.close(INTERNAL)
            elif kind == PONG:
                self._on_pong(bytes(message.get("bytes") or b""))
            elif kind == "websocket.disconnect":
                return

    async def _on_message(self, message: Message) -> None:
        text: str | None = message.get("text")
        data: bytes | None = message.get("bytes")
        frame: str | bytes | None = text if text is not None else data
        if frame is None:
            return
        self.conn.received()
        too_big = (
            _utf8_len_over(text, MAX_MESSAGE_BYTES) if text is not None else len(frame) > MAX_MESSAGE_BYTES
        )
        if too_big:
            self.close(POLICY, f"message too big: at most {MAX_MESSAGE_BYTES} bytes")
            return
        if not self.bucket.take():
            self.rejected_in_a_row += 1
            if self.rejected_in_a_row > MAX_REJECTED_IN_A_ROW:
                self.close(POLICY, f"too many commands: at most {MAX_COMMANDS_PER_S} per second")
            else:
                self.reply(
                    error(
                        codes.RATE_LIMITED,
                        f"too many commands: at most {MAX_COMMANDS_PER_S} per second; "
                        "this one was not executed",
                    )
                )
            return
        self.rejected_in_a_row = 0
        if (text is None) != self.codec.binary:
            kind = "binary" if self.codec.binary else "text"
            self.reply(error(codes.BAD_REQUEST, f"{self.codec.subprotocol} takes {kind} frames"))
            return
        try:
            command = parse_command(self.codec.decode(frame))
        except DecodeError as exc:
            self.reply(error(codes.BAD_REQUEST, str(exc)[:200]))
            return
        except ProtocolError as exc:
            self.reply(exc.to_message())
            return
        await self._run(command)

    async def _run(self, command: Command) -> None:
        if isinstance(command, Ping):
            self.reply(pong(command.ts, command.rid))
        elif isinstance(command, Subscribe):
            await self._subscribe(command)
        elif isinstance(command, Unsubscribe):
            self._unsubscribe(command)
        elif isinstance(command, Auth):
            await self._auth(command)

    async def _auth(self, command: Auth) -> None:
        try:
            found = await self.authenticate(command.token)
        except Exception:
            log.exception("authenticator failed", extra=self.log_extra)
            found = None
        if found is None or found.user is None:
            self.close(UNAUTHORIZED)
            return
        current = self.principal.user
        if current is not None and found.user != current:
            self.reply(
                error(
                    codes.FORBIDDEN,
                    "this connection is authenticated as another user: open a new one",
                    command.rid,
                )
            )
            return
        self.principal = found
        if current is None:
            self.conn.user = found.user
            self.conn.client_id = self.client_ids.next(found.user, "ws", self.node.clock.wall_ms())
            self._register()  # counts the connection for the user now (and evicts over the cap)
        self.reply(authenticated(found.user, command.rid))

    async def _subscribe(self, command: Subscribe) -> None:
        conn = self.conn
        rid = command.rid
        new = [r.stream for r in command.streams if r.stream not in conn.subscriptions]
        if len(conn.subscriptions) + len(new) > MAX_SUBSCRIPTIONS:
            self.reply(
                error(
                    codes.TOO_MANY_SUBSCRIPTIONS,
                    f"at most {MAX_SUBSCRIPTIONS} streams per connection "
                    f"({len(conn.subscriptions)} open, {len(new)} new): unsubscribe some first",
                    rid,
                )
            )
            return
        results: list[tuple[str, bool]] = []
        principal = self.principal
        for request in command.streams:
            if conn.closing:
                return
            name = request.stream
            try:
                stream = resolve_stream(name, request.params(), principal)
                if request.symbols is not None and not stream.definition.symbols_param:
                    raise StreamError(400, "`symbols` applies to the prices stream only")
                if request.user_id is not None and not stream.definition.user_param:
                    raise StreamError(400, "`userId` applies to the trading stream only")
                stream = await self.node.check_strategy(stream, principal.user, principal.is_admin)
            except StreamError as exc:
                code = codes.ERROR_FOR_STATUS.get(exc.status, codes.BAD_REQUEST)
                self.reply(error(code, exc.message, rid, name))
                continue
            if not self.registered:
                self._register()
            try:
                recovered = await self.node.attach(conn, stream, request.last_event_id, name)
            except Exception:
                log.exception("ws subscribe failed", extra={**self.log_extra, "stream": name})
                sub = conn.subscriptions.get(name)
                if sub is not None:
                    self.node.hub.unsubscribe(sub)
                self.reply(error(codes.INTERNAL, "could not start the stream; retry later", rid, name))
                continue
            if request.last_event_id is not None:
                log.info("ws resume", extra={**self.log_extra, "stream": name, "recovered": recovered})
            results.append((name, recovered))
        if results:
            self.reply(subscribed(rid, results))

    def _unsubscribe(self, command: Unsubscribe) -> None:
        for name in command.streams:
            sub = self.conn.subscriptions.get(name)
            if sub is not None:
                self.node.hub.unsubscribe(sub)
        self.reply(unsubscribed(command.rid, command.streams))

    # -- pings ---------------------------------------------------------------------

    async def _ping(self, now: float) -> None:
        self.ping_at = now + self.ping_interval
        if self.pings_out:  # the last ping is still unanswered
            self.missed += 1
            self.metrics.missed_pongs.inc()
            if self.missed == 1:
                self.metrics.lagging.inc()
            if self.missed >= MISSED_PONGS_TO_CLOSE:
                self.close(PING_TIMEOUT)
                return
        payload = str(self.node.clock.wall_ms()).encode()
        if len(self.pings_out) >= 2:
            self.pings_out.pop(next(iter(self.pings_out)))
        self.pings_out[payload] = now
        await self._send_message({"type": PING, "bytes": payload})

    def _on_pong(self, payload: bytes) -> None:
        sent = self.pings_out.pop(payload, None)
        if sent is None:
            return
        self.pings_out.clear()  # this pong answers the older pings too
        self.rtt = self.node.clock.monotonic() - sent
        self.metrics.rtt.observe(self.rtt)
        if self.missed:
            self.missed = 0
            self.metrics.lagging.dec()

    # -- writer --------------------------------------------------------------------

    def _notify(self) -> None:
        if self._in_send or self.sender.parked or self._unsent:
            self.waker.wake()
        elif not self._marked:
            self._marked = True
            self.flusher.mark(self._flush)

    def _frame_message(self, frame: bytes) -> Message:
        if self.framed:
            return {"type": RAW_FRAME, "frame": frame}
        if self.codec.binary:
            return {"type": "websocket.send", "bytes": frame}
        return {"type": "websocket.send", "text": frame.decode()}

    def _flush(self) -> None:
        """Write what is queued now, in the dispatching code (see `EagerSend`); what
        cannot be written without waiting is left to the writer task."""
        self._marked = False
        outbox = self.conn.outbox
        if self._in_send or self.sender.parked or self._unsent or outbox.closed is not None or not outbox:
            self.waker.wake()
            return
        oldest = outbox.oldest_ms
        frames = outbox.drain_frames()
        for i, frame in enumerate(frames):
            try:
                done = self.sender.try_send(self._frame_message(frame))
            except Exception:  # the peer is gone (the server refuses to send any more)
                self.conn.close(CLIENT_GONE)
                self.waker.wake()
                return
            if not done:
                self._unsent = frames[i + 1 :]
                self.waker.wake()
                return
        self.conn.wrote()
        if oldest:
            self.node.metrics.latency["ws"].observe(max(0, self.node.clock.wall_ms() - oldest) / 1000)

    async def _write_loop(self) -> None:
        conn = self.conn
        outbox = conn.outbox
        clock = self.node.clock
        latency = self.node.metrics.latency["ws"]
        try:
            while True:
                if self.sender.parked or self._unsent:
                    unsent, self._unsent = self._unsent, []
                    if await self._guarded(self.sender.finish()):
                        for frame in unsent:
                            if not await self._send_frame(frame):
                                break
                    conn.wrote()
                    continue
                if outbox:
                    oldest = outbox.oldest_ms
                    for frame in outbox.drain_frames():
                        if not await self._send_frame(frame):
                            break
                    conn.wrote()
                    if oldest:
                        latency.observe(max(0, clock.wall_ms() - oldest) / 1000)
                    continue
                if outbox.closed is not None:
                    break
                now = clock.monotonic()
                if self.pings and now >= self.ping_at:
                    await self._ping(now)
                    continue
                deadline = conn.next_deadline()
                if now >= deadline:
                    conn.on_timer()
                    continue
                await self.waker.wait(min(deadline, self.ping_at) if self.pings else deadline, now)
        except asyncio.CancelledError:
            # A cut send (slow consumer) may surface at the next await instead of in `send`.
            task = asyncio.current_task()
            if not (self._cut and task is not None and task.uncancel() == 0):
                raise
        except Exception:
            log.exception("ws writer failed", extra=self.log_extra)
            self.close(INTERNAL)
        await self._close()

    async def _send_frame(self, frame: bytes) -> bool:
        return await self._send_message(self._frame_message(frame))

    async def _send_message(self, message: Message) -> bool:
        """Send one ASGI message; False when the peer is gone or the send was cut."""
        return await self._guarded(self.sender.send(message))

    async def _guarded(self, sending: Awaitable[None]) -> bool:
        """Await a send; False when the peer is gone or the send was cut (slow consumer)."""
        self._in_send = True
        try:
            await sending
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._cut and task is not None and task.uncancel() == 0:
                return False
            raise
        except Exception:  # ClientDisconnected (an OSError), or the server refusing a send after close
            self.conn.close(CLIENT_GONE)
            return False
        finally:
            self._in_send = False
        return True

    async def _close(self) -> None:
        reason = self.conn.outbox.closed or INTERNAL
        if reason == CLIENT_GONE:
            return
        code = CLOSE_FOR_REASON.get(reason, codes.INTERNAL_ERROR)
        text = _reason(self.close_text or code.reason)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):  # a stalled peer must not hold the session
                await self.send({"type": "websocket.close", "code": code.code, "reason": text})


# -- uvicorn -----------------------------------------------------------------------------
