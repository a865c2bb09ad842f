"""The SSE transport: one streaming GET per stream, parsed by the server's own `SSEParser`.

Resume is `Last-Event-ID` per stream. The server's `retry:` hint is not used: the client's
backoff decides. A session is one response per wanted stream; when any of them breaks the
session fails and the client reconnects every stream from its last id (simple, and the
server replays exactly what each missed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from tickwire.client.errors import TransportError
from tickwire.client.events import StreamSpec, WireEvent
from tickwire.client.transports import Endpoint, InboxSession, add_streams, decode_data
from tickwire.wire.sse import SSEParser

_MAX_ERROR_BODY = 4096


class SSETransport:
    name = "sse"
    streaming = True

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def open(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> SSESession:
        session = SSESession(self.endpoint)
        await add_streams(session, wanted, last_ids)
        return session


class SSESession(InboxSession):
    transport = "sse"

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint.config.inbox_capacity)
        self.endpoint = endpoint
        self._readers: dict[str, asyncio.Task[None]] = {}

    async def add(self, spec: StreamSpec, last_id: str | None) -> None:
        response = await self._connect(spec, last_id)
        self.touch()
        self.streams[spec.name] = spec
        self._readers[spec.name] = self.spawn(self._read(spec, response), f"tickwire-sse-{spec.name}")

    async def remove(self, name: str) -> None:
        self.streams.pop(name, None)
        task = self._readers.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def update(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> None:
        for name in [n for n in self.streams if n not in wanted or wanted[n] != self.streams[n]]:
            old = self.streams[name]
            await self.remove(name)
            if name in wanted:
                new = wanted[name]
                adds = new.symbols is None or (old.symbols is not None and not new.symbols <= old.symbols)
                await self.add(new, None if adds else last_ids.get(name))
        for name, spec in wanted.items():
            if name not in self.streams and not (spec.symbols is not None and not spec.symbols):
                await self.add(spec, last_ids.get(name))

    async def _connect(self, spec: StreamSpec, last_id: str | None) -> httpx.Response:
        config = self.endpoint.config
        headers = {**self.endpoint.headers(), "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        if not config.gzip:
            headers["Accept-Encoding"] = "identity"
        http = self.endpoint.http
        request = http.build_request(
            "GET",
            self.endpoint.url(spec.name),
            params=spec.params(),
            headers=headers,
            timeout=httpx.Timeout(config.connect_timeout_s, read=None),
        )
        try:
            async with asyncio.timeout(config.connect_timeout_s):
                response = await http.send(request, stream=True)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            raise TransportError(f"sse {spec.name}: cannot connect: {exc!r}") from None
        if response.status_code != 200:
            try:
                body = b""
                async with asyncio.timeout(config.connect_timeout_s):
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > _MAX_ERROR_BODY:
                            break
            except (httpx.HTTPError, OSError, TimeoutError):
                pass
            finally:
                await response.aclose()
            raise self.endpoint.failure(f"sse {spec.name}", response.status_code, body, response.headers)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            await response.aclose()
            raise TransportError(
                f"sse {spec.name}: not an event stream: {response.headers.get('content-type')}"
            )
        return response

    async def _read(self, spec: StreamSpec, response: httpx.Response) -> None:
        parser = SSEParser()
        try:
            async for chunk in response.aiter_bytes():
                self.touch()
                for event in parser.feed(chunk):
                    await self.push(WireEvent(spec.name, event.event, event.id, decode_data(event.data)))
        except (httpx.HTTPError, OSError) as exc:
            raise TransportError(f"sse {spec.name}: stream broke: {exc!r}") from None
        finally:
            await response.aclose()
        raise TransportError(f"sse {spec.name}: the server ended the stream")
