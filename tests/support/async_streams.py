"""Many SSE responses and WebSockets in one asyncio process, for end-to-end tests that open
hundreds of them (shutdown, handover between nodes).

An `SSEStream` reads one response with httpx and the tickwire SSE parser and says how it
ended: `"clean"` (the server ended the chunked body) or `"broken"` (the connection dropped
mid-body). A `WSStream` reads one WebSocket (tickwire.json) and keeps its close code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tickwire.wire.sse import SSEEvent, SSEParser

PREFIX = "/api/stream"


def many_connections_http(n: int) -> httpx.AsyncClient:
    """An httpx client able to hold `n` responses open at once."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=n, max_keepalive_connections=0),
        timeout=httpx.Timeout(20.0, read=None),
    )


class SSEStream:
    """One SSE response, read to its end."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, path: str, token: str | None = None) -> None:
        self.http = http
        self.url = base_url + PREFIX + "/" + path
        self.token = token
        self.events: list[SSEEvent] = []
        self.ended: str | None = None  # "clean" | "broken"
        self._response: httpx.Response | None = None
        self._parser = SSEParser()
        self._chunks: AsyncIterator[bytes] | None = None

    async def open(self, last_event_id: str | None = None) -> SSEStream:
        """Connect and read up to the `connected` event."""
        headers = {"Accept": "text/event-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        request = self.http.build_request("GET", self.url, headers=headers)
        self._response = response = await self.http.send(request, stream=True)
        assert response.status_code == 200, (response.status_code, await response.aread())
        self.ended = None
        self._parser = SSEParser()
        self._chunks = response.aiter_bytes()
        while not any(e.event == "connected" for e in self.events):
            await self._read_chunk()
        return self

    async def _read_chunk(self) -> bool:
        assert self._chunks is not None
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            self.ended = "clean"
            return False
        except httpx.HTTPError:  # RemoteProtocolError: incomplete chunked read
            self.ended = "broken"
            return False
        self.events.extend(self._parser.feed(chunk))
        return True

    async def read_until(self, done: Callable[[list[SSEEvent]], bool]) -> None:
        """Read until `done(events)`; AssertionError if the response ends first."""
        while not done(self.events):
            assert await self._read_chunk(), f"the response ended ({self.ended}) first"

    async def read_to_end(self) -> str:
        """Read until the server ends the response; how it ended."""
        while await self._read_chunk():
            pass
        assert self._response is not None
        await self._response.aclose()
        assert self.ended is not None
        return self.ended

    def last_id(self) -> str | None:
        return next((e.id for e in reversed(self.events) if e.id is not None), None)

    async def close(self) -> None:
        if self._response is not None:
            await self._response.aclose()

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [orjson.loads(e.data) for e in self.events if e.event == type_]


class WSStream:
    """One WebSocket (tickwire.json): its messages and how it was closed."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.url = base_url.replace("http://", "ws://") + PREFIX + "/ws"
        self.token = token
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.conn: ClientConnection | None = None

    async def open(self, streams: list[dict[str, Any]], base_url: str | None = None) -> WSStream:
        """Connect (to `base_url` when given: another node), subscribe to `streams` (entries of
        a `subscribe`) and wait for `subscribed`."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if base_url is not None:
            self.url = base_url.replace("http://", "ws://") + PREFIX + "/ws"
        self.close_code = None
        subscribed = sum(1 for m in self.messages if m.get("type") == "subscribed")
        self.conn = await connect(
            self.url,
            subprotocols=[Subprotocol("tickwire.json")],
            additional_headers=headers,
            compression=None,
            ping_interval=None,
            open_timeout=20,
            close_timeout=5,
            proxy=None,
        )
        await self.conn.send(orjson.dumps({"type": "subscribe", "rid": "s", "streams": streams}).decode())
        while sum(1 for m in self.messages if m.get("type") == "subscribed") == subscribed:
            message = await self._receive()
            assert message is not None, f"closed before `subscribed`: {self.close_code}"
        return self

    async def _receive(self) -> dict[str, Any] | None:
        assert self.conn is not None
        try:
            raw = await self.conn.recv()
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else None
            return None
        message: dict[str, Any] = orjson.loads(raw)
        self.messages.append(message)
        return message

    async def until(self, done: Callable[[list[dict[str, Any]]], bool]) -> None:
        """Read until `done(messages)`; AssertionError if the socket closes first."""
        while not done(self.messages):
            assert await self._receive() is not None, f"closed ({self.close_code}) first"

    async def read_to_close(self) -> int | None:
        """Read until the server closes the socket; its close code (None: no close frame)."""
        while await self._receive() is not None:
            pass
        return self.close_code

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "event" and m.get("event") == type_]

    def last_id(self, stream: str) -> str | None:
        return next(
            (m["id"] for m in reversed(self.messages) if m.get("stream") == stream and m.get("id")), None
        )
