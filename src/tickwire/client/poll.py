"""The poll transport: long-polling `GET {prefix}/{stream}/events` (SPEC section 7).

One loop per stream: ask for the events after the last id it got, holding the request up to
`poll_wait_s`; an answer with `recovered: false` becomes a `stream:reset` followed by the
fresh events it carries. `fetch_events` is also how the client repairs gaps.

A stream whose log is still empty has a snapshot without an id, so there is nothing to poll
"after" and the server answers at once with the same snapshot: the loop then waits
`IDLE_S` between polls and passes an id-less snapshot on only when it changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from tickwire.client.errors import TransportError
from tickwire.client.events import CONNECTED, RESET, StreamSpec, WireEvent
from tickwire.client.transports import Endpoint, InboxSession, add_streams

IDLE_S = 1.0


@dataclass(frozen=True, slots=True)
class PollAnswer:
    events: list[WireEvent]
    last_event_id: str | None
    recovered: bool
    reason: str | None


async def fetch_events(
    endpoint: Endpoint, spec: StreamSpec, after: str | None, *, limit: int, wait: float = 0.0
) -> PollAnswer:
    """One request to the events endpoint of `spec`."""
    params = {**spec.params(), "limit": str(limit)}
    if after is not None:
        params["after"] = after
    if wait > 0:
        params["wait"] = f"{wait:g}"
    config = endpoint.config
    try:
        response = await endpoint.http.get(
            endpoint.url(f"{spec.name}/events"),
            params=params,
            headers=endpoint.headers(),
            timeout=httpx.Timeout(config.connect_timeout_s, read=wait + config.connect_timeout_s),
        )
    except (httpx.HTTPError, OSError) as exc:
        raise TransportError(f"poll {spec.name}: {exc!r}") from None
    if response.status_code != 200:
        raise endpoint.failure(f"poll {spec.name}", response.status_code, response.content, response.headers)
    try:
        body = orjson.loads(response.content)
        events = [
            WireEvent(spec.name, str(item["event"]), item.get("id"), item.get("data"))
            for item in body["events"]
        ]
        return PollAnswer(
            events, body.get("lastEventId"), bool(body.get("recovered", True)), body.get("reason")
        )
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise TransportError(f"poll {spec.name}: unexpected answer: {exc!r}") from None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _without_timestamp(events: list[WireEvent]) -> list[tuple[str, Any]]:
    out = []
    for event in events:
        data = event.data
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "timestamp"}
        out.append((event.type, data))
    return out


class PollTransport:
    name = "poll"
    streaming = False

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def open(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> PollSession:
        session = PollSession(self.endpoint)
        await add_streams(session, wanted, last_ids)
        return session


class PollSession(InboxSession):
    transport = "poll"

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint.config.inbox_capacity)
        self.endpoint = endpoint
        self._loops: dict[str, asyncio.Task[None]] = {}

    async def add(self, spec: StreamSpec, after: str | None) -> None:
        config = self.endpoint.config
        answer = await fetch_events(self.endpoint, spec, after, limit=config.poll_limit)
        self.touch()
        self.streams[spec.name] = spec
        await self.push(WireEvent(spec.name, CONNECTED, None, {"stream": spec.name, "transport": "poll"}))
        self._loops[spec.name] = self.spawn(self._loop(spec, after, answer), f"tickwire-poll-{spec.name}")

    async def _loop(self, spec: StreamSpec, after: str | None, answer: PollAnswer) -> None:
        config = self.endpoint.config
        idle: list[tuple[str, Any]] | None = None
        while True:
            if not answer.recovered:
                data = {"recovered": False, "reason": answer.reason or "unknown", "timestamp": _now()}
                await self.push(WireEvent(spec.name, RESET, None, data))
                after = None  # the old id cannot be resumed from
            if answer.last_event_id is None and after is None:
                # Nothing to poll after yet: pass the id-less snapshot on when it changes.
                shape = _without_timestamp(answer.events)
                if shape != idle:
                    idle = shape
                    for event in answer.events:
                        await self.push(event)
                await asyncio.sleep(IDLE_S)
            else:
                for event in answer.events:
                    await self.push(event)
                after = answer.last_event_id or after
            answer = await fetch_events(
                self.endpoint, spec, after, limit=config.poll_limit, wait=config.poll_wait_s if after else 0
            )
            self.touch()

    async def update(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> None:
        for name in [n for n in self.streams if n not in wanted or wanted[n] != self.streams[n]]:
            old = self.streams.pop(name)
            task = self._loops.pop(name, None)
            if task is not None:
                task.cancel()
                await asyncio.wait({task})
            new = wanted.get(name)
            if new is not None and not (new.symbols is not None and not new.symbols):
                adds = new.symbols is None or (old.symbols is not None and not new.symbols <= old.symbols)
                await self.add(new, None if adds else last_ids.get(name))
        for name, spec in wanted.items():
            if name not in self.streams and not (spec.symbols is not None and not spec.symbols):
                await self.add(spec, last_ids.get(name))
