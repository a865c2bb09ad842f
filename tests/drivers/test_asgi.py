"""The ASGI driver (drivers/asgi.py) against fake ASGI servers: messages in, messages out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tickwire.codes import SLOW_CONSUMER
from tickwire.drivers.asgi import (
    RAW_SEND,
    ASGIStreamDriver,
    ASGIWebSocketDriver,
    EagerSend,
    close_text,
    deny_websocket,
    raw_send,
)
from tickwire.drivers.base import PeerGone, Received
from tickwire.drivers.uvicorn_ws import FRAMES_EXTENSION, PING, PING_EXTENSION, PONG, RAW_FRAME

Message = dict[str, Any]


class FakeServer:
    """An ASGI server's `send`: completes at once unless the socket is `full`, like
    uvicorn's flow control; `gone` makes it raise like a disconnected client."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.gone = False
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()

    @property
    def full(self) -> bool:
        return not self.writable.is_set()

    @full.setter
    def full(self, value: bool) -> None:
        if value:
            self.writable.clear()
        else:
            self.writable.set()

    async def send(self, message: Message) -> None:
        if self.full:
            await self.writable.wait()
        if self.gone:
            raise OSError("client disconnected")
        self.sent.append(message)

    async def receive(self) -> Message:
        return await self.incoming.get()


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def bodies(server: FakeServer) -> list[bytes]:
    return [m["body"] for m in server.sent if m["type"] == "http.response.body"]


def test_a_send_that_need_not_wait_completes_in_the_caller() -> None:
    async def body() -> None:
        server = FakeServer()
        sender = EagerSend(server.send)
        sender.send_now({"type": "x", "n": 1})
        assert server.sent == [{"type": "x", "n": 1}] and sender.writable

    run(body)


def test_a_send_that_must_wait_is_parked_and_later_ones_queue_behind_it_in_order() -> None:
    async def body() -> None:
        server = FakeServer()
        sender = EagerSend(server.send)
        server.full = True
        sender.send_now({"n": 1})
        sender.send_now({"n": 2})
        assert server.sent == [] and not sender.writable
        drained = asyncio.create_task(sender.drain())
        await asyncio.sleep(0)
        assert not drained.done()
        server.full = False
        await drained
        assert [m["n"] for m in server.sent] == [1, 2] and sender.writable

    run(body)


def test_a_gone_peer_is_peer_gone_now_or_when_draining() -> None:
    async def body() -> None:
        server = FakeServer()
        sender = EagerSend(server.send)
        server.gone = True
        with pytest.raises(PeerGone):
            sender.send_now({"n": 1})
        server.gone, server.full = False, True
        sender.send_now({"n": 2})
        server.gone = True
        server.full = False
        with pytest.raises(PeerGone):
            await sender.drain()

    run(body)


def test_abort_forgets_what_waits() -> None:
    async def body() -> None:
        server = FakeServer()
        sender = EagerSend(server.send)
        server.full = True
        sender.send_now({"n": 1})
        sender.send_now({"n": 2})
        sender.abort()
        assert sender.writable
        server.full = False
        await sender.drain()
        sender.send_now({"n": 3})
        assert [m["n"] for m in server.sent] == [3]

    run(body)


def test_stream_driver_writes_body_chunks_and_ends_the_response() -> None:
    async def body() -> None:
        server = FakeServer()
        driver = ASGIStreamDriver(server.send, server.receive, "10.0.0.1")
        await driver.start(200, [(b"content-type", b"text/event-stream")])
        driver.write(b"event: a\n\n")
        driver.write_frames([b"b", b"c"])
        await driver.close()
        assert server.sent[0] == {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
        assert bodies(server) == [b"event: a\n\n", b"bc", b""]
        assert [m["more_body"] for m in server.sent[1:]] == [True, True, False]
        assert driver.peer == "10.0.0.1"

    run(body)


def test_stream_driver_sees_the_client_go_away() -> None:
    async def body() -> None:
        server = FakeServer()
        driver = ASGIStreamDriver(server.send, server.receive, "p")
        waiting = asyncio.create_task(driver.wait_disconnect())
        server.incoming.put_nowait({"type": "http.request", "body": b""})
        await asyncio.sleep(0)
        assert not waiting.done()
        server.incoming.put_nowait({"type": "http.disconnect"})
        await asyncio.wait_for(waiting, 1)

    run(body)


def ws_driver(
    server: FakeServer, *, binary: bool = False, extensions: dict[str, Any] | None = None
) -> ASGIWebSocketDriver:
    scope = {"type": "websocket", "extensions": extensions or {}}
    return ASGIWebSocketDriver(scope, server.send, server.receive, "p", binary=binary)


def test_websocket_frames_become_text_binary_or_raw_frame_messages() -> None:
    async def body() -> None:
        text_server, bin_server, raw_server = FakeServer(), FakeServer(), FakeServer()
        ws_driver(text_server).write_frames([b'{"a":1}'])
        ws_driver(bin_server, binary=True).write_frames([b"\x81\xa1a\x01"])
        framed = ws_driver(raw_server, extensions={FRAMES_EXTENSION: {}, PING_EXTENSION: {}})
        assert framed.framed and framed.can_ping
        framed.write_frames([b"\x81\x01x", b"\x81\x01y"])
        framed.write(b"\x81\x01z")
        assert text_server.sent == [{"type": "websocket.send", "text": '{"a":1}'}]
        assert bin_server.sent == [{"type": "websocket.send", "bytes": b"\x81\xa1a\x01"}]
        assert raw_server.sent == [  # pending frames go in one write
            {"type": RAW_FRAME, "frames": [b"\x81\x01x", b"\x81\x01y"]},
            {"type": RAW_FRAME, "frames": (b"\x81\x01z",)},
        ]

    run(body)


def test_websocket_receive_translates_messages_pongs_and_the_end() -> None:
    async def body() -> None:
        server = FakeServer()
        driver = ws_driver(server)
        for message in (
            {"type": "websocket.receive", "text": "hi"},
            {"type": "websocket.receive", "bytes": b"\x01"},
            {"type": PONG, "bytes": b"123"},
            {"type": "websocket.disconnect", "code": 1000},
        ):
            server.incoming.put_nowait(message)
        got = [await driver.receive() for _ in range(4)]
        assert got == [Received(text="hi"), Received(data=b"\x01"), Received(pong=b"123"), None]

    run(body)


def test_websocket_ping_and_close_wait_behind_what_was_written() -> None:
    async def body() -> None:
        server = FakeServer()
        driver = ws_driver(server, extensions={PING_EXTENSION: {}})
        server.full = True
        driver.write_frames([b"a"])
        assert not driver.writable
        pinging = asyncio.create_task(driver.ping(b"42"))
        await asyncio.sleep(0)
        server.full = False
        await pinging
        await driver.close(SLOW_CONSUMER, "slow consumer: " + "é" * 100)
        kinds = [m["type"] for m in server.sent]
        assert kinds == ["websocket.send", PING, "websocket.close"]
        close = server.sent[-1]
        assert close["code"] == 4008 and len(close["reason"].encode()) <= 123

    run(body)


def test_close_text_fits_a_close_frame() -> None:
    assert close_text("x" * 200) == "x" * 123
    assert len(close_text("é" * 100).encode()) <= 123


def test_refused_handshakes_answer_with_http_where_the_server_can() -> None:
    async def body() -> None:
        with_ext, without = FakeServer(), FakeServer()
        scope = {"type": "websocket", "extensions": {"websocket.http.response": {}}}
        await deny_websocket(
            scope, with_ext.send, 429, b'{"statusCode":429}', [(b"retry-after", b"7")], "slow down"
        )
        await deny_websocket({"type": "websocket"}, without.send, 429, b"{}", [], "slow down")
        start, body_msg = with_ext.sent
        assert start["status"] == 429 and (b"retry-after", b"7") in start["headers"]
        assert body_msg["body"] == b'{"statusCode":429}'
        assert without.sent == [{"type": "websocket.close", "code": 1008, "reason": "slow down"}]

    run(body)


def test_raw_send_is_the_servers_own_when_the_app_passed_it() -> None:
    async def own(message: Message) -> None: ...

    async def wrapped(message: Message) -> None: ...

    assert raw_send({RAW_SEND: own}, wrapped) is own
    assert raw_send({}, wrapped) is wrapped
