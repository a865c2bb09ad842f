"""The one `Transport` interface, the session base, and the factory.

A `Transport` opens `Session`s: `open(wanted, last_ids)` connects, starts every wanted
stream from its last id (None = fresh: snapshot or buffered events) and returns once the
server has accepted them all, or raises `TransportError` (retry) / `StreamRefused` (don't).
A session then yields `WireEvent`s from `receive()` in arrival order (each stream's events
in stream order) until it fails by raising; `update()` changes its streams; `close()` ends
it. `last_activity` is the loop time of the last bytes received, keepalives included, for
stale detection.

Implementations (one module each): sse.py (one HTTP response per stream), ws.py (every
stream on one WebSocket), poll.py (long-polling the events endpoint; also the fallback).
Each session's readers push into a bounded inbox, so a client that stops processing stops
reading its sockets (backpressure reaches the server).

Every transport makes a `connected` event per stream when the server accepted it (SSE: the
server's own; WebSocket: from `subscribed`; poll: at the first answer).

Every request carries the endpoint's current token (`Endpoint.credentials`, refreshed by the
runner before each attempt when a token provider is set); with a provider, a 401 is an
`AuthExpired` (reconnect with a fresh token) instead of a `StreamRefused`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from tickwire.client.config import ClientConfig
from tickwire.client.credentials import Credentials
from tickwire.client.errors import AuthExpired, ClientError, StreamRefused, TransportError
from tickwire.client.events import StreamSpec, WireEvent

log = logging.getLogger("tickwire.client")

USER_AGENT = "tickwire-client"
# HTTP statuses that retrying cannot fix.
REFUSED_STATUSES = frozenset({400, 401, 403, 404, 405, 410})


class Session(Protocol):
    transport: str
    last_activity: float
    streams: dict[str, StreamSpec]

    async def receive(self) -> WireEvent: ...

    async def update(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> None: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    name: str
    streaming: bool

    async def open(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> Session: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the server is and how to talk to it, shared by every transport of a client."""

    base_url: str  # http(s)://host:port
    config: ClientConfig
    http: httpx.AsyncClient
    # The token sent now, and its provider (`Credentials(config.token, config.token_provider)`).
    credentials: Credentials

    def url(self, path: str) -> str:
        return self.base_url + self.config.prefix.rstrip("/") + "/" + path.lstrip("/")

    def ws_url(self) -> str:
        base = self.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return base + self.config.prefix.rstrip("/") + "/ws"

    def headers(self) -> dict[str, str]:
        return {"User-Agent": USER_AGENT, **self.credentials.header()}

    def failure(self, what: str, status: int, body: bytes, headers: Mapping[str, str]) -> ClientError:
        """`http_failure`, knowing whether a refused token can be replaced."""
        return http_failure(what, status, body, headers, renewable=self.credentials.renewable)


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def http_failure(
    what: str, status: int, body: bytes, headers: Mapping[str, str], *, renewable: bool = False
) -> ClientError:
    """The error for an HTTP answer that is not the expected 200 (`renewable`: a token
    provider can replace a refused token, so a 401 is worth another attempt)."""
    message = body[:300].decode("utf-8", "replace")
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            message = parsed["message"]
    except orjson.JSONDecodeError:
        pass
    text = f"{what}: HTTP {status}: {message}"
    if status == 401 and renewable:
        return AuthExpired(text)
    if status in REFUSED_STATUSES:
        return StreamRefused(text, status)
    return TransportError(text, retry_after(headers))


def decode_data(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


class InboxSession:
    """Readers push events (or their failure) into a bounded inbox; `receive()` pops."""

    transport = "?"

    def __init__(self, capacity: int) -> None:
        self._inbox: asyncio.Queue[WireEvent | BaseException] = asyncio.Queue(capacity)
        self._tasks: set[asyncio.Task[None]] = set()
        self.streams: dict[str, StreamSpec] = {}
        self.last_activity = asyncio.get_running_loop().time()
        self.closed = False

    def touch(self) -> None:
        self.last_activity = asyncio.get_running_loop().time()

    async def push(self, event: WireEvent) -> None:
        await self._inbox.put(event)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guard(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except ClientError as exc:
            await self._inbox.put(exc)
        except Exception as exc:  # a bug in a reader ends the session, not the client
            log.exception("session reader failed")
            await self._inbox.put(TransportError(f"{self.transport} reader failed: {exc!r}"))

    async def receive(self) -> WireEvent:
        item = await self._inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        self.closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # asyncio.wait, not `await task`: a cancellation of the caller must go through
            await asyncio.wait(tasks)


async def add_streams(
    session: InboxSession, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]
) -> None:
    """Open every wanted stream on a per-stream session (SSE, poll); all or nothing."""
    add = session.add  # type: ignore[attr-defined]
    try:
        await asyncio.gather(*(add(spec, last_ids.get(name)) for name, spec in wanted.items()))
    except BaseException:
        await session.close()
        raise


def create_transport(name: str, endpoint: Endpoint) -> Transport:
    """The transport called `name` ("sse", "ws" or "poll")."""
    if name == "sse":
        from tickwire.client.sse import SSETransport

        return SSETransport(endpoint)
    if name == "ws":
        from tickwire.client.ws import WSTransport

        return WSTransport(endpoint)
    if name == "poll":
        from tickwire.client.poll import PollTransport

        return PollTransport(endpoint)
    raise ValueError(f"unknown transport {name!r}: expected sse, ws or poll")
