"""The uvicorn WebSocket protocol `tickwire serve` runs (drivers/uvicorn_ws.py), against a
fake transport: client bytes in (made by the sans-I/O `websockets` client), server bytes
out (parsed by the same client). Nothing else of uvicorn runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from support.waiting import until
from tickwire.drivers import uvicorn_ws
from tickwire.drivers.asgi import ASGIWebSocketDriver
from tickwire.drivers.uvicorn_ws import (
    FRAMES_EXTENSION,
    NATIVE_FRAMES,
    PING,
    PING_EXTENSION,
    PONG,
    RAW_FRAME,
    REQUIRED,
    TickwireWSProtocol,
    uvicorn_ws_protocol,
)
from tickwire.wire.codecs import ws_frame

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes; `paused` makes it look like a full socket."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.writes = 0
        self.closed = False
        self.aborted = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: Any) -> None:
        self.written += data
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class Harness:
    """One protocol instance, one sans-I/O client, one fake transport."""

    def __init__(self, app: App, *, deflate: bool = False, native: bool = False) -> None:
        cls = uvicorn_ws_protocol(native=native)
        assert isinstance(cls, type) and issubclass(cls, TickwireWSProtocol)
        config = Config(app, ws=cls, ws_per_message_deflate=deflate, lifespan="off")
        config.load()
        self.protocol = cls(config=config, server_state=ServerState(), app_state={})
        self.transport = FakeTransport()
        self.protocol.connection_made(self.transport)
        self.client = ClientProtocol(parse_uri("ws://127.0.0.1:8080/ws"))
        self.seen = 0
        self.frames: list[Frame] = []

    def to_server(self) -> None:
        data = b"".join(self.client.data_to_send())
        if data:
            self.protocol.data_received(data)

    def from_server(self) -> list[Frame]:
        """The frames the server wrote since the last call."""
        out = bytes(self.transport.written[self.seen :])
        self.seen = len(self.transport.written)
        self.client.receive_data(out)
        frames, self.frames = (
            self.frames + [e for e in self.client.events_received() if isinstance(e, Frame)],
            [],
        )
        return frames

    async def handshake(self) -> None:
        self.client.send_request(self.client.connect())
        self.to_server()
        await settle()
        self.frames = self.from_server()  # the response, and what the app sent right after it
        assert self.client.handshake_exc is None


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def test_everything_the_subclass_builds_on_is_there() -> None:
    assert uvicorn_ws_protocol() is TickwireWSProtocol
    assert all(callable(getattr(TickwireWSProtocol, name)) for name in REQUIRED)


def test_extensions_are_announced_and_raw_frames_written_as_they_are() -> None:
    async def body() -> None:
        seen: dict[str, Any] = {}

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen["extensions"] = dict(scope["extensions"])
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": RAW_FRAME, "frames": [ws_frame(b'{"a":1}', binary=False)]})
            await send(
                {
                    "type": RAW_FRAME,
                    "frames": [ws_frame(b"\x81\x01", binary=True), ws_frame(b"2", binary=False)],
                }
            )

        h = Harness(app)
        await h.handshake()
        await settle()
        assert PING_EXTENSION in seen["extensions"] and FRAMES_EXTENSION in seen["extensions"]
        frames = h.from_server()
        assert [(f.opcode, f.data) for f in frames] == [
            (Opcode.TEXT, b'{"a":1}'),
            (Opcode.BINARY, b"\x81\x01"),
            (Opcode.TEXT, b"2"),
        ]
        assert h.transport.writes == 3  # the handshake, then one write per send

    run(body)


def test_raw_frames_are_reencoded_when_deflate_was_negotiated() -> None:
    async def body() -> None:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": RAW_FRAME, "frames": [ws_frame(b"x" * 200, binary=False)] * 2})

        h = Harness(app, deflate=True)
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

        h.client = ClientProtocol(
            parse_uri("ws://127.0.0.1:8080/ws"), extensions=[ClientPerMessageDeflateFactory()]
        )
        await h.handshake()
        await settle()
        frames = h.from_server()
        assert [f.data for f in frames] == [b"x" * 200] * 2  # the client inflated them: compressed
        assert len(h.transport.written) < 200 + 150  # handshake + two compressed frames

    run(body)


def test_app_pings_come_back_as_pong_messages_with_their_payload() -> None:
    async def body() -> None:
        received: list[dict[str, Any]] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": PING, "bytes": b"1767350400000"})
            received.append(await receive())

        h = Harness(app)
        await h.handshake()
        await settle()
        (ping,) = h.from_server()
        assert (ping.opcode, ping.data) == (Opcode.PING, b"1767350400000")
        h.to_server()  # the client answered the ping with a pong
        await settle()
        assert received == [{"type": PONG, "bytes": b"1767350400000"}]

    run(body)


def test_a_close_to_a_peer_that_does_not_read_is_queued_and_the_transport_aborted_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(uvicorn_ws, "CLOSE_TIMEOUT_S", 0.01)

    async def body() -> None:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            h.protocol.pause_writing()  # the socket is full
            await send({"type": "websocket.close", "code": 4008, "reason": "slow consumer"})
            assert await receive() == {
                "type": "websocket.disconnect",
                "code": 4008,
                "reason": "slow consumer",
            }

        h = Harness(app)
        await h.handshake()
        await settle()
        (close,) = h.from_server()
        assert close.opcode is Opcode.CLOSE and close.data[:2] == (4008).to_bytes(2, "big")
        assert h.protocol.close_timer is not None and not h.transport.aborted
        await until(lambda: bool(h.transport.aborted), 5)  # the peer never reads it: the transport is aborted

    run(body)


def test_shutdown_closes_with_going_away() -> None:
    async def body() -> None:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            assert (await receive())["code"] == 1001

        h = Harness(app)
        await h.handshake()
        await settle()
        h.protocol.shutdown()
        await settle()
        (close,) = h.from_server()
        assert close.opcode is Opcode.CLOSE and close.data[:2] == (1001).to_bytes(2, "big")
        assert h.transport.closed

    run(body)


def test_native_frames_go_straight_to_the_transport_in_order_with_what_had_to_wait() -> None:
    async def body() -> None:
        drivers: list[ASGIWebSocketDriver] = []
        done = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            driver = ASGIWebSocketDriver(scope, send, receive, "peer", binary=False)
            drivers.append(driver)
            await done.wait()

        h = Harness(app, native=True)
        await h.handshake()
        await settle()
        [driver] = drivers
        frame = [ws_frame(b"%d" % n, binary=False) for n in range(4)]
        writes = h.transport.writes
        assert driver.write_frames(frame[:2])  # one write, no task switch
        assert h.transport.writes == writes + 1
        h.protocol.pause_writing()  # the socket is full: frames wait for `send`, in order
        assert not driver.write_frames(frame[2:3]) and not driver.writable
        assert not driver.write_frames(frame[3:])
        assert h.transport.writes == writes + 1
        draining = asyncio.ensure_future(driver.drain())
        await settle()
        assert not draining.done()
        h.protocol.resume_writing()
        await draining
        assert driver.writable
        assert [f.data for f in h.from_server()] == [b"0", b"1", b"2", b"3"]
        done.set()
        await settle()

    run(body)


def test_without_native_frames_go_through_send() -> None:
    async def body() -> None:
        seen: list[bool] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            seen.append(NATIVE_FRAMES in scope)

        h = Harness(app)
        await h.handshake()
        await settle()
        assert seen == [False]

    run(body)
