"""The WebSocket transport: every stream on one socket (SPEC section 6).

Built on the `websockets` asyncio client and the server's own codecs (wire/codecs.py):
`tickwire.json` text frames or `tickwire.msgpack` binary frames. Opening a session connects,
subscribes to every wanted stream with its last id (batched, subscriptions.py) and returns
once every `subscribed` (or `error`) arrived. Subscription changes during the session go out
as batched commands; made while disconnected, they are kept by the client and the next
session subscribes to the whole wanted set, each stream from its position.

`authenticated` and `subscribed` carry the protocol version (`"v": 1`, checked by
transports.py's `check_version`). `reauthenticate(token)` sends `{"type":"auth","token":...}`
on the open socket and waits for `authenticated`, which moves the connection's expiry
(SPEC 5): the runner does it shortly before the token's `exp`, so the socket stays open.
Events that arrive for a stream subscribed with a `lastEventId` before its `subscribed`
are its replay (`replayed`); the envelope's `"urgent": true` is kept (`urgent`).

The session sends the protocol's `ping` command every `ws_ping_s`: the `pong` is traffic the
client can see (the server's ping frames are answered inside `websockets`), so a socket
that is silent for `stale_timeout_s` is dead. Close codes come from codes.py: a code that
says not to reconnect (4001, 4029, 1008) is a `StreamRefused`, except 4001 when a token
provider can give a fresh token (`AuthExpired`: reconnect with it). The server's
`auth:expired` event, sent before that 4001 when the token expires on the open socket, is
handled by the router (routing.py).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from tickwire import codes
from tickwire.client.errors import AuthExpired, ClientError, StreamRefused, TransportError
from tickwire.client.events import CONNECTED, StreamSpec, WireEvent, seq_of
from tickwire.client.subscriptions import ws_commands
from tickwire.client.transports import Endpoint, InboxSession, check_version
from tickwire.wire.codecs import JSON_CODEC, MSGPACK_CODEC, DecodeError, WSCodec

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# The HTTP status each refusing `error` code stands for (codes.py); `StreamRefused.status`
# is the application close code of the same meaning: 4000 + its last two digits.
ERROR_STATUS = {
    codes.BAD_REQUEST: 400,
    codes.UNKNOWN_TYPE: 400,
    codes.TOO_MANY_SUBSCRIPTIONS: 400,
    codes.UNAUTHORIZED_ERROR: 401,
    codes.FORBIDDEN: 403,
    codes.NOT_FOUND: 404,
}
# `error` codes that retrying cannot fix.
REFUSED_ERRORS = frozenset(
    {
        codes.BAD_REQUEST,
        codes.UNKNOWN_TYPE,
        codes.UNAUTHORIZED_ERROR,
        codes.FORBIDDEN,
        codes.NOT_FOUND,
        codes.TOO_MANY_SUBSCRIPTIONS,
    }
)


class WSTransport:
    name = "ws"
    streaming = True

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.codec: WSCodec = MSGPACK_CODEC if endpoint.config.ws_codec == "msgpack" else JSON_CODEC

    async def open(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> WSSession:
        config = self.endpoint.config
        try:
            conn = await connect(
                self.endpoint.ws_url(),
                subprotocols=[Subprotocol(self.codec.subprotocol)],
                additional_headers=self.endpoint.headers(),
                compression="deflate" if config.ws_compression else None,
                open_timeout=config.connect_timeout_s,
                ping_interval=None,  # the `ping` command below, so pongs count as traffic
                max_size=MAX_MESSAGE_BYTES,
                max_queue=64,
                proxy=None,
            )
        except InvalidStatus as exc:
            response = exc.response
            raise self.endpoint.failure(
                "ws", response.status_code, bytes(response.body or b""), response.headers
            ) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise TransportError(f"ws: cannot connect: {exc!r}") from None
        session = WSSession(self.endpoint, conn, self.codec)
        session.start()
        try:
            await session.update(wanted, last_ids)
        except BaseException:
            await session.close()
            raise
        return session


class WSSession(InboxSession):
    transport = "ws"

    def __init__(self, endpoint: Endpoint, conn: ClientConnection, codec: WSCodec) -> None:
        super().__init__(endpoint.config.inbox_capacity)
        self.endpoint = endpoint
        self.conn = conn
        self.codec = codec
        self._rids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[None]] = {}
        # Streams whose `subscribed` has not come yet: their events (the server sends the
        # snapshot or replay first) wait here, so `connected` comes first as on SSE.
        self._awaiting: dict[str, list[WireEvent]] = {}
        self._resuming: set[str] = set()  # subscribed with a lastEventId: held events are replays
        self._update_lock = asyncio.Lock()
        self.sent: list[dict[str, Any]] = []  # the last commands sent (bounded), for inspection

    def start(self) -> None:
        self.spawn(self._read(), "tickwire-ws-reader")
        if self._ping_interval() > 0:
            self.spawn(self._ping(), "tickwire-ws-ping")

    def _ping_interval(self) -> float:
        """`ws_ping_s`, but at least three pings per stale timeout, so a quiet but healthy
        socket is never taken for a dead one."""
        config = self.endpoint.config
        if config.stale_timeout_s > 0:
            return (
                min(config.ws_ping_s, config.stale_timeout_s / 3)
                if config.ws_ping_s > 0
                else config.stale_timeout_s / 3
            )
        return config.ws_ping_s

    async def send(self, command: dict[str, Any]) -> None:
        frame = self.codec.encode(command)
        try:
            await self.conn.send(frame if self.codec.binary else frame.decode())
        except ConnectionClosed as exc:  # what the close code says, as when reading
            raise self._closed_error(exc) from None
        except OSError as exc:
            raise TransportError(f"ws: send failed: {exc!r}") from None
        self.sent.append(command)
        del self.sent[:-1000]

    async def update(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> None:
        """Send the batched commands that take the server to `wanted`; wait for the answers."""
        async with self._update_lock:
            commands = ws_commands(self.streams, wanted, last_ids, self._rids)
            if not commands:
                return
            loop = asyncio.get_running_loop()
            waits = []
            for command in commands:
                fut: asyncio.Future[None] = loop.create_future()
                self._pending[command["rid"]] = fut
                if command["type"] == "subscribe":
                    for entry in command["streams"]:
                        self._awaiting.setdefault(entry["stream"], [])
                        if "lastEventId" in entry:
                            self._resuming.add(entry["stream"])
                        else:
                            self._resuming.discard(entry["stream"])
                waits.append(fut)
                await self.send(command)
            try:
                async with asyncio.timeout(self.endpoint.config.connect_timeout_s):
                    for fut in waits:
                        await fut
            except TimeoutError:
                raise TransportError("ws: no answer to subscribe within the connect timeout") from None
            finally:
                for command in commands:
                    self._pending.pop(command["rid"], None)
            self.streams = {n: s for n, s in wanted.items() if not (s.symbols is not None and not s.symbols)}

    async def reauthenticate(self, token: str) -> bool:
        """Authenticate the open socket again with a fresh token (same user); True once the
        server answered `authenticated`, False when it did not (the caller reconnects)."""
        rid = f"auth-{next(self._rids)}"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self.send({"type": "auth", "token": token, "rid": rid})
            async with asyncio.timeout(self.endpoint.config.connect_timeout_s):
                await fut
        except (TimeoutError, ClientError):
            return False
        finally:
            self._pending.pop(rid, None)
        return True

    async def _ping(self) -> None:
        interval = self._ping_interval()
        while True:
            await asyncio.sleep(interval)
            await self.send({"type": "ping", "ts": int(time.time() * 1000)})

    async def _read(self) -> None:
        try:
            decode = self.codec.decode
            async for frame in self.conn:
                self.touch()
                try:
                    message = decode(frame)
                except DecodeError as exc:
                    raise TransportError(f"ws: undecodable frame: {exc}") from None
                if isinstance(message, dict):
                    await self._dispatch(message)
        except ConnectionClosed as exc:
            raise self._closed_error(exc) from None
        except OSError as exc:
            raise TransportError(f"ws: socket failed: {exc!r}") from None
        except ClientError as exc:  # e.g. an unknown protocol version: whoever waits learns it
            self._fail_pending(exc)
            raise
        raise self._closed_error(None)

    def _closed_error(self, exc: ConnectionClosed | None) -> ClientError:
        close = exc.rcvd if exc is not None else self.conn.protocol.close_rcvd
        if close is None:
            error: ClientError = TransportError("ws: connection lost without a close frame")
        else:
            known = codes.CLOSE_CODES.get(close.code)
            text = f"ws: closed by the server: {close.code} {close.reason}".strip()
            if close.code == codes.UNAUTHORIZED.code and self.endpoint.credentials.renewable:
                error = AuthExpired(text)
            elif known is not None and not known.reconnect:
                error = StreamRefused(text, close.code, known.name)
            else:
                error = TransportError(text)
        self._fail_pending(error)
        return error

    def _fail_pending(self, error: BaseException) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # retrieved: no "never retrieved" warning if nobody waits

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "event":
            stream = message.get("stream") or ""
            held = self._awaiting.get(stream)
            event = WireEvent(
                stream,
                str(message.get("event")),
                message.get("id"),
                message.get("data"),
                message.get("urgent") is True,
                held is not None and stream in self._resuming,
                seq_of(message.get("seq")),
            )
            if held is not None:
                held.append(event)
            elif not self.offer(event):
                await self.push(event)
        elif kind == "subscribed":
            check_version(message, "ws subscribed")
            await self._subscribed(message)
        elif kind == "authenticated":
            check_version(message, "ws authenticated")
            self._answer(message.get("rid"))
        elif kind == "unsubscribed":
            self._answer(message.get("rid"))
        elif kind == "error":
            self._error(message)

    async def _subscribed(self, message: dict[str, Any]) -> None:
        for item in message.get("streams") or []:
            name = str(item.get("stream"))
            data = {"stream": name, "recovered": bool(item.get("recovered", True)), "transport": "ws"}
            await self.push_many([WireEvent(name, CONNECTED, None, data), *self._awaiting.pop(name, [])])
        self._answer(message.get("rid"))

    def _error(self, message: dict[str, Any]) -> None:
        code = str(message.get("code"))
        stream = message.get("stream")
        if stream:
            self._awaiting.pop(str(stream), None)
        text = f"ws: {code}: {message.get('message')}"
        if stream:
            text += f" (stream {stream})"
        error: ClientError
        if code in REFUSED_ERRORS:
            status = ERROR_STATUS.get(code, 400)
            error = StreamRefused(text, 4000 + status % 100, code)
        else:
            error = TransportError(text)
        fut = self._pending.get(str(message.get("rid")))
        if fut is not None and not fut.done():
            fut.set_exception(error)
            fut.exception()
        elif code in REFUSED_ERRORS:
            raise error

    def _answer(self, rid: Any) -> None:
        fut = self._pending.get(str(rid)) if rid is not None else None
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def close(self) -> None:
        await super().close()
        self._fail_pending(TransportError("ws: session closed"))
        try:
            async with asyncio.timeout(1.0):
                await self.conn.close()
        except (TimeoutError, OSError, WebSocketException):
            pass
