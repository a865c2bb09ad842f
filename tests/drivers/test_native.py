"""The native SSE driver (drivers/native.py) under the uvicorn HTTP protocol `tickwire serve`
runs, on a real loopback socket: what reaches the client, flow control, abort, a gone peer.
The end-to-end suites (tests/server/test_e2e_sse.py and others) run over both drivers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop
from uvicorn.config import Config
from uvicorn.server import ServerState

from tickwire.drivers.native import NativeStreamDriver, native_stream
from tickwire.drivers.uvicorn_http import ConnectionGuard, uvicorn_http_protocol
from tickwire.errors import PeerGone
from tickwire.wire.sse import chunk

Body = Callable[[NativeStreamDriver], Awaitable[None]]
GET = b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n"

# Every test on asyncio's own loop and on uvloop (what `tickwire serve` runs).
pytestmark = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


class StreamApp:
    """Answers with a streamed response written by `body` through the native driver (or
    records that there was none)."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.drivers: list[NativeStreamDriver | None] = []
        self.done = asyncio.Event()
        self.error: BaseException | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        driver = native_stream(scope, receive, "peer")
        self.drivers.append(driver)
        try:
            if driver is None:
                await send({"type": "http.response.start", "status": 204, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            await driver.start(200, [(b"content-type", b"text/event-stream")])
            await self.body(driver)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.done.set()


async def serve(app: StreamApp, *, native: bool = True) -> tuple[asyncio.Server, int]:
    guard = ConnectionGuard(max_head_bytes=8192, head_timeout_s=5, max_conns_per_ip=0)
    cls = uvicorn_http_protocol(guard, native=native)
    assert isinstance(cls, type)
    config = Config(app, http=cls, lifespan="off")
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: cls(config=config, server_state=state, app_state={}),  # type: ignore[call-arg]
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    return server, port


@contextlib.asynccontextmanager
async def streamed(
    body: Body, raw: bytes = GET, *, native: bool = True
) -> AsyncIterator[tuple[StreamApp, asyncio.StreamReader, asyncio.StreamWriter]]:
    """A server answering with `body`, and a client connection that sent `raw` to it."""
    app = StreamApp(body)
    server, port = await serve(app, native=native)
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        try:
            yield app, reader, writer
        finally:
            writer.close()


async def read_body(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The head and the de-chunked body of one chunked response."""
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            return head, body
        body += data[:-2]


def run(main: Callable[[], Awaitable[None]], loop: str) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(10):
            await main()

    if loop == "uvloop":
        uvloop.run(bounded())
    else:
        asyncio.run(bounded())


def test_frames_are_chunked_once_or_passed_as_chunks_and_the_response_ends_reusable(loop: str) -> None:
    async def body(driver: NativeStreamDriver) -> None:
        assert driver.chunked and driver.writable
        assert driver.write(b"event: a\n\n")  # framed by the driver
        driver.prechunked = True
        assert driver.write(chunk(b"event: b\n\n") + chunk(b"event: c\n\n"))  # chunks as they are
        await driver.close()

    async def main() -> None:
        async with streamed(body) as (app, reader, writer):
            head, received = await read_body(reader)
            assert head.startswith(b"HTTP/1.1 200")
            assert received == b"event: a\n\nevent: b\n\nevent: c\n\n"
            writer.write(GET)  # the connection stays usable: the response ended properly
            _, again = await read_body(reader)
            assert again == received
        assert app.error is None

    run(main, loop)


def test_only_a_native_protocol_and_a_get_get_the_native_driver(loop: str) -> None:
    async def body(driver: NativeStreamDriver) -> None:
        await driver.close()

    async def main() -> None:
        for native, raw, expected in (
            (True, GET, True),
            (False, GET, False),
            (True, b"HEAD /s HTTP/1.1\r\nHost: x\r\n\r\n", False),
        ):
            async with streamed(body, raw, native=native) as (app, reader, _):
                await reader.readuntil(b"\r\n\r\n")
                await app.done.wait()
            assert [d is not None for d in app.drivers] == [expected], (native, raw)

    run(main, loop)


def test_a_full_socket_turns_the_driver_unwritable_until_the_client_reads(loop: str) -> None:
    data = b"x" * 65536
    states: list[tuple[bool, bool]] = []
    full = asyncio.Event()

    async def body(driver: NativeStreamDriver) -> None:
        written = 0
        while driver.write(data):  # the client does not read: the transport's buffer fills
            written += 1
            assert written < 1000, "the driver never turned unwritable"
        states.append((driver.writable, True))
        full.set()
        await driver.drain()  # returns once the client read enough
        states.append((driver.writable, driver.write(b"end")))
        await driver.close()

    async def main() -> None:
        async with streamed(body) as (app, reader, _):
            await full.wait()
            assert states == [(False, True)]
            _, received = await read_body(reader)
            assert received.endswith(b"xend")
            assert states[1] == (True, True)
        assert app.error is None

    run(main, loop)


def test_abort_drops_what_the_transport_holds_and_ends_the_connection(loop: str) -> None:
    written: list[int] = []

    async def body(driver: NativeStreamDriver) -> None:
        data = b"x" * 65536
        count = 1
        while driver.write(data):
            count += 1
        written.append(count * (len(data) + 8))  # 8: the chunk's size line and CRLF
        driver.abort()
        assert driver.writable

    async def main() -> None:
        app = StreamApp(body)
        server, port = await serve(app)
        async with server:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
            sock.connect(("127.0.0.1", port))
            sock.sendall(GET)
            await app.done.wait()
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            received = 0
            while data := await loop.sock_recv(sock, 65536):  # the end of the connection
                received += len(data)
            sock.close()
        assert app.error is None
        assert 0 < received < written[0]  # what was still in the transport's buffer is gone

    run(main, loop)


def test_a_gone_client_is_peer_gone_on_write_and_drain(loop: str) -> None:
    gone = asyncio.Event()
    errors: list[str] = []

    async def body(driver: NativeStreamDriver) -> None:
        await gone.wait()
        while driver.writable:  # the loss may take a turn to be seen
            try:
                driver.write(b"late")
            except PeerGone:
                errors.append("write")
                break
            await asyncio.sleep(0.01)
        with pytest.raises(PeerGone):
            await driver.drain()
        errors.append("drain")

    async def main() -> None:
        async with streamed(body) as (app, reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.close()
            await writer.wait_closed()
            gone.set()
            await app.done.wait()
        assert errors == ["write", "drain"]

    run(main, loop)
