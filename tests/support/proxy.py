"""A fault-injecting TCP proxy for end-to-end tests of clients (asyncio, in the test's loop).

    async with FaultProxy(server.port) as proxy:
        client = Client(proxy.url, ...)
        proxy.cut_all()                       # abort every connection now
        proxy.cut_all(mid_event=True)         # forward part of the next chunk, then abort
        proxy.refuse(lambda line: "/events" not in line)   # refuse matching requests
        await proxy.stop_listening()          # connection refused (nothing listens)
        await proxy.resume_listening()
        proxy.delay = 0.05                    # latency before each server->client chunk
        proxy.stall(); proxy.unstall()        # hold server->client bytes (a silent socket)

It reads HTTP request heads going to the server (so `refuse` sees every request, also on
kept-alive connections) and, after a WebSocket upgrade, decodes the client's frames into
`ws_messages` (text frames as parsed JSON) when the client did not offer compression.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from typing import Any


class _Conn:
    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.cut_mid = False
        self.upgraded = False
        self.deflate = False

    def abort(self) -> None:
        for writer in (self.client, self.server):
            if writer is not None:
                writer.transport.abort()


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", seed: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.delay = 0.0
        self.requests: list[str] = []
        self.ws_messages: list[Any] = []
        self.accepted = 0
        self.refused = 0
        self.cuts = 0
        self._refuse: Callable[[str], bool] | None = None
        self._conns: set[_Conn] = set()
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._random = random.Random(seed)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        await self.resume_listening()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- control -------------------------------------------------------------------

    async def resume_listening(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop_listening(self) -> None:
        """Close the listening socket: new connections are refused by the OS."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def refuse(self, predicate: Callable[[str], bool] | None) -> None:
        """Close, without an answer, connections whose request line matches (None = none)."""
        self._refuse = predicate

    def cut_all(self, *, mid_event: bool = False) -> int:
        """Abort every open connection (after a partial chunk when `mid_event`)."""
        conns = list(self._conns)
        loop = asyncio.get_running_loop()
        for conn in conns:
            if mid_event:
                conn.cut_mid = True
                loop.call_later(0.2, conn.abort)  # a quiet connection is cut anyway
            else:
                conn.abort()
        self.cuts += len(conns)
        return len(conns)

    def stall(self) -> None:
        self._flowing.clear()

    def unstall(self) -> None:
        self._flowing.set()

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    async def stop(self) -> None:
        await self.stop_listening()
        for conn in list(self._conns):
            conn.abort()
        tasks = list(self._tasks)
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for task in stuck:
                task.cancel()

    # -- plumbing ------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = _Conn(writer)
        self._conns.add(conn)
        self.accepted += 1
        try:
            try:
                up_reader, conn.server = await asyncio.open_connection(*self.target)
            except OSError:
                conn.abort()
                return
            pumps = [
                asyncio.create_task(self._client_to_server(conn, reader)),
                asyncio.create_task(self._server_to_client(conn, up_reader)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                for pump in pumps:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pump
                conn.abort()
        finally:
            self._conns.discard(conn)
            if task is not None:
                self._tasks.discard(task)

    async def _client_to_server(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        assert conn.server is not None
        buf = b""
        body_left = 0
        frames = _FrameReader(self.ws_messages)
        while True:
            data = await reader.read(65536)
            if not data:
                return
            if conn.upgraded:
                if not conn.deflate:
                    frames.feed(data)
                conn.server.write(data)
                await conn.server.drain()
                continue
            buf += data
            out = b""
            while buf:
                if body_left:
                    take = buf[:body_left]
                    body_left -= len(take)
                    out += take
                    buf = buf[len(take) :]
                    continue
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head, buf = buf[: end + 4], buf[end + 4 :]
                text = head.decode("latin-1")
                line = text.split("\r\n", 1)[0]
                self.requests.append(line)
                if self._refuse is not None and self._refuse(line):
                    self.refused += 1
                    conn.abort()
                    return
                lower = text.lower()
                for header in lower.split("\r\n")[1:]:
                    name, _, value = header.partition(":")
                    if name.strip() == "content-length":
                        body_left = int(value.strip() or 0)
                out += head
                if "upgrade: websocket" in lower:
                    conn.upgraded = True
                    conn.deflate = "permessage-deflate" in lower
                    if buf and not conn.deflate:
                        frames.feed(buf)
                    out += buf
                    buf = b""
            if out:
                conn.server.write(out)
                await conn.server.drain()

    async def _server_to_client(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            await self._flowing.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if conn.cut_mid:
                keep = self._random.randint(1, max(1, len(data) - 1))
                conn.client.write(data[:keep])
                with contextlib.suppress(ConnectionError):
                    await conn.client.drain()
                conn.abort()
                return
            conn.client.write(data)
            await conn.client.drain()


class _FrameReader:
    """Decodes client-to-server WebSocket frames (masked) into text messages."""

    def __init__(self, out: list[Any]) -> None:
        self.out = out
        self.buf = b""
        self.parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            buf = self.buf
            if len(buf) < 2:
                return
            fin, opcode = buf[0] & 0x80, buf[0] & 0x0F
            masked, length = buf[1] & 0x80, buf[1] & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, pos = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, pos = int.from_bytes(buf[2:10], "big"), 10
            mask = b""
            if masked:
                if len(buf) < pos + 4:
                    return
                mask, pos = buf[pos : pos + 4], pos + 4
            if len(buf) < pos + length:
                return
            payload = buf[pos : pos + length]
            self.buf = buf[pos + length :]
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode in (0x1, 0x0):
                self.parts.append(payload)
                if fin:
                    text = b"".join(self.parts)
                    self.parts = []
                    with contextlib.suppress(ValueError):
                        self.out.append(json.loads(text))
