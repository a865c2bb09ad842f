"""The replay fixture server (`tickwire serve --replay`), and recordings (re-exported from
recording.py, where their format is described).

The replay server is a deterministic fixture for users' own tests: it serves a recording
with the same endpoints, framing and ids as tickwire (SSE `GET {prefix}/{stream}`, poll
`GET {prefix}/{stream}/events`, WebSocket `{prefix}/ws`), so a client under test behaves as
against the real thing, but every run sees the same events:

- a new connection gets `connected` (SSE) and every recorded event of the stream, in order;
- a resume (`Last-Event-ID`, `?lastEventId=`, `after=`, `lastEventId` in a WebSocket
  `subscribe`) gets the events after that id; an id not in the recording gets
  `stream:reset` (`recovered: false`, reason `unknown_position`) and everything;
- `?symbols=` filters `price:update` by symbol; authentication is not checked;
- then the connection stays open with keepalives (`TICKWIRE_KEEPALIVE_S`).

It is built from the server's own wire pieces: SSE frames from `SSECodec` (wire/sse.py),
poll bodies from `poll_body` (wire/poll.py), WebSocket commands parsed by `parse_command`
and answered with the message builders of wire/ws.py in the codecs of wire/codecs.py.
What it refuses, it refuses as the server does: an HTTP error body
`{"error","message","statusCode"}` (bad `limit` or `wait`, an unsupported subprotocol) or a
WebSocket `error` message with a code (undecodable frames, invalid commands).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tickwire.client.events import CONNECTED, RESET
from tickwire.client.recording import Recorded, Recording, read_recording, write_event
from tickwire.codes import BAD_REQUEST
from tickwire.config import Settings
from tickwire.core.event import iso_timestamp
from tickwire.errors import DecodeError, ProtocolError, Refused
from tickwire.server.http import error_body
from tickwire.wire.codecs import WSCodec, choose_codec
from tickwire.wire.poll import poll_body, poll_limit, poll_wait
from tickwire.wire.sse import KEEPALIVE, SSECodec
from tickwire.wire.ws import (
    PROTOCOL_VERSION,
    Auth,
    Command,
    Ping,
    Subscribe,
    Unsubscribe,
    authenticated,
    error,
    error_message,
    event_message,
    parse_command,
    pong,
    subscribed,
    unsubscribed,
)

__all__ = [
    "RETRY_MS",
    "Recorded",
    "Recording",
    "ReplayServer",
    "create_replay_app",
    "read_recording",
    "write_event",
]

RETRY_MS = 5000
UNKNOWN_POSITION = "unknown_position"
# The poll parameters' bounds (SPEC section 7): a node's defaults, as `Settings` declares
# them; the environment is not read, so a fixture answers as a node configured by default.
_SETTINGS = Settings.model_fields
POLL_DEFAULT_LIMIT: int = _SETTINGS["poll_default_limit"].default
POLL_MAX_LIMIT: int = _SETTINGS["poll_max_limit"].default
POLL_MAX_WAIT_S: float = _SETTINGS["poll_max_wait_s"].default
USER_ID = "replay"  # who every `auth` is answered as

_CORS = {"Access-Control-Allow-Origin": "*"}
_SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no", **_CORS}
_HTTP_RESPONSE_EXTENSION = "websocket.http.response"
_POLICY_VIOLATION = 1008


def create_replay_app(
    path: str | Path, *, prefix: str = "/api/stream", keepalive_s: float = 30.0, retry_ms: int = RETRY_MS
) -> Starlette:
    """The ASGI app serving the recording at `path`."""
    server = ReplayServer(Recording.load(path), str(path), keepalive_s=keepalive_s, retry_ms=retry_ms)
    return server.app(prefix)


class ReplayServer:
    """The endpoints of a replay, one method each, over one recording."""

    def __init__(self, recording: Recording, source: str, *, keepalive_s: float, retry_ms: int) -> None:
        self.recording = recording
        self.source = source
        self.keepalive_s = keepalive_s
        self.sse_codec = SSECodec(retry_ms)
        self._client_numbers = itertools.count(1)

    def app(self, prefix: str = "/api/stream") -> Starlette:
        prefix = "/" + prefix.strip("/")
        return Starlette(
            routes=[
                Route("/healthz", self.health),
                Route("/readyz", self.health),
                WebSocketRoute(prefix + "/ws", self.ws),
                Route(prefix + "/{stream:path}/events", self.poll),
                Route(prefix + "/{stream:path}", self.sse),
            ]
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "replay": self.source, "streams": sorted(self.recording.streams)}
        )

    async def sse(self, request: Request) -> Response:
        stream = request.path_params["stream"].strip("/")
        if stream == "ws":
            message = "This endpoint speaks WebSocket: connect with a WebSocket client (Upgrade: websocket)"
            return _error_response(400, message)
        after = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or None
        events, found = self.recording.replay(stream, after, _symbols(request.query_params))
        client_id = f"replay-{stream.replace('/', '.')}-{next(self._client_numbers)}"
        body = self._sse_body(stream, client_id, events, found)
        return StreamingResponse(body, media_type="text/event-stream", headers=_SSE_HEADERS)

    async def _sse_body(
        self, stream: str, client_id: str, events: list[Recorded], found: bool
    ) -> AsyncIterator[bytes]:
        codec = self.sse_codec
        connected = {
            "clientId": client_id,
            "stream": stream.replace("/", "."),
            "v": PROTOCOL_VERSION,
            "timestamp": _now(),
        }
        yield codec.control_frame(CONNECTED, connected, stream)
        if not found:
            yield codec.control_frame(RESET, _reset_data(), stream)
        for event in events:
            yield codec.frame(event.event, orjson.dumps(event.data), event.id)
        while True:
            await asyncio.sleep(self.keepalive_s)
            yield KEEPALIVE

    async def poll(self, request: Request) -> Response:
        stream = request.path_params["stream"].strip("/")
        params = request.query_params
        try:
            limit = poll_limit(params.get("limit"), POLL_DEFAULT_LIMIT, POLL_MAX_LIMIT)
            wait = poll_wait(params.get("wait"), POLL_MAX_WAIT_S)
        except Refused as exc:
            return _error_response(exc.status, exc.message)
        after = params.get("after") or None
        events, found = self.recording.replay(stream, after, _symbols(params))
        events = events[:limit]
        if not events and found and wait > 0:
            await asyncio.sleep(wait)  # nothing will come: the recording is all there is
        body = poll_body(events, after, recovered=found, reason=None if found else UNKNOWN_POSITION)
        return Response(orjson.dumps(body), media_type="application/json", headers=_CORS)

    async def ws(self, websocket: WebSocket) -> None:
        offered = [str(p) for p in websocket.scope.get("subprotocols") or []]
        codec = choose_codec(offered)
        if codec is None:
            await _deny(websocket, 400, "Unsupported subprotocol: offer tickwire.json or tickwire.msgpack")
            return
        await websocket.accept(subprotocol=codec.subprotocol if offered else None)
        with contextlib.suppress(WebSocketDisconnect):
            await ReplaySocket(self.recording, websocket, codec).run()


class ReplaySocket:
    """One WebSocket connection to a replay: commands in, recorded events out."""

    def __init__(self, recording: Recording, websocket: WebSocket, codec: WSCodec) -> None:
        self.recording = recording
        self.websocket = websocket
        self.codec = codec

    async def run(self) -> None:
        while True:
            received = await self.websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
            await self._on_message(received.get("text"), received.get("bytes"))

    async def _on_message(self, text: str | None, data: bytes | None) -> None:
        frame: str | bytes | None = text if text is not None else data
        if frame is None:
            return
        if (text is None) != self.codec.binary:
            kind = "binary" if self.codec.binary else "text"
            await self._send(error(BAD_REQUEST, f"{self.codec.subprotocol} takes {kind} frames"))
            return
        try:
            command = parse_command(self.codec.decode(frame))
        except DecodeError as exc:
            await self._send(error(BAD_REQUEST, str(exc)[:200]))
            return
        except ProtocolError as exc:
            await self._send(error_message(exc))
            return
        await self._run(command)

    async def _run(self, command: Command) -> None:
        if isinstance(command, Ping):
            await self._send(pong(command.ts, command.rid))
        elif isinstance(command, Subscribe):
            await self._subscribe(command)
        elif isinstance(command, Unsubscribe):
            await self._send(unsubscribed(command.rid, command.streams))
        elif isinstance(command, Auth):
            await self._send(authenticated(USER_ID, command.rid))

    async def _subscribe(self, command: Subscribe) -> None:
        results: list[tuple[str, bool]] = []
        for request in command.streams:
            name = request.stream
            events, found = self.recording.replay(name, request.last_event_id, request.symbols)
            if not found:
                await self._send_frame(self.codec.control_frame(RESET, _reset_data(), name))
            for event in events:
                await self._send(_event_message(name, event))
            results.append((name, found))
        await self._send(subscribed(command.rid, results))

    async def _send(self, message: Mapping[str, Any]) -> None:
        await self._send_frame(self.codec.encode(message))

    async def _send_frame(self, frame: bytes) -> None:
        if self.codec.binary:
            await self.websocket.send_bytes(frame)
        else:
            await self.websocket.send_text(frame.decode())


def _event_message(stream: str, event: Recorded) -> dict[str, Any]:
    """A recorded event as the server's codecs frame it (wire/codecs.py): an urgent event
    (`"urgent": true` in its data) says so in the envelope too, ahead of `data`."""
    message = event_message(stream, event.event, event.id, event.data)
    if isinstance(event.data, dict) and event.data.get("urgent") is True:
        message["urgent"] = True
        message["data"] = message.pop("data")
    return message


def _now() -> str:
    return iso_timestamp(int(time.time() * 1000))


def _reset_data() -> dict[str, Any]:
    return {"recovered": False, "reason": UNKNOWN_POSITION, "timestamp": _now()}


def _symbols(params: Mapping[str, str]) -> list[str] | None:
    raw = params.get("symbols")
    return [s for s in raw.split(",") if s] if raw else None


def _error_response(status: int, message: str) -> Response:
    """The server's HTTP error shape (server/http.py `error_body`)."""
    return Response(error_body(status, message), status, media_type="application/json", headers=_CORS)


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse a handshake as the server does: an HTTP error response where the ASGI server
    can send one, else a 1008 close with the message."""
    if _HTTP_RESPONSE_EXTENSION in (websocket.scope.get("extensions") or {}):
        await websocket.send_denial_response(_error_response(status, message))
    else:
        await websocket.close(_POLICY_VIOLATION, message[:123])
