"""A closed connection is freed by reference counting alone: `tickwire serve` freezes
long-lived objects out of the collector's sight (server/gcpolicy.py), so whatever a closed
connection leaves in a reference cycle stays until the next full collection, minutes later.

The app runs in-process under uvicorn, configured as `tickwire serve` runs it, on uvloop,
with real sockets; the collector is off while connections open and close, so any object
left in a cycle is still there when they are counted."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

import pytest
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.server import ServerProtocol

from support.servers import SECRET
from support.waiting import until
from tickwire.cli import uvicorn_config
from tickwire.config import DRIVERS, load_settings
from tickwire.core.connection import Connection
from tickwire.drivers.uvicorn_http import TickwireHTTPProtocol
from tickwire.drivers.uvicorn_ws import TickwireWSProtocol
from tickwire.server.app import create_app
from tickwire.server.auth import issue_token
from tickwire.server.ws.session import WSSession

pytestmark = pytest.mark.parametrize("driver", DRIVERS)

# What one connection is made of, on the server's side.
CONNECTION_TYPES = (
    TickwireHTTPProtocol,
    RequestResponseCycle,
    TickwireWSProtocol,
    ServerProtocol,
    WSSession,
    Connection,
)


def connection_objects() -> list[object]:
    """Objects of a connection alive now, found without a collection."""
    return [o for o in gc.get_objects() if issubclass(type(o), CONNECTION_TYPES)]


@pytest.fixture(autouse=True)
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def serve(driver: str, clients: Callable[[int, str], Awaitable[None]]) -> Counter[str]:
    """Run `clients(port, token)` against the app; what is left of the connections then."""

    async def main() -> Counter[str]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        settings = load_settings(
            env={
                "TICKWIRE_SECRET": SECRET,
                "TICKWIRE_DRIVER": driver,
                "TICKWIRE_CONNECT_RATE": "0",
                "TICKWIRE_MAX_CONNS_PER_USER": "100",
                "TICKWIRE_LOG_LEVEL": "warning",
            }
        )
        server = uvicorn.Server(uvicorn_config(create_app(settings), settings))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await until(lambda: server.started or serving.done())
            before = connection_objects()  # held here, so that no new object takes an id of theirs
            await clients(port, issue_token(SECRET, "cycles"))
            state = server.server_state
            await until(lambda: not state.connections and not state.tasks)
            known = {id(o) for o in before}
            return Counter(type(o).__name__ for o in connection_objects() if id(o) not in known)
        finally:
            server.should_exit = True
            await serving
            sock.close()

    return uvloop.run(main())


def test_closed_websockets_leave_no_object_behind(driver: str) -> None:
    async def clients(port: int, token: str) -> None:
        url = f"ws://127.0.0.1:{port}/api/stream/ws"
        auth = {"Authorization": f"Bearer {token}"}

        async def one(i: int) -> None:
            ws: ClientConnection = await connect(url + "?streams=alerts", additional_headers=auth)
            await ws.send('{"type":"subscribe","rid":"r","streams":[{"stream":"prices","symbols":["AAPL"]}]}')
            await ws.recv()
            if i % 2:
                ws.transport.abort()  # no close handshake: a reset
            else:
                await ws.close()

        await asyncio.gather(*(one(i) for i in range(10)))
        refused = await connect(url, additional_headers={"Authorization": "Bearer not-a-token"})
        await refused.wait_closed()  # closed by the server (4001)
        assert refused.close_code == 4001
        with pytest.raises(InvalidStatus):  # refused at the handshake (400)
            await connect(url, subprotocols=["unknown"])  # type: ignore[list-item]

    assert serve(driver, clients) == Counter()


def test_closed_sse_streams_leave_no_object_behind(driver: str) -> None:
    async def clients(port: int, token: str) -> None:
        async def one(i: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"GET /api/stream/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
            )
            head = b""
            while b"event: connected" not in head:
                chunk = await reader.read(4096)
                assert chunk, head
                head += chunk
            if i % 2:
                writer.transport.abort()
            else:
                writer.close()

        await asyncio.gather(*(one(i) for i in range(10)))

    assert serve(driver, clients) == Counter()
