"""The connection driver interface: what the writers and sessions need from a transport.

A driver is one client's socket as the rest of tickwire sees it, and nothing more:

    writable ......... False while a write waits for the socket (flow control)
    write(bytes) ..... stream transports (SSE): the next bytes of the response body;
                       True when the socket took them now
    write_frames(...)  message transports (WebSocket): prepared messages, one per frame
    drain() .......... wait until every pending write reached the socket
    close(code, text)  end the connection (SSE: the response; WebSocket: a close frame)
    abort() .......... give up on a peer that does not read: drop what is pending
    peer ............. the peer's address

Writes never block and never reorder: a write the socket cannot take now is kept,
the driver turns not writable, and whatever comes later waits behind it until `drain()`
completes it. The writer (server/writer.py) therefore only takes bytes out of a
connection's outbox while the driver is writable, so the outbox's bound and conflation
keep applying to everything the socket has not taken.

A WebSocket driver also receives (`receive()`: text, binary, pong or the end) and may
send ping frames of the application's (`ping`, None when it cannot). Drivers: asgi.py
(any ASGI server; the one a mounted app uses), with uvicorn_ws.py for the extensions
`tickwire serve` runs under uvicorn, and native.py (SSE under `tickwire serve`: straight to
the socket's transport).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tickwire.codes import CloseCode
from tickwire.errors import PeerGone

__all__ = ["Driver", "PeerGone", "Received", "WebSocketDriver"]


class Driver(Protocol):
    peer: str
    # Read for every write: a plain attribute, False while a write waits for `drain()`.
    writable: bool

    def write(self, data: bytes) -> bool:
        """Write `data` now (True), or keep it, in order, until `drain()` (False); raises
        `PeerGone`."""
        ...

    def write_frames(self, frames: Sequence[bytes]) -> bool:
        """Write prepared messages, one frame each, like `write` (True when all went now)."""
        ...

    async def drain(self) -> None:
        """Return once every pending write reached the socket; raises `PeerGone`."""
        ...

    async def close(self, code: CloseCode | None = None, reason: str = "") -> None:
        """End the connection after what was written (bounded in time)."""
        ...

    def abort(self) -> None:
        """Drop every pending write (a peer that does not read); `close` may follow."""
        ...


@dataclass(frozen=True, slots=True)
class Received:
    """One thing a WebSocket peer sent: a message (`text` or `data`) or a pong."""

    text: str | None = None
    data: bytes | None = None
    pong: bytes | None = None


class WebSocketDriver(Driver, Protocol):
    # Whether `write_frames` takes complete WebSocket frames (`wire.codecs.ws_frame`), so
    # that one pre-built frame serves every subscriber; else message payloads.
    framed: bool
    # Whether `ping` sends real ping frames (and their pongs come back as `Received`).
    can_ping: bool

    async def receive(self) -> Received | None:
        """The next message or pong; None once the peer closed or went away."""
        ...

    async def ping(self, payload: bytes) -> None:
        """Send a ping frame with `payload` (only when `can_ping`)."""
        ...
