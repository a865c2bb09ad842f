"""The uvicorn WebSocket protocol that `tickwire serve` runs, and its ASGI extensions.

ASGI has no ping frames and no way to write a frame the app built. uvicorn's sans-I/O
WebSocket protocol is extended with:

- `tickwire.websocket.ping`: the app sends `{"type": PING, "bytes": <unix ms>}` and
  receives `{"type": PONG, "bytes": ...}` for the pongs that answer it (RTT, missed pongs);
- `tickwire.websocket.frames`: the app sends `{"type": RAW_FRAME, "frames": [<bytes>, ...]}`,
  complete frames shared by every subscriber, written as they are in one write (re-encoded
  per connection only when permessage-deflate was negotiated);
- with `native` (TICKWIRE_DRIVER=native): the protocol passes a weak reference to itself in
  the scope (`NATIVE_FRAMES`) and the app's driver writes frames through `write_frames_now`,
  straight to the transport, while nothing waits before them (drivers/asgi.py);
- a close requested while the peer is not reading is queued behind the buffered data and
  the transport aborted if the peer does not read it within CLOSE_TIMEOUT_S;
- close code 1001 (going away) on shutdown instead of 1012;
- a lost connection closes websockets' parser, which otherwise keeps the closed connection
  in a reference cycle (server/gcpolicy.py freezes such objects out of the collector's sight).

It subclasses uvicorn's `WebSocketsSansIOProtocol` and uses its connection state
(`conn`, `transport`, `queue`, `writable`, `close_sent`...), which are not a public API:
pyproject.toml pins uvicorn to the versions this was tested with, `REQUIRED` lists what
it relies on and `uvicorn_ws_protocol()` checks it (falling back to uvicorn's own
protocol, without app pings, and saying so), and tests/drivers/test_uvicorn_ws.py runs
the protocol against a fake transport, bytes in and bytes out.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar, cast

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import State

from tickwire import codes
from tickwire.wire.codecs import ws_payload

log = logging.getLogger("tickwire.uvicorn")

PING_EXTENSION = "tickwire.websocket.ping"
PING = "tickwire.websocket.ping"
PONG = "tickwire.websocket.pong"
# The server writes complete frames the app built (shared by every subscriber) as they are.
FRAMES_EXTENSION = "tickwire.websocket.frames"
RAW_FRAME = "tickwire.websocket.frame"
# Scope key of the weak reference to the protocol, for `write_frames_now` (native only).
NATIVE_FRAMES = "tickwire.websocket.native"
# Largest message the uvicorn protocol accepts at all (close 1009 beyond); the protocol's
# own bound, TICKWIRE_WS_MAX_MESSAGE_BYTES, is checked by the app and answered with 1008.
PROTOCOL_MAX_SIZE = 1 << 20
# How long a close frame may wait for a peer that stopped reading.
CLOSE_TIMEOUT_S = 5.0


# What the subclass below uses of uvicorn's protocol (methods of the class; the attributes
# are set by its __init__ and handle_connect and covered by the tests).
REQUIRED = (
    "handle_connect",
    "handle_pong",
    "send",
    "shutdown",
    "stop_keepalive",
    "data_received",
    "connection_lost",
)


class TickwireWSProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with tickwire's extensions (module docstring)."""

    app_pings: list[bytes]
    native: ClassVar[bool] = False  # pass `write_frames_now` to the app (module docstring)

    def handle_connect(self, event: Request) -> None:
        self.app_pings = []
        super().handle_connect(event)
        if self.response.status_code == 101:  # the app task starts on the next loop turn
            extensions = self.scope.get("extensions")
            if extensions is not None:
                extensions[PING_EXTENSION] = {}
                extensions[FRAMES_EXTENSION] = {}
            if self.native:
                cast(dict[str, Any], self.scope)[NATIVE_FRAMES] = weakref.ref(self)

    def write_frames_now(self, frames: Sequence[bytes]) -> bool | None:
        """Write complete frames at once, in one write, when nothing stands in the way: True
        when the transport still takes more, False once it is full; None when they must go
        through `send` instead (not open, permessage-deflate, or the transport is full)."""
        if not self.writable.is_set() or self.conn.extensions or not self._open():
            return None
        if self.conn.state is not State.OPEN:
            return None
        self.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        return self.writable.is_set()

    def _open(self) -> bool:
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
        )

    async def send(self, message: Any) -> None:
        msg = cast(dict[str, Any], message)
        kind = msg["type"]
        if kind == RAW_FRAME:
            await self._send_frames(msg["frames"])
        elif kind == PING:
            self._send_ping(bytes(msg["bytes"]))
        elif kind == "websocket.close" and self._open() and not self.writable.is_set():
            self._close_behind_unread(int(msg.get("code", 1000)), str(msg.get("reason") or ""))
        else:
            await super().send(message)

    async def _send_frames(self, frames: Sequence[bytes]) -> None:
        await self.writable.wait()  # the same flow control as any send
        if self.disconnected:
            raise ClientDisconnected()
        if not (self._open() and self.conn.state is State.OPEN):
            return
        if self.conn.extensions:  # permessage-deflate: every frame must be re-encoded
            for frame in frames:
                payload = ws_payload(frame)
                if frame[0] & 0x0F == 0x2:
                    self.conn.send_binary(payload)
                else:
                    self.conn.send_text(payload)
            data = b"".join(self.conn.data_to_send())
        else:
            data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.transport.write(data)

    def _send_ping(self, payload: bytes) -> None:
        if self._open():
            self.app_pings = [*self.app_pings[-3:], payload]
            with contextlib.suppress(InvalidState):
                self.conn.send_ping(payload)
                self.transport.write(b"".join(self.conn.data_to_send()))

    def _close_behind_unread(self, code: int, reason: str) -> None:
        """A close while the peer does not read: queue the frame behind the unread data,
        end the app's side now, and abort the transport if the peer never reads it."""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        with contextlib.suppress(InvalidState):
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(CLOSE_TIMEOUT_S, self.transport.abort)

    def handle_pong(self, event: Frame) -> None:
        payload = bytes(event.data)
        if payload in self.app_pings:
            self.app_pings.remove(payload)
            self.queue.put_nowait(cast(Any, {"type": PONG, "bytes": payload}))
            return
        super().handle_pong(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # websockets parses with a generator whose frame holds the connection state, even once
        # it only discards (after a close, or at EOF): a reference cycle of the protocol,
        # its permessage-deflate state and buffers, which would keep a closed connection
        # until a full collection. Nothing reads from this connection any more.
        self.conn.parser.close()

    def shutdown(self) -> None:
        if not self._open():
            super().shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": codes.GOING_AWAY.code})
        with contextlib.suppress(InvalidState):
            self.conn.send_close(codes.GOING_AWAY.code, codes.GOING_AWAY.reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()


def uvicorn_ws_protocol(*, native: bool = False) -> type[WebSocketsSansIOProtocol] | str:
    """The uvicorn WebSocket protocol `tickwire serve` runs: `TickwireWSProtocol` (passing
    `write_frames_now` to the app when `native`), or "websockets-sansio" (uvicorn's own,
    without app pings) on a uvicorn that lacks what it builds on."""
    missing = [name for name in REQUIRED if not callable(getattr(WebSocketsSansIOProtocol, name, None))]
    if missing:
        log.warning("this uvicorn lacks %s: WebSocket pings and shared frames are off", ", ".join(missing))
        return "websockets-sansio"
    if not native:
        return TickwireWSProtocol

    class NativeWSProtocol(TickwireWSProtocol):
        native = True

    return NativeWSProtocol
