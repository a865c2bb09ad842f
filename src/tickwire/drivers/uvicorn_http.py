"""The uvicorn HTTP protocol `tickwire serve` runs: httptools with bounds on the request head
and on the open connections of one client address.

uvicorn's httptools protocol bounds neither the size of a request head nor the time a
client takes to send it (a client sending one header line a second, or an endless header,
holds its connection and memory forever), and nothing counts connections per address
(h11 bounds the head's size, `h11_max_incomplete_event_size`, but has no head timeout
either). `TickwireHTTPProtocol` adds, from the settings (`ConnectionGuard`):

- **head size** (TICKWIRE_MAX_HEADER_BYTES): the bytes of an unfinished head are counted as
  they arrive, so an endless header is refused at most one read past the bound, never
  buffered whole, and a finished head is measured exactly. Beyond the bound the client gets
  431 in the SPEC's error shape; the protocol then half-closes and reads and discards what
  the client still sends (at most DISCARD_BYTES, DISCARD_S) so the client reads the answer
  instead of a reset, and closes.
- **head time** (TICKWIRE_HEADER_TIMEOUT_S): from the moment the connection opens, or the
  first byte of the next request on a kept-alive connection, to the end of the head. Past
  it the connection is closed without an answer. (An idle kept-alive connection is uvicorn's
  own `timeout_keep_alive`.)
- **connections per address** (TICKWIRE_MAX_CONNS_PER_IP, 0 = no cap): every open
  connection counts for its peer address, a WebSocket until it closes. A connection beyond
  the cap is closed as soon as it is accepted, before anything is read: no answer, as
  a client holding that many connections is not one that reads it, and answering
  would cost what the cap saves.

Refusals are counted by reason (`header_too_large`, `header_timeout`, `conns_per_ip`) through
the guard's `on_refused` (tickwire_requests_rejected) and logged at most every LOG_EVERY_S per reason.

With `native` (TICKWIRE_DRIVER=native) the protocol also hands each request's response
cycle to the app in the scope, for the native SSE driver (drivers/native.py).

Once a head is complete nothing changes: bodies, responses and streams run uvicorn's code
(a flag test per read, nothing per write). It subclasses uvicorn's `HttpToolsProtocol` and
uses its connection state, which is not a public API: pyproject.toml pins uvicorn, REQUIRED
lists what this relies on and `uvicorn_http_protocol()` checks it (falling back to uvicorn's
own protocol, without these limits, and saying so), and tests/drivers/test_uvicorn_http.py
runs the protocol against a fake transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tickwire.drivers.native import pass_cycle
from tickwire.errors import TickwireError

log = logging.getLogger("tickwire.uvicorn")

DISCARD_BYTES = 1 << 20
"""Most bytes read and dropped after a 431 before the connection is cut."""
DISCARD_S = 5.0
"""Longest time spent reading and dropping after a 431."""
LOG_EVERY_S = 10.0
"""Refusals are logged at most this often (a flood must not flood the log)."""

# What the subclass uses of uvicorn's protocol: methods it overrides or calls (the attributes,
# `parser`, `url`, `headers`, `client`, `transport`, `connections`, `cycle`, `server_state`
# and `logger`, are set by its __init__ and callbacks and covered by the tests).
REQUIRED = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
    "handle_websocket_upgrade",
    "send_400_response",
    "_unset_keepalive_if_required",
    "_should_upgrade",
    "_unsupported_upgrade_warning",
)


class HeadTooLarge(TickwireError):
    """Raised in the parser's callback to stop parsing a head over the bound."""


class ConnectionGuard:
    """What every connection of one server shares: the bounds, the open connections per
    address, and what to do with a refusal."""

    def __init__(
        self,
        *,
        max_head_bytes: int,
        head_timeout_s: float,
        max_conns_per_ip: int,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.head_timeout_s = head_timeout_s
        self.max_conns_per_ip = max_conns_per_ip
        self.open: dict[str, int] = {}
        self.refusals: dict[str, int] = {}
        self._on_refused = on_refused
        self._logged_at: dict[str, float] = {}

    def enter(self, ip: str | None) -> bool:
        """Whether a connection from `ip` may open; it then counts until `leave(ip)`."""
        if ip is None or self.max_conns_per_ip <= 0:
            return True
        count = self.open.get(ip, 0)
        if count >= self.max_conns_per_ip:
            return False
        self.open[ip] = count + 1
        return True

    def leave(self, ip: str | None) -> None:
        if ip is None or self.max_conns_per_ip <= 0:
            return
        count = self.open.get(ip, 0) - 1
        if count > 0:
            self.open[ip] = count
        else:
            self.open.pop(ip, None)

    def refused(self, reason: str, ip: str | None) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        if self._on_refused is not None:
            self._on_refused(reason)
        now = time.monotonic()
        if now - self._logged_at.get(reason, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged_at[reason] = now
            log.warning(
                "connection refused", extra={"reason": reason, "peer": ip, "refusals": dict(self.refusals)}
            )


def error_response(status: int, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete `Connection: close` response in the SPEC's error shape."""
    phrase = HTTPStatus(status).phrase
    body = orjson.dumps({"error": phrase, "message": message, "statusCode": status})
    head = [f"HTTP/1.1 {status} {phrase}\r\n".encode()]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head.append(
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-correlation-id: {uuid.uuid4().hex}\r\nconnection: close\r\n\r\n".encode()
    )
    return b"".join(head) + body


class TickwireHTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head and per-address bounds (module docstring)."""

    guard: ClassVar[ConnectionGuard]
    native: ClassVar[bool] = False  # pass the response cycle to the app (drivers/native.py)
    _peer: str | None = None  # the address this protocol counts in the guard
    _head_timer: asyncio.TimerHandle | None = None
    _in_head: bool = True  # waiting for, or reading, a request head
    _head_bytes: int = 0  # bytes received since the head began (an upper bound of an unfinished one)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ip = self.client[0] if self.client else None
        if not self.guard.enter(ip):
            self._in_head = False
            self.guard.refused("conns_per_ip", ip)
            transport.close()
            return
        self._peer = ip
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        peer, self._peer = self._peer, None
        self.guard.leave(peer)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse_head()
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        if self._in_head and self._head_bytes > self.guard.max_head_bytes:
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the first request's runs from the connection's start
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.guard.max_head_bytes:
            raise HeadTooLarge
        super().on_headers_complete()
        cycle = self.cycle
        if self.native and cycle is not None and cycle.scope is self.scope:  # not for an upgrade
            pass_cycle(self.scope, cycle)  # type: ignore[arg-type]

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        self._leave()
        peer, self._peer = self._peer, None
        if peer is not None:  # the WebSocket protocol owns the connection now, and its count
            guard = self.guard
            _on_lost(self.transport.get_protocol(), lambda: guard.leave(peer))

    def _leave(self) -> None:
        """This protocol hands its connection over and will never see `connection_lost`, where
        uvicorn drops the parser, whose callbacks are bound to this protocol: a reference
        cycle that only a full collection would free."""
        self.parser = None  # type: ignore[assignment]

    # -- refusals -------------------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.guard.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        self.guard.refused("header_timeout", self._peer)
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # a response the client does not read must not keep it open
        else:
            self.transport.close()

    def _refuse_head(self) -> None:
        """431, then drop what the client still sends (module docstring)."""
        self._in_head = False
        self._cancel_head_timer()
        self.guard.refused("header_too_large", self._peer)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined head behind a running response: no room for an answer
            return
        self.connections.discard(self)  # as for an upgrade: the connection leaves this protocol
        message = (
            f"Request head too large: at most {self.guard.max_head_bytes} bytes of request line and headers"
        )
        self.transport.write(error_response(431, message, self.server_state.default_headers))
        peer, self._peer = self._peer, None
        discard = _Discard(self.transport, lambda: self.guard.leave(peer))
        self.transport.set_protocol(discard)
        self._leave()
        discard.start()


class _Discard(asyncio.Protocol):
    """A refused connection after its answer: half-closed, what the client still sends is
    dropped; closed at the client's end, past DISCARD_BYTES or after DISCARD_S."""

    def __init__(self, transport: asyncio.Transport, on_lost: Callable[[], None]) -> None:
        self.transport = transport
        self.on_lost = on_lost
        self.left = DISCARD_BYTES
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.timer = asyncio.get_running_loop().call_later(DISCARD_S, self.transport.abort)

    def data_received(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left < 0:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.on_lost()


def _on_lost(protocol: Any, callback: Callable[[], None]) -> None:
    """Have `callback` run after `protocol.connection_lost` (the upgraded WebSocket protocol,
    uvicorn's or drivers/uvicorn_ws.py's)."""
    lost = protocol.connection_lost

    def connection_lost(exc: Exception | None) -> None:
        try:
            lost(exc)
        finally:
            del protocol.connection_lost  # it refers to the protocol: a reference cycle until now
            callback()

    protocol.connection_lost = connection_lost


def uvicorn_http_protocol(guard: ConnectionGuard, *, native: bool = False) -> type[asyncio.Protocol] | str:
    """The uvicorn HTTP protocol `tickwire serve` runs: `TickwireHTTPProtocol` bound to `guard`
    (passing response cycles to the native driver when `native`), or "httptools" (uvicorn's
    own, without these bounds, and SSE through the ASGI driver) on a uvicorn lacking what it
    builds on."""
    missing = [name for name in REQUIRED if not callable(getattr(HttpToolsProtocol, name, None))]
    if missing:
        log.error(
            "this uvicorn lacks %s: request heads and connections per address are NOT bounded",
            ", ".join(missing),
        )
        return "httptools"

    class GuardedHTTPProtocol(TickwireHTTPProtocol):
        pass

    GuardedHTTPProtocol.guard = guard
    GuardedHTTPProtocol.native = native
    return GuardedHTTPProtocol
