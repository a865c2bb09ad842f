"""The native SSE driver: a streaming response's bytes straight to the socket's transport.

Under `tickwire serve` (TICKWIRE_DRIVER=native, the default) the HTTP protocol
(drivers/uvicorn_http.py) hands every request's response cycle to the app in the scope
(`NATIVE_CYCLE`, a weak reference). The SSE endpoint still admits the request and starts
the response through uvicorn's `send` (the head, chunked encoding chosen by uvicorn), and
ends it the same way; in between, every write is one `transport.write()`:

- The frames in a connection's outbox are already HTTP chunks (`ChunkedSSECodec`): an
  event's chunk is built once and shared by every subscriber, and the outbox's bytes,
  however many frames are pending, are one valid run of chunks, written in one call. A
  gzip response compresses what is pending and frames that as one chunk here.
- `writable` follows the transport's flow control (uvicorn's `FlowControl`, set by the
  protocol's `pause_writing` inside `transport.write`): a write that fills the socket's
  buffer is kept by the transport, the driver turns not writable, and the writer's task
  waits in `drain()` until the transport drains below its low-water mark.
- `abort()` (a slow consumer) drops the transport's buffer and the connection at once.

Compared with the ASGI driver (drivers/asgi.py) this skips, per write, the message dict,
the ASGI `send` coroutine and its checks, and the chunk framing of the pending bytes.
It builds on the attributes `transport`, `flow`, `disconnected`, `chunked_encoding` and
`send` of uvicorn's `RequestResponseCycle` (pinned in pyproject.toml; REQUIRED, checked
by `native_stream`, which falls back to the ASGI driver), tested in tests/drivers/test_native.py.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from starlette.types import Receive, Scope

from tickwire.codes import CloseCode
from tickwire.errors import PeerGone
from tickwire.wire.sse import chunk

# Scope key under which the HTTP protocol passes a weak reference to the response cycle.
NATIVE_CYCLE = "tickwire.native"
# What the driver uses of uvicorn's response cycle.
REQUIRED = ("transport", "flow", "disconnected", "chunked_encoding", "send")


def pass_cycle(scope: dict[str, Any], cycle: Any) -> None:
    """The HTTP protocol's side: let the app find this request's response cycle."""
    scope[NATIVE_CYCLE] = weakref.ref(cycle)


class NativeStreamDriver:
    """One streaming HTTP response (SSE) written to its transport (module docstring)."""

    __slots__ = ("_cycle", "_flow", "_receive", "_transport", "chunked", "peer", "prechunked", "writable")

    def __init__(self, cycle: Any, receive: Receive, peer: str) -> None:
        self._cycle = cycle
        self._transport = cycle.transport
        self._flow = cycle.flow
        self._receive = receive
        self.peer = peer
        # Whether written bytes are HTTP chunks already (`ChunkedSSECodec`); set by the
        # endpoint after `start`, when the response turned out chunked.
        self.prechunked = False
        # Whether the started response is chunked (uvicorn chose it, as the head has no
        # content-length): written bytes must then be chunks.
        self.chunked = False
        self.writable = True

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        self.chunked = self._cycle.chunked_encoding is True

    def write(self, data: bytes) -> bool:
        if self._cycle.disconnected:
            raise PeerGone("client disconnected")
        try:
            self._transport.write(data if self.prechunked or not self.chunked else chunk(data))
        except (RuntimeError, OSError) as exc:  # uvloop: a transport closed since
            raise PeerGone(str(exc) or type(exc).__name__) from exc
        if self._flow.write_paused:
            self.writable = False
            return False
        return True

    def write_frames(self, frames: Sequence[bytes]) -> bool:
        return self.write(b"".join(frames))

    async def drain(self) -> None:
        cycle = self._cycle
        while self._flow.write_paused and not cycle.disconnected:
            await self._flow.drain()
        if cycle.disconnected:
            raise PeerGone("client disconnected")
        self.writable = True

    def abort(self) -> None:
        """Drop what the transport holds and the connection with it."""
        self._transport.abort()
        self.writable = True

    async def close(self, code: CloseCode | None = None, reason: str = "") -> None:
        """End the response (the last, empty chunk) after what was written."""
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send(self, message: Any) -> None:
        try:
            await self._cycle.send(message)
        except Exception as exc:  # ClientDisconnected, or a send after the response ended
            raise PeerGone(str(exc) or type(exc).__name__) from exc

    async def wait_disconnect(self) -> None:
        """Return when the client goes away."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return


def native_stream(scope: Scope, receive: Receive, peer: str) -> NativeStreamDriver | None:
    """The native driver for this request when the HTTP protocol passed its response cycle
    (`tickwire serve` with TICKWIRE_DRIVER=native), else None (use the ASGI driver)."""
    ref = scope.get(NATIVE_CYCLE)
    if ref is None or scope.get("method") != "GET":  # a HEAD response has no body to stream
        return None
    cycle = ref()
    if cycle is None or not all(hasattr(cycle, name) for name in REQUIRED):
        return None
    return NativeStreamDriver(cycle, receive, peer)
