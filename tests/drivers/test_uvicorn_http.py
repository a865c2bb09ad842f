"""The uvicorn HTTP protocol `tickwire serve` runs (drivers/uvicorn_http.py), against a fake
transport: request bytes in, response bytes out. Nothing else of uvicorn runs; the
end-to-end side is tests/server/test_e2e_connection_limits.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from tickwire.drivers import uvicorn_http
from tickwire.drivers.uvicorn_http import (
    DISCARD_BYTES,
    REQUIRED,
    ConnectionGuard,
    TickwireHTTPProtocol,
    uvicorn_http_protocol,
)
from tickwire.drivers.uvicorn_ws import TickwireWSProtocol

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
HEAD = 1024
WS_HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes and does; the test calls connection_lost itself."""

    def __init__(self, ip: str = "127.0.0.1") -> None:
        super().__init__()
        self.ip = ip
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.eof = False
        self.protocol: asyncio.BaseProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": (self.ip, 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: Any) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def status(self) -> int | None:
        if not self.written.startswith(b"HTTP/1.1 "):
            return None
        return int(self.written[9:12])


class Served:
    """An app that answers 200 with the body it read, or holds the response open (`hold`)."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.calls = 0
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await receive()
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        if self.hold:
            await asyncio.Event().wait()
        await send({"type": "http.response.body", "body": b"ok"})


class Server:
    """One guard, one protocol class, and the connections made with it."""

    def __init__(self, app: App, *, head: int = HEAD, timeout_s: float = 5.0, cap: int = 0) -> None:
        self.refused: list[str] = []
        self.guard = ConnectionGuard(
            max_head_bytes=head,
            head_timeout_s=timeout_s,
            max_conns_per_ip=cap,
            on_refused=self.refused.append,
        )
        cls = uvicorn_http_protocol(self.guard)
        assert isinstance(cls, type) and issubclass(cls, TickwireHTTPProtocol)
        self.cls = cls
        self.config = Config(app, http=cls, ws=TickwireWSProtocol, lifespan="off")
        self.config.load()
        self.state = ServerState()

    def connect(self, ip: str = "127.0.0.1") -> tuple[TickwireHTTPProtocol, FakeTransport]:
        protocol = self.cls(config=self.config, server_state=self.state, app_state={})
        transport = FakeTransport(ip)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        return protocol, transport


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def body_of(transport: FakeTransport) -> dict[str, Any]:
    _, _, body = bytes(transport.written).partition(b"\r\n\r\n")
    parsed: dict[str, Any] = orjson.loads(body)
    return parsed


# -- heads ----------------------------------------------------------------------------------------------


def test_a_head_within_the_bounds_is_served_and_its_timer_disarmed() -> None:
    async def test() -> None:
        app = Served()
        server = Server(app)
        protocol, transport = server.connect()
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"a" * 900 + b"\r\n\r\n")
        await turns()
        assert transport.status() == 200
        assert protocol._head_timer is None
        assert server.refused == []

    run(test)


def test_an_unfinished_head_over_the_bound_gets_431_then_is_discarded() -> None:
    async def test() -> None:
        app = Served()
        server = Server(app, cap=10)
        protocol, transport = server.connect()
        protocol.data_received(b"GET / HTTP/1.1\r\nAuthorization: Bearer " + b"a" * 600)
        assert transport.written == b""
        protocol.data_received(b"a" * 600)  # past the bound, the head still unfinished
        assert transport.status() == 431
        assert body_of(transport) == {
            "error": "Request Header Fields Too Large",
            "message": f"Request head too large: at most {HEAD} bytes of request line and headers",
            "statusCode": 431,
        }
        assert b"connection: close\r\n" in transport.written
        assert transport.eof and not transport.closed  # half-closed: the client reads the answer
        assert server.refused == ["header_too_large"]
        discard = transport.get_protocol()
        assert discard is not protocol
        assert protocol not in server.state.connections
        assert isinstance(discard, asyncio.Protocol)
        discard.data_received(b"a" * 65536)  # what the client still sends is dropped
        assert not transport.closed
        discard.data_received(b"a" * DISCARD_BYTES)
        assert transport.aborted
        assert server.guard.open == {"127.0.0.1": 1}
        discard.connection_lost(None)
        assert server.guard.open == {}
        assert app.calls == 0

    run(test)


def test_a_finished_head_over_the_bound_read_at_once_gets_431() -> None:
    async def test() -> None:
        app = Served()
        server = Server(app)
        protocol, transport = server.connect()
        protocol.data_received(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\nContent-Length: 2\r\n\r\n{}"
        )
        await turns()
        assert transport.status() == 431
        assert app.calls == 0
        discard = transport.get_protocol()
        assert isinstance(discard, asyncio.Protocol)
        assert discard.eof_received() is False  # the client's end: the transport closes

    run(test)


def test_bodies_and_pipelined_requests_do_not_count_as_head() -> None:
    async def test() -> None:
        app = Served()
        server = Server(app)
        protocol, transport = server.connect()
        body = b"x" * 20_000
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n" + body[:5000])
        protocol.data_received(body[5000:] + b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        await turns(10)
        assert app.bodies == [body, b""]
        assert bytes(transport.written).count(b"HTTP/1.1 200") == 2
        assert server.refused == []

    run(test)


def test_a_head_not_finished_in_time_closes_the_connection() -> None:
    async def test() -> None:
        server = Server(Served(), timeout_s=0.05)
        slow, slow_transport = server.connect()
        _, silent_transport = server.connect()
        slow.data_received(b"GET / HTTP/1.1\r\n")
        await asyncio.sleep(0.03)
        slow.data_received(b"X-A: 1\r\n")  # bytes do not extend the bound
        await asyncio.sleep(0.05)
        assert slow_transport.closed and silent_transport.closed
        assert slow_transport.written == b"" and not slow_transport.aborted
        assert server.refused == ["header_timeout", "header_timeout"]

    run(test)


def test_a_response_outlives_the_head_timer_and_the_next_head_gets_its_own() -> None:
    async def test() -> None:
        server = Server(Served(hold=True), timeout_s=0.05)
        streaming, transport = server.connect()
        streaming.data_received(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.15)
        assert not transport.closed  # the head was complete: a stream lasts
        served = Server(Served(), timeout_s=0.05)
        kept, kept_transport = served.connect()
        kept.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.08)
        assert kept_transport.status() == 200 and not kept_transport.closed
        kept.data_received(b"GET /next HTTP/1.1\r\n")  # the next head starts its own bound
        await asyncio.sleep(0.08)
        assert kept_transport.closed
        assert served.refused == ["header_timeout"]

    run(test)


# -- connections per address -----------------------------------------------------------------------------


def test_connections_beyond_the_cap_per_address_are_closed_at_accept() -> None:
    async def test() -> None:
        server = Server(Served(), cap=2)
        first, _ = server.connect()
        server.connect()
        _, third = server.connect()
        assert third.closed and third.written == b""
        assert server.refused == ["conns_per_ip"]
        _, other = server.connect("10.0.0.2")
        assert not other.closed
        assert server.guard.open == {"127.0.0.1": 2, "10.0.0.2": 1}
        first.connection_lost(None)
        _, again = server.connect()
        assert not again.closed
        assert server.guard.open == {"127.0.0.1": 2, "10.0.0.2": 1}

    run(test)


def test_no_cap_counts_nothing() -> None:
    async def test() -> None:
        server = Server(Served(), cap=0)
        transports = [server.connect()[1] for _ in range(50)]
        assert not any(t.closed for t in transports)
        assert server.guard.open == {}

    run(test)


def test_an_upgraded_websocket_keeps_its_slot_until_it_closes() -> None:
    async def test() -> None:
        app = Served()
        server = Server(app, cap=1)
        protocol, transport = server.connect()
        protocol.data_received(WS_HANDSHAKE)
        await turns(10)
        ws = transport.get_protocol()
        assert isinstance(ws, TickwireWSProtocol)
        assert b"101 Switching Protocols" in transport.written
        assert server.guard.open == {"127.0.0.1": 1}
        _, refused = server.connect()
        assert refused.closed
        protocol.connection_lost(None)  # not called by a real transport after the switch: harmless
        assert server.guard.open == {"127.0.0.1": 1}
        ws.connection_lost(None)
        assert server.guard.open == {}
        await turns(10)

    run(test)


# -- the uvicorn it builds on -------------------------------------------------------------------------------


def test_this_uvicorn_has_what_the_protocol_needs() -> None:
    for name in REQUIRED:
        assert callable(getattr(HttpToolsProtocol, name, None)), name


def test_a_uvicorn_without_it_gets_its_own_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(HttpToolsProtocol, "on_message_begin")
    guard = ConnectionGuard(max_head_bytes=HEAD, head_timeout_s=1, max_conns_per_ip=0)
    assert uvicorn_http.uvicorn_http_protocol(guard) == "httptools"
