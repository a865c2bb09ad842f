"""The one `Transport` interface, the session base, and the factory.

A `Transport` opens `Session`s: `open(wanted, last_ids)` connects, starts every wanted
stream from its last id (None = fresh: snapshot or buffered events) and returns once the
server has accepted them all, or raises `TransportError` (retry) / `StreamRefused` (don't).
A session then yields lists of `WireEvent`s from `receive_batch()` in arrival order (each
stream's events in stream order) until it fails by raising; `update()` changes its streams;
`reauthenticate(token)` hands it a fresh token (WebSocket: in place; the others use it from
their next request); `close()` ends it. `last_activity` is the loop time of the last bytes
received, keepalives included, for stale detection.

Implementations (one module each): sse.py (HTTP responses: the user's own streams on one
`/me` response, composite.py), ws.py (every stream on one WebSocket), poll.py
(long-polling the events endpoint; also the fallback). Each session's readers push into a
bounded inbox, whole socket reads at a time, so the client handles events in batches and
a client that stops processing stops reading its sockets.

Protocol version (SPEC 6): `authenticated`, `subscribed` and SSE's `connected` carry
`"v": 1`; `check_version` accepts its absence (older servers) and refuses a major version
it does not know (`ProtocolVersionError`, which ends the client: upgrade it).

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
from tickwire.client.errors import (
    AuthExpired,
    ClientError,
    ProtocolVersionError,
    StreamRefused,
    TransportError,
)
from tickwire.client.events import StreamSpec, WireEvent

log = logging.getLogger("tickwire.client")

USER_AGENT = "tickwire-client"
# HTTP statuses that retrying cannot fix.
REFUSED_STATUSES = frozenset({400, 401, 403, 404, 405, 410})
PROTOCOL_VERSION = 1  # the major version of the protocol this client speaks (SPEC 6)


def check_version(message: Any, what: str) -> None:
    """Refuse a message announcing a major protocol version other than ours (absent: fine)."""
    if not isinstance(message, dict):
        return
    v = message.get("v")
    if v is None:
        return
    try:
        major = int(float(v))
    except (TypeError, ValueError):
        raise ProtocolVersionError(f"{what}: unreadable protocol version {v!r}") from None
    if major != PROTOCOL_VERSION:
        raise ProtocolVersionError(
            f"{what}: the server speaks protocol version {v}, this client version {PROTOCOL_VERSION}: "
            "upgrade tickwire's client"
        )


class Session(Protocol):
    transport: str
    last_activity: float
    streams: dict[str, StreamSpec]

    async def receive_batch(self) -> list[WireEvent]: ...

    async def update(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> None: ...

    async def reauthenticate(self, token: str) -> bool: ...

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

    def headers(self, anonymous: bool = False) -> dict[str, str]:
        """Request headers: the token unless `anonymous` (a public stream's own connection)."""
        if anonymous:
            return {"User-Agent": USER_AGENT}
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
    """Readers push events (or their failure) into a bounded inbox; `receive_batch()` takes
    everything that is there at once."""

    transport = "?"

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._inbox: list[WireEvent] = []
        self._failure: BaseException | None = None
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.streams: dict[str, StreamSpec] = {}
        self._loop = asyncio.get_running_loop()
        self.last_activity = self._loop.time()
        self.closed = False

    def touch(self) -> None:
        self.last_activity = self._loop.time()

    async def push(self, event: WireEvent) -> None:
        await self.push_many([event])

    def offer(self, event: WireEvent) -> bool:
        """Add one event without waiting; False when the inbox is over its bound."""
        if len(self._inbox) >= self.capacity:
            return False
        self._inbox.append(event)
        self._readable.set()
        return True

    async def push_many(self, events: list[WireEvent]) -> None:
        """Add what one read produced; waits while the inbox is over its bound."""
        while len(self._inbox) >= self.capacity:
            self._room.clear()
            await self._room.wait()
        self._inbox.extend(events)
        self._readable.set()

    def fail(self, error: BaseException) -> None:
        """The session is over: `receive_batch` raises `error` after what is pending."""
        if self._failure is None:
            self._failure = error
        self._readable.set()

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
            self.fail(exc)
        except Exception as exc:  # a bug in a reader ends the session, not the client
            log.exception("session reader failed")
            self.fail(TransportError(f"{self.transport} reader failed: {exc!r}"))

    async def receive_batch(self) -> list[WireEvent]:
        while not self._inbox:
            if self._failure is not None:
                raise self._failure
            self._readable.clear()
            await self._readable.wait()
        batch, self._inbox = self._inbox, []
        self._room.set()
        return batch

    async def reauthenticate(self, token: str) -> bool:
        """Take a fresh token; False: this transport cannot renew an open connection (its
        next request carries the token anyway)."""
        return False

    async def close(self) -> None:
        self.closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # asyncio.wait, not `await task`: a cancellation of the caller must go through
            await asyncio.wait(tasks)


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
