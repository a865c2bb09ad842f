"""The ASGI driver: tickwire's connections over any ASGI server (and a mounted app).

Writing without a task per write. An ASGI `send` is a coroutine; waking one task per
connection for every event costs more than the write itself. A server's `send` only
suspends when the socket is full (flow control), so `EagerSend` runs the coroutine right
there, in the dispatching code, through the public coroutine protocol (`send(None)`):
when it completes the write is done with no task switch; when it suspends, it is parked
and the driver turns not writable until the connection's own task completes it in
`drain()`. Nothing here reads or writes a private attribute of asyncio.

`TickwireApp` passes the server's own `send` to stream writers through the scope: they
call it tens of thousands of times a second, and Starlette's error middlewares wrap it
only to learn whether a response started, which a stream that answers its own errors
does not need.

Tested with fake ASGI servers in tests/drivers/test_asgi.py, bytes in and messages out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any, cast

from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from tickwire.codes import NORMAL, POLICY_VIOLATION, CloseCode
from tickwire.drivers.base import PeerGone, Received
from tickwire.drivers.uvicorn_ws import (
    CLOSE_TIMEOUT_S,
    FRAMES_EXTENSION,
    NATIVE_FRAMES,
    PING,
    PING_EXTENSION,
    PONG,
    RAW_FRAME,
)

# Scope key under which `TickwireApp` passes the server's own `send` to stream writers.
RAW_SEND = "tickwire.send"
HTTP_RESPONSE_EXTENSION = "websocket.http.response"


class TickwireApp(Starlette):
    """Starlette, plus the server's own `send` in the scope (see the module docstring)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND] = send
        try:
            await super().__call__(scope, receive, send)
        finally:
            # `send` is bound to the server's connection object, which holds the scope: a
            # reference cycle that would keep a closed connection until a full collection.
            scope.pop(RAW_SEND, None)


def raw_send(scope: Scope, send: Send) -> Send:
    """The server's own `send` when `TickwireApp` passed it, else `send`."""
    found: Send = scope.get(RAW_SEND, send)
    return found


class EagerSend:
    """Runs ASGI `send`s at once when they need not wait; keeps them in order otherwise.

    The base of the ASGI drivers: `writable` is a plain attribute (read for every write),
    False from the moment a send parks until `drain()` completed everything behind it.
    """

    __slots__ = ("_parked", "_pending", "_send", "writable")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._parked: tuple[Coroutine[Any, Any, None], Any] | None = None
        self._pending: deque[Message] = deque()
        self.writable = True

    def send_now(self, message: Message) -> bool:
        """Send `message` (True), or keep it behind a send that waits (False); raises `PeerGone`."""
        if not self.writable:
            self._pending.append(message)
            return False
        coro = cast(Coroutine[Any, Any, None], self._send(message))
        try:
            waiting = coro.send(None)
        except StopIteration:
            return True
        except Exception as exc:  # ClientDisconnected, or a send after the response ended
            raise PeerGone(str(exc) or type(exc).__name__) from exc
        self._parked = (coro, waiting)
        self.writable = False
        return False

    async def drain(self) -> None:
        """Complete the parked send, then the queued ones; raises `PeerGone`."""
        try:
            while self._parked is not None or self._pending:
                if self._parked is not None:
                    await self._finish()
                else:
                    await self._send(self._pending.popleft())
        except (asyncio.CancelledError, PeerGone):
            raise
        except Exception as exc:
            raise PeerGone(str(exc) or type(exc).__name__) from exc
        self.writable = True

    async def _finish(self) -> None:
        assert self._parked is not None
        coro, waiting = self._parked
        try:
            while True:
                if asyncio.isfuture(waiting):
                    await asyncio.wait([waiting])
                else:  # a bare yield (sleep(0)): give the loop one turn
                    await asyncio.sleep(0)
                try:
                    waiting = coro.send(None)
                except StopIteration:
                    return
        finally:
            self._parked = None
            coro.close()

    def abort(self) -> None:
        """Forget the parked and queued sends (their bytes are lost)."""
        if self._parked is not None:
            self._parked[0].close()
            self._parked = None
        self._pending.clear()
        self.writable = True

    async def send(self, message: Message) -> None:
        """Send after everything before it, waiting as long as the socket needs."""
        await self.drain()
        try:
            await self._send(message)
        except Exception as exc:
            raise PeerGone(str(exc) or type(exc).__name__) from exc


class ASGIStreamDriver(EagerSend):
    """One streaming HTTP response (SSE): body chunks written as they come."""

    __slots__ = ("_receive", "peer")

    def __init__(self, send: Send, receive: Receive, peer: str) -> None:
        super().__init__(send)
        self._receive = receive
        self.peer = peer

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    def write(self, data: bytes) -> bool:
        return self.send_now({"type": "http.response.body", "body": data, "more_body": True})

    def write_frames(self, frames: Sequence[bytes]) -> bool:
        return self.write(b"".join(frames))

    async def close(self, code: CloseCode | None = None, reason: str = "") -> None:
        """End the response (the last, empty chunk) after what was written."""
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def wait_disconnect(self) -> None:
        """Return when the client goes away."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return


class ASGIWebSocketDriver(EagerSend):
    """One accepted WebSocket: messages out (shared pre-built frames where the server
    takes them), messages and pongs in, ping frames and close codes where it can.

    Under `tickwire serve` with TICKWIRE_DRIVER=native, pending frames are written straight
    to the transport through the protocol's `write_frames_now` (drivers/uvicorn_ws.py)
    whenever nothing waits before them; a write that fills the socket turns the driver not
    writable until `drain()` saw the transport take more."""

    __slots__ = ("_binary", "_native", "_receive", "can_ping", "framed", "peer")

    def __init__(self, scope: Scope, send: Send, receive: Receive, peer: str, *, binary: bool) -> None:
        super().__init__(raw_send(scope, send))
        extensions = scope.get("extensions") or {}
        self._receive = receive
        self._binary = binary
        # Frames are complete WebSocket frames (`ws_frame`) when the server takes them.
        self.framed = FRAMES_EXTENSION in extensions
        self.can_ping = PING_EXTENSION in extensions
        self.peer = peer
        ref = scope.get(NATIVE_FRAMES)
        self._native: Any = ref() if ref is not None and self.framed else None

    def write(self, data: bytes) -> bool:
        return self.send_now(self._message(data))

    def write_frames(self, frames: Sequence[bytes]) -> bool:
        if self.framed:  # every pending frame in one write
            native = self._native
            if native is not None and self.writable:  # nothing waits: straight to the socket
                written: bool | None = native.write_frames_now(frames)
                if written is not None:
                    self.writable = written
                    return written
            return self.send_now({"type": RAW_FRAME, "frames": frames})
        done = True
        for frame in frames:
            done = self.send_now(self._message(frame))
        return done

    async def drain(self) -> None:
        native = self._native
        if native is not None and not native.writable.is_set():  # a direct write filled it
            await native.writable.wait()  # set again when the transport drains, or is lost
            if native.disconnected:
                raise PeerGone("client disconnected")
        await super().drain()

    def _message(self, frame: bytes) -> Message:
        if self.framed:
            return {"type": RAW_FRAME, "frames": (frame,)}
        if self._binary:
            return {"type": "websocket.send", "bytes": frame}
        return {"type": "websocket.send", "text": frame.decode()}

    async def ping(self, payload: bytes) -> None:
        await self.send({"type": PING, "bytes": payload})

    async def receive(self) -> Received | None:
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.receive":
                return Received(text=message.get("text"), data=message.get("bytes"))
            if kind == PONG:
                return Received(pong=bytes(message.get("bytes") or b""))
            if kind == "websocket.disconnect":
                return None

    async def close(self, code: CloseCode | None = None, reason: str = "") -> None:
        """A close frame after what was written; a stalled peer cannot hold it longer
        than CLOSE_TIMEOUT_S (uvicorn_ws.py queues it behind unread data and aborts)."""
        code = code or NORMAL
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.drain()
                await self._send({"type": "websocket.close", "code": code.code, "reason": close_text(reason)})


def close_text(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    return text.encode()[:123].decode("utf-8", "ignore")


async def accept_websocket(send: Send, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
    message: dict[str, Any] = {"type": "websocket.accept", "headers": headers}
    if subprotocol is not None:
        message["subprotocol"] = subprotocol
    await send(message)


async def deny_websocket(
    scope: Scope, send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], reason: str
) -> None:
    """Refuse a handshake: an HTTP error response when the server can send one, else a close."""
    if HTTP_RESPONSE_EXTENSION in (scope.get("extensions") or {}):
        all_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ]
        await send({"type": "websocket.http.response.start", "status": status, "headers": all_headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": POLICY_VIOLATION.code, "reason": close_text(reason)})
