"""The uvicorn WebSocket protocol that `tickwire serve` runs, and its ASGI extensions.

ASGI has no ping frames and no way to write a frame the app built. uvicorn's sans-I/O
WebSocket protocol is extended with:

- `tickwire.websocket.ping`: the app sends `{"type": PING, "bytes": <unix ms>}` and
  receives `{"type": PONG, "bytes": ...}` for the pongs that answer it (RTT, missed pongs);
- `tickwire.websocket.frames`: the app sends `{"type": RAW_FRAME, "frame": <bytes>}`, a
  complete frame shared by every subscriber, written as it is (re-encoded per connection
  only when permessage-deflate was negotiated);
- a close requested while the peer is not reading is queued behind the buffered data and
  the transport aborted if the peer does not read it within CLOSE_TIMEOUT_S;
- close code 1001 (going away) on shutdown instead of 1012.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

from tickwire import codes
from tickwire.wire.codecs import ws_payload

PING_EXTENSION = "tickwire.websocket.ping"
PING = "tickwire.websocket.ping"
PONG = "tickwire.websocket.pong"
# The server writes complete frames the app built (shared by every subscriber) as they are.
FRAMES_EXTENSION = "tickwire.websocket.frames"
RAW_FRAME = "tickwire.websocket.frame"
# Largest message the uvicorn protocol accepts at all (close 1009 beyond); the protocol's
# own bound, MAX_MESSAGE_BYTES, is checked by the app and answered with 1008.
PROTOCOL_MAX_SIZE = 1 << 20
# How long a close frame may wait for a peer that stopped reading.
CLOSE_TIMEOUT_S = 5.0


def uvicorn_ws_protocol() -> Any:
    """The uvicorn WebSocket protocol `tickwire serve` runs.

    uvicorn's sans-I/O implementation, plus: the `tickwire.websocket.ping` extension
    (ping frames sent by the app, the pongs that answer them delivered to it); a close
    requested while the peer is not reading is queued behind the buffered data and the
    transport aborted if the peer does not read it within CLOSE_TIMEOUT_S; and close
    code 1001 (going away) on shutdown instead of 1012. Returns "auto" on a uvicorn
    without the sans-I/O implementation (no server pings then).
    """
    try:
        from uvicorn.protocols.utils import ClientDisconnected
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
        from websockets.exceptions import InvalidState
        from websockets.frames import Frame
        from websockets.http11 import Request
        from websockets.protocol import State
    except ImportError:  # pragma: no cover - uvicorn < 0.35
        return "auto"

    class TickwireWSProtocol(WebSocketsSansIOProtocol):
        app_pings: list[bytes]

        def handle_connect(self, event: Request) -> None:
            self.app_pings = []
            super().handle_connect(event)
            if self.response.status_code == 101:  # the app task starts on the next loop turn
                extensions = self.scope.get("extensions")
                if extensions is not None:
                    extensions[PING_EXTENSION] = {}
                    extensions[FRAMES_EXTENSION] = {}

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
                await self.writable.wait()  # the same flow control as any send
                if self.disconnected:
                    raise ClientDisconnected()
                if self._open() and self.conn.state is State.OPEN:
                    frame: bytes = msg["frame"]
                    if self.conn.extensions:  # permessage-deflate: the frame must be re-encoded
                        payload = ws_payload(frame)
                        if frame[0] & 0x0F == 0x2:
                            self.conn.send_binary(payload)
                        else:
                            self.conn.send_text(payload)
                        frame = b"".join(self.conn.data_to_send())
                    self.transport.write(frame)
                return
            if kind == PING:
                if self._open():
                    payload = bytes(msg["bytes"])
                    self.app_pings = [*self.app_pings[-3:], payload]
                    with contextlib.suppress(InvalidState):
                        self.conn.send_ping(payload)
                        self.transport.write(b"".join(self.conn.data_to_send()))
                return
            if kind == "websocket.close" and self._open() and not self.writable.is_set():
                code = int(msg.get("code", 1000))
                reason = str(msg.get("reason") or "")
                self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
                with contextlib.suppress(InvalidState):
                    self.conn.send_close(code, reason)
                    self.transport.write(b"".join(self.conn.data_to_send()))
                self.close_sent = True
                if self.read_paused:
                    self.read_paused = False
                    self.transport.resume_reading()
                self.close_timer = self.loop.call_later(CLOSE_TIMEOUT_S, self.transport.abort)
                return
            await super().send(message)

        def handle_pong(self, event: Frame) -> None:
            payload = bytes(event.data)
            if payload in self.app_pings:
                self.app_pings.remove(payload)
                self.queue.put_nowait(cast(Any, {"type": PONG, "bytes": payload}))
                return
            super().handle_pong(event)

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

    return TickwireWSProtocol
