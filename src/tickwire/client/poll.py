"""The poll transport: long-polling `GET {prefix}/{stream}/events` (SPEC section 7).

One loop per link (sse.py's `plan`: the user's own streams share one loop on
`me/events?streams=...`, composite.py): ask for the events after the last id it got,
holding the request up to `poll_wait_s`; an answer with `recovered: false` becomes a
`stream:reset` followed by the fresh events it carries. The first answer of a resumed loop
is its replay (`replayed`). `fetch_events` is also how the client repairs gaps, catches up a
consumer that fell behind, and answers `Client.history`.

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

from tickwire.client.composite import NAME as ME
from tickwire.client.composite import Splitter, composite_params, is_public, plan, resume_point
from tickwire.client.errors import StreamRefused, TransportError
from tickwire.client.events import CONNECTED, RESET, StreamSpec, WireEvent, seq_of
from tickwire.client.transports import Endpoint, InboxSession

IDLE_S = 1.0


@dataclass(frozen=True, slots=True)
class PollAnswer:
    events: list[WireEvent]
    last_event_id: str | None
    recovered: bool
    reason: str | None


async def fetch_events(
    endpoint: Endpoint,
    spec: StreamSpec,
    after: str | None,
    *,
    limit: int,
    wait: float = 0.0,
    params: Mapping[str, str] | None = None,
) -> PollAnswer:
    """One request to the events endpoint of `spec` (`params`: instead of the spec's)."""
    params = {**(spec.params() if params is None else params), "limit": str(limit)}
    if after is not None:
        params["after"] = after
    if wait > 0:
        params["wait"] = f"{wait:g}"
    config = endpoint.config
    try:
        response = await endpoint.http.get(
            endpoint.url(f"{spec.name}/events"),
            params=params,
            headers=endpoint.headers(anonymous=is_public(spec.name)),
            timeout=httpx.Timeout(config.connect_timeout_s, read=wait + config.connect_timeout_s),
        )
    except (httpx.HTTPError, OSError) as exc:
        raise TransportError(f"poll {spec.name}: {exc!r}") from None
    if response.status_code != 200:
        raise endpoint.failure(f"poll {spec.name}", response.status_code, response.content, response.headers)
    try:
        body = orjson.loads(response.content)
        events = [
            WireEvent(
                spec.name, str(item["event"]), item.get("id"), item.get("data"), seq=seq_of(item.get("seq"))
            )
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
        self.use_me = endpoint.config.use_me  # False once a server refused `/me`

    async def open(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> PollSession:
        session = PollSession(self)
        try:
            await session.update(wanted, last_ids)
        except BaseException:
            await session.close()
            raise
        return session


class PollSession(InboxSession):
    transport = "poll"

    def __init__(self, owner: PollTransport) -> None:
        super().__init__(owner.endpoint.config.inbox_capacity)
        self.owner = owner
        self.endpoint = owner.endpoint
        self._loops: dict[str, tuple[dict[str, StreamSpec], asyncio.Task[None]]] = {}

    async def update(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> None:
        target = plan(wanted, self.owner.use_me)
        for key, (parts, task) in list(self._loops.items()):
            if target.get(key) != parts:
                del self._loops[key]
                task.cancel()
                await asyncio.wait({task})
        if ME in target and ME not in self._loops:
            try:
                await self._add(ME, target[ME], resume_point(list(target[ME].values()), last_ids))
            except StreamRefused as exc:
                if exc.status not in (400, 403, 404):
                    raise
                self.owner.use_me = False
                await self.update(wanted, last_ids)
                return
        opening = [k for k in target if k not in self._loops]
        await asyncio.gather(
            *(self._add(k, target[k], self._resume(target[k][k], last_ids)) for k in opening)
        )
        self.streams = {n: s for parts in target.values() for n, s in parts.items()}

    def _resume(self, spec: StreamSpec, last_ids: Mapping[str, str | None]) -> str | None:
        """As sse.py's: a stream whose symbols grew starts fresh."""
        before = self.streams.get(spec.name)
        grew = spec.symbols is None or (
            before is not None and before.symbols is not None and not spec.symbols <= before.symbols
        )
        if before is not None and before != spec and grew:
            return None
        return last_ids.get(spec.name)

    async def _add(self, key: str, parts: dict[str, StreamSpec], after: str | None) -> None:
        specs = list(parts.values())
        if key == ME:
            link = Poller(self, StreamSpec(ME), composite_params(specs), Splitter(specs), key)
        else:
            link = Poller(self, specs[0], None, None, key)
        answer = await link.fetch(after, wait=0.0)
        self.touch()
        await self.push_many(
            link.split(WireEvent(key, CONNECTED, None, {"stream": key, "transport": "poll"}))
        )
        self._loops[key] = (parts, self.spawn(link.run(after, answer), f"tickwire-poll-{key}"))


class Poller:
    """One poll loop: a stream, or the user's own streams on `me/events`."""

    def __init__(
        self,
        session: PollSession,
        spec: StreamSpec,
        params: Mapping[str, str] | None,
        splitter: Splitter | None,
        key: str,
    ) -> None:
        self.session = session
        self.spec = spec
        self.params = params
        self.splitter = splitter
        self.key = key

    async def fetch(self, after: str | None, wait: float) -> PollAnswer:
        config = self.session.endpoint.config
        return await fetch_events(
            self.session.endpoint, self.spec, after, limit=config.poll_limit, wait=wait, params=self.params
        )

    def split(self, event: WireEvent) -> list[WireEvent]:
        return self.splitter.split(event) if self.splitter is not None else [event]

    async def emit(self, events: list[WireEvent], replayed: bool) -> None:
        out: list[WireEvent] = []
        for event in events:
            event.stream = self.key
            event.replayed = replayed
            out.extend(self.split(event))
        if out:
            await self.session.push_many(out)

    async def run(self, after: str | None, answer: PollAnswer) -> None:
        config = self.session.endpoint.config
        idle: list[tuple[str, Any]] | None = None
        replayed = after is not None
        while True:
            if not answer.recovered:
                data = {"recovered": False, "reason": answer.reason or "unknown", "timestamp": _now()}
                await self.emit([WireEvent(self.key, RESET, None, data)], False)
                after = None  # the old id cannot be resumed from
                replayed = False
            if answer.last_event_id is None and after is None:
                # Nothing to poll after yet: pass the id-less snapshot on when it changes.
                shape = _without_timestamp(answer.events)
                if shape != idle:
                    idle = shape
                    await self.emit(answer.events, False)
                await asyncio.sleep(IDLE_S)
            else:
                await self.emit(answer.events, replayed)
                after = answer.last_event_id or after
            replayed = False
            answer = await self.fetch(after, config.poll_wait_s if after else 0)
            self.session.touch()
