"""Recordings and the replay fixture server (`tickwire record`, `tickwire serve --replay`).

A recording is JSON Lines, one delivered event per line, as `ClientEvent.to_json()` writes
it: `{"stream": "orders", "event": "order:update", "id": "...", "data": {...}}`. Control
events (`connected`, `stream:reset`, ...) are not recorded.

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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tickwire.client.events import CONTROL_TYPES, ClientEvent
from tickwire.wire.codecs import CODECS, JSON_CODEC

RETRY_MS = 5000


@dataclass(frozen=True, slots=True)
class Recorded:
    stream: str
    event: str
    id: str | None
    data: Any


def write_event(out: IO[bytes], event: ClientEvent) -> bool:
    """Append one event to a recording; False (and nothing written) for control events."""
    if event.is_control or not event.stream:
        return False
    out.write(orjson.dumps(event.to_json()) + b"\n")
    return True


def read_recording(path: str | Path) -> list[Recorded]:
    out = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
                recorded = Recorded(
                    str(item["stream"]).strip("/"), str(item["event"]), item.get("id"), item.get("data")
                )
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a recorded event: {exc}") from None
            if recorded.event not in CONTROL_TYPES:
                out.append(recorded)
    return out


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Recording:
    """A recording indexed by stream."""

    streams: dict[str, list[Recorded]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        recording = cls()
        for item in read_recording(path):
            recording.streams.setdefault(item.stream, []).append(item)
        return recording

    def replay(
        self, stream: str, after: str | None, symbols: Iterable[str] | None = None
    ) -> tuple[list[Recorded], bool]:
        """The events a reader of `stream` gets after `after`, and whether the id was found."""
        events = self.streams.get(stream.strip("/"), [])
        if symbols is not None:
            wanted = set(symbols)
            events = [e for e in events if not _is_tick(e) or e.data.get("symbol") in wanted]
        if after is None:
            return events, True
        for index, event in enumerate(events):
            if event.id == after:
                return events[index + 1 :], True
        return events, False


def _is_tick(event: Recorded) -> bool:
    return event.event == "price:update" and isinstance(event.data, dict) and "symbol" in event.data


def _sse(event: str, data: Any, event_id: str | None) -> bytes:
    frame = b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n"
    if event_id is not None:
        frame += b"id: " + event_id.encode() + b"\nretry: %d\n" % RETRY_MS
    return frame + b"\n"


def _reset_data() -> dict[str, Any]:
    return {"recovered": False, "reason": "unknown_position", "timestamp": _now()}


def _symbols(params: Mapping[str, str]) -> list[str] | None:
    raw = params.get("symbols")
    return [s for s in raw.split(",") if s] if raw else None


def create_replay_app(
    path: str | Path, *, prefix: str = "/api/stream", keepalive_s: float = 30.0
) -> Starlette:
    """The ASGI app serving the recording at `path`."""
    recording = Recording.load(path)
    prefix = "/" + prefix.strip("/")
    counter = iter(range(1, 1 << 62))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "replay": str(path), "streams": sorted(recording.streams)})

    async def sse(request: Request) -> Response:
        stream = request.path_params["stream"].strip("/")
        after = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or None
        events, found = recording.replay(stream, after, _symbols(request.query_params))
        client_id = f"replay-{stream.replace('/', '.')}-{next(counter)}"

        async def body() -> AsyncIterator[bytes]:
            yield _sse(
                "connected",
                {"clientId": client_id, "stream": stream.replace("/", "."), "timestamp": _now()},
                None,
            )
            if not found:
                yield _sse("stream:reset", _reset_data(), None)
            for event in events:
                yield _sse(event.event, event.data, event.id)
            while True:
                await asyncio.sleep(keepalive_s)
                yield b": keepalive\n\n"

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Access-Control-Allow-Origin": "*"}
        return StreamingResponse(body(), media_type="text/event-stream", headers=headers)

    async def poll(request: Request) -> Response:
        stream = request.path_params["stream"].strip("/")
        after = request.query_params.get("after") or None
        limit = int(request.query_params.get("limit") or 100)
        events, found = recording.replay(stream, after, _symbols(request.query_params))
        events = events[:limit]
        if not events and found:
            wait = min(float(request.query_params.get("wait") or 0), 30.0)
            if wait > 0:
                await asyncio.sleep(wait)  # nothing will come: the recording is all there is
        body: dict[str, Any] = {
            "events": [{"event": e.event, "id": e.id, "data": e.data} for e in events],
            "lastEventId": next(
                (e.id for e in reversed(events) if e.id is not None), after if found else None
            ),
            "recovered": found,
        }
        if not found:
            body["reason"] = "unknown_position"
        return JSONResponse(body)

    async def ws(websocket: WebSocket) -> None:
        offered = list(websocket.scope.get("subprotocols") or [])
        codec = next((CODECS[p] for p in offered if p in CODECS), JSON_CODEC)
        await websocket.accept(subprotocol=codec.subprotocol if offered else None)

        async def send(message: dict[str, Any]) -> None:
            frame = codec.encode(message)
            if codec.binary:
                await websocket.send_bytes(frame)
            else:
                await websocket.send_text(frame.decode())

        with contextlib.suppress(WebSocketDisconnect):
            while True:
                raw = await websocket.receive()
                if raw["type"] == "websocket.disconnect":
                    return
                frame = raw.get("bytes") if codec.binary else raw.get("text")
                if frame is None:
                    continue
                try:
                    command = codec.decode(frame)
                except ValueError:
                    await send({"type": "error", "code": "bad_request", "message": "undecodable message"})
                    continue
                await _ws_command(command, recording, send)

    async def _ws_command(command: Any, recording: Recording, send: Any) -> None:
        if not isinstance(command, dict):
            return
        kind = command.get("type")
        rid = command.get("rid")
        if kind == "ping":
            await send({"type": "pong", "ts": command.get("ts"), **({"rid": rid} if rid is not None else {})})
        elif kind == "auth":
            await send(
                {"type": "authenticated", "userId": "replay", **({"rid": rid} if rid is not None else {})}
            )
        elif kind == "unsubscribe":
            await send({"type": "unsubscribed", "rid": rid, "streams": command.get("streams") or []})
        elif kind == "subscribe":
            results = []
            for entry in command.get("streams") or []:
                name = str(entry.get("stream", "")).strip("/")
                events, found = recording.replay(name, entry.get("lastEventId"), entry.get("symbols"))
                if not found:
                    await send(
                        {"type": "event", "stream": name, "event": "stream:reset", "data": _reset_data()}
                    )
                for event in events:
                    message: dict[str, Any] = {"type": "event", "stream": name, "event": event.event}
                    if event.id is not None:
                        message["id"] = event.id
                    message["data"] = event.data
                    await send(message)
                results.append({"stream": name, "recovered": found})
            await send({"type": "subscribed", "rid": rid, "streams": results})

    return Starlette(
        routes=[
            Route("/healthz", health),
            Route("/readyz", health),
            WebSocketRoute(prefix + "/ws", ws),
            Route(prefix + "/{stream:path}/events", poll),
            Route(prefix + "/{stream:path}", sse),
        ]
    )
