"""The SSE transport: streaming GETs, the user's own streams on one `/me` response.

A session is a set of links, one HTTP response each (composite.py plans them): every
stream of the user's own log on `GET {prefix}/me?streams=...` (so a user with many streams
stays under the server's per-user connection cap), every other stream on its own response.
A server that refuses `/me` (an older one: 404 / 400) gets one response per stream from
then on. Resume is `Last-Event-ID` per response. The server's `retry:` hint is not used: the
client's backoff decides. When any response breaks the session fails and the client
reconnects every stream from its last id (simple, and the server replays exactly what each
missed). Events of a resumed response that were published before it opened (their id's
time is before the `connected` event's) are marked `replayed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson

from tickwire.client.composite import NAME as ME
from tickwire.client.composite import Splitter, composite_params, is_public, plan, resume_point
from tickwire.client.errors import StreamRefused, TransportError
from tickwire.client.events import CONNECTED, StreamSpec, WireEvent
from tickwire.client.transports import Endpoint, InboxSession, check_version

_MAX_ERROR_BODY = 4096


class SSEFrames:
    """Incremental SSE parser (WHATWG rules for what tickwire sends: LF, CRLF or CR line
    ends, `data` lines joined with LF, comments ignored, dispatch at a blank line):
    `feed(bytes)` returns the completed events as `(type, data bytes, id, seq)`; `seq` is
    tickwire's own field (a log event's sequence number, gaps.py), None when absent."""

    def __init__(self) -> None:
        self._buf = b""
        self._type = b""
        self._data: list[bytes] = []
        self._id: bytes | None = None
        self._seq: int | None = None

    def feed(self, chunk: bytes) -> list[tuple[str, bytes, str | None, int | None]]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            keep_cr = buf.endswith(b"\r")  # maybe the first half of a CRLF
            if keep_cr:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buf += b"\r"
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 1 :]
        out: list[tuple[str, bytes, str | None, int | None]] = []
        for line in buf[:end].split(b"\n"):
            if not line:
                if self._data:
                    data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                    event_id = self._id.decode("utf-8", "replace") if self._id is not None else None
                    type_ = self._type.decode("utf-8", "replace") or "message"
                    out.append((type_, data, event_id, self._seq))
                self._type, self._data, self._id, self._seq = b"", [], None, None
                continue
            if line[0] == 58:  # ":" a comment (keepalive)
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._type = value
            elif name == b"id":
                self._id = value
            elif name == b"seq" and value.isdigit():
                self._seq = int(value)
        return out


def _ms(timestamp: Any) -> int | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except ValueError:
        return None


class SSETransport:
    name = "sse"
    streaming = True

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.use_me = endpoint.config.use_me  # False once a server refused `/me`

    async def open(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> SSESession:
        session = SSESession(self)
        try:
            await session.update(wanted, last_ids)
        except BaseException:
            await session.close()
            raise
        return session


@dataclass(eq=False)
class Link:
    """One HTTP response and the streams it carries."""

    key: str  # "me" or the stream's name
    parts: dict[str, StreamSpec]
    task: asyncio.Task[None] | None = None


class SSESession(InboxSession):
    transport = "sse"

    def __init__(self, owner: SSETransport) -> None:
        super().__init__(owner.endpoint.config.inbox_capacity)
        self.owner = owner
        self.endpoint = owner.endpoint
        self.links: dict[str, Link] = {}

    async def update(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> None:
        """Open, reopen or close responses so that they carry `wanted`."""
        target = plan(wanted, self.owner.use_me)
        for key, link in list(self.links.items()):
            if target.get(key) != link.parts:
                del self.links[key]
                await self._stop(link)
        if ME in target and ME not in self.links:
            try:
                await self._open(ME, target[ME], resume_point(list(target[ME].values()), last_ids))
            except StreamRefused as exc:
                if exc.status not in (400, 403, 404):
                    raise
                self.owner.use_me = False  # an older server, or a part refused: one response each
                await self.update(wanted, last_ids)
                return
        opening = [key for key in target if key not in self.links]
        await asyncio.gather(
            *(self._open(k, target[k], self._resume(target[k][k], last_ids)) for k in opening)
        )
        self.streams = {n: s for parts in target.values() for n, s in parts.items()}

    def _resume(self, spec: StreamSpec, last_ids: Mapping[str, str | None]) -> str | None:
        """Where a stream's own response resumes. A stream whose symbols grew starts fresh
        (new symbols need their current price: a resume replays only ticks after its id)."""
        before = self.streams.get(spec.name)
        if before is not None and before != spec:
            adds = spec.symbols is None or (before.symbols is not None and not spec.symbols <= before.symbols)
            if adds:
                return None
        return last_ids.get(spec.name)

    async def _open(self, key: str, parts: dict[str, StreamSpec], last_id: str | None) -> None:
        if key == ME:
            specs = list(parts.values())
            params, splitter, stream = composite_params(specs), Splitter(specs), ME
        else:
            spec = parts[key]
            params, splitter, stream = spec.params(), None, spec.name
        response = await self._connect(stream, params, last_id)
        self.touch()
        link = Link(key, parts)
        self.links[key] = link
        reader = self._read(stream, key, splitter, response, last_id is not None)
        link.task = self.spawn(reader, f"tickwire-sse-{key}")

    async def _stop(self, link: Link) -> None:
        if link.task is not None:
            link.task.cancel()
            await asyncio.wait({link.task})

    async def _connect(self, stream: str, params: dict[str, str], last_id: str | None) -> httpx.Response:
        config = self.endpoint.config
        headers = {
            **self.endpoint.headers(anonymous=is_public(stream)),
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
        }
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        if not config.gzip:
            headers["Accept-Encoding"] = "identity"
        http = self.endpoint.http
        request = http.build_request(
            "GET",
            self.endpoint.url(stream),
            params=params,
            headers=headers,
            timeout=httpx.Timeout(config.connect_timeout_s, read=None),
        )
        try:
            async with asyncio.timeout(config.connect_timeout_s):
                response = await http.send(request, stream=True)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            raise TransportError(f"sse {stream}: cannot connect: {exc!r}") from None
        if response.status_code != 200:
            body = await self._error_body(response)
            raise self.endpoint.failure(f"sse {stream}", response.status_code, body, response.headers)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            await response.aclose()
            raise TransportError(f"sse {stream}: not an event stream: {response.headers.get('content-type')}")
        return response

    async def _error_body(self, response: httpx.Response) -> bytes:
        body = b""
        try:
            async with asyncio.timeout(self.endpoint.config.connect_timeout_s):
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_ERROR_BODY:
                        break
        except (httpx.HTTPError, OSError, TimeoutError):
            pass
        finally:
            await response.aclose()
        return body

    async def _read(
        self, stream: str, key: str, splitter: Splitter | None, response: httpx.Response, resumed: bool
    ) -> None:
        frames = SSEFrames()
        replay_until: int | None = None  # events stamped before `connected` were replayed
        replaying = resumed
        loads = orjson.loads
        try:
            async for chunk in response.aiter_bytes():
                self.touch()
                batch: list[WireEvent] = []
                for type_, raw, event_id, seq in frames.feed(chunk):
                    try:
                        data = loads(raw)
                    except orjson.JSONDecodeError:
                        data = raw.decode("utf-8", "replace")
                    if type_ == CONNECTED:
                        check_version(data, f"sse {stream}")
                        replay_until = _ms(data.get("timestamp")) if isinstance(data, dict) else None
                    replayed = False
                    if replaying and event_id is not None and replay_until is not None:
                        replayed = event_id[:13].isdigit() and int(event_id[:13]) < replay_until
                        replaying = replayed
                    event = WireEvent(key, type_, event_id, data, False, replayed, seq)
                    if splitter is None:
                        batch.append(event)
                    else:
                        batch.extend(splitter.split(event))
                if batch:
                    await self.push_many(batch)
        except (httpx.HTTPError, OSError) as exc:
            raise TransportError(f"sse {stream}: stream broke: {exc!r}") from None
        finally:
            await response.aclose()
        raise TransportError(f"sse {stream}: the server ended the stream")
