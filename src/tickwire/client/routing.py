"""What happens to each received event: control events, resets, dedup, gap repair, local
state, readiness, delivery.

`Router.handle_batch` takes what a session read (a list of `WireEvent`s) and handles each in
order. Connection-wide events go straight to the user; `connection:limit` then ends the
client (`StreamRefused`), `auth:expired` ends the session (`AuthExpired`: the runner
reconnects at once, with a fresh token, and every stream resumes from its last id).
`connected` marks the stream started (readiness.py), and for a stream resumed with no local
state yet (a client restored from a checkpoint) reads its snapshot from the events endpoint
into the local state first (`_seed_state`). A `stream:reset` resets the stream's cursor, is
told to `on_reset` and delivered. Any other event is judged by its stream's cursor (gaps.py):
a duplicate or stale value is dropped and counted; a hole in a stream's sequence numbers is
repaired off the delivery path: a task of that stream alone (`_repair_stream`) asks the
events endpoint, delivers what was missing, marked `repaired`, before the event that
revealed it (or surfaces a `stream:reset` and the fresh events when the server cannot
resume), then the stream's events that arrived meanwhile, in order; other streams, on the
same connection or not, go on. Everything accepted moves the cursor, updates the local
state (unless older than it), and goes to its consumers (delivery.py), which never make the
router wait except for ticks of a `never` stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tickwire.client.backoff import Backoff
from tickwire.client.config import ClientConfig
from tickwire.client.delivery import Delivery
from tickwire.client.errors import AuthExpired, ClientError, StreamRefused
from tickwire.client.events import (
    AUTH_EXPIRED,
    CONNECTED,
    CONNECTION_LIMIT,
    CONTROL_TYPES,
    RESET,
    ClientEvent,
    StreamSpec,
    WireEvent,
    is_snapshot,
)
from tickwire.client.gaps import Cursors, GapCheck, StreamCursor, Verdict, position_of
from tickwire.client.local_state import LocalState
from tickwire.client.metrics import ClientMetrics
from tickwire.client.poll import PollAnswer, fetch_events
from tickwire.client.readiness import Readiness, snapshot_types
from tickwire.client.subscriptions import SubscriptionManager
from tickwire.client.transports import Endpoint

log = logging.getLogger("tickwire.client")
DELIVER = Verdict.DELIVER
# Connection-wide control events: never held behind a stream's repair.
_SESSION_TYPES = frozenset({AUTH_EXPIRED, CONNECTION_LIMIT})


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _message(data: Any, default: str) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return default


class Router:
    """Routes one client's received events to its cursors, local state and consumers."""

    def __init__(
        self,
        *,
        name: str,
        config: ClientConfig,
        endpoint: Endpoint,
        cursors: Cursors,
        subs: SubscriptionManager,
        local: LocalState,
        metrics: ClientMetrics,
        delivery: Delivery,
        readiness: Readiness,
        on_reset: Callable[[ClientEvent], None],
    ) -> None:
        self.name = name
        self.config = config
        self._endpoint = endpoint
        self._cursors = cursors
        self._subs = subs
        self._local = local
        self._metrics = metrics
        self._delivery = delivery
        self._readiness = readiness
        self._on_reset = on_reset
        self._repairing: dict[str, list[WireEvent]] = {}  # stream -> its events held meanwhile
        self._repairs: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop the repairs under way (the client is closing)."""
        tasks = list(self._repairs)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def handle_batch(self, batch: list[WireEvent], transport: str) -> None:
        """Handle what one read produced, in order: the fast path inline, the rest awaited."""
        cursors = self._cursors
        repairing = self._repairing
        counts: dict[str, int] = {}
        try:
            for wire in batch:
                type_ = wire.type
                stream = wire.stream
                if repairing and stream in repairing and type_ not in _SESSION_TYPES:
                    repairing[stream].append(wire)
                    continue
                if type_ in CONTROL_TYPES or not stream:
                    await self.handle(wire, transport)
                    continue
                cursor = cursors.get(stream)
                verdict, _ = cursor.decide(type_, wire.id, wire.data, wire.seq)
                if verdict is DELIVER:
                    counts[type_] = counts.get(type_, 0) + 1
                    waiting = self._accept(wire, cursor, transport)
                    if waiting is not None:
                        await waiting
                elif verdict is Verdict.CHECK and self._repairs_gaps(transport):
                    self._start_repair(wire, transport)
                elif verdict is Verdict.CHECK:
                    await self.handle(wire, transport)
                else:
                    self._metrics.dupe(transport, type_)
        finally:
            for type_, count in counts.items():
                self._metrics.message(transport, type_, count)

    async def handle(self, wire: WireEvent, transport: str, *, check_gaps: bool = True) -> None:
        type_ = wire.type
        if type_ in CONTROL_TYPES or not wire.stream:
            await self._control(wire, transport)
            return
        cursor = self._cursors.get(wire.stream)
        verdict, check = cursor.decide(type_, wire.id, wire.data, wire.seq)
        if verdict is Verdict.CHECK and check is not None:
            if check_gaps and self._repairs_gaps(transport):
                await self._repair(wire, cursor, check, transport)
                return
            verdict = Verdict.DELIVER
        if verdict is not Verdict.DELIVER:
            self._metrics.dupe(transport, type_)
            return
        self._metrics.message(transport, type_)
        waiting = self._accept(wire, cursor, transport)
        if waiting is not None:
            await waiting

    def _repairs_gaps(self, transport: str) -> bool:
        # A poll answer is the server's own list of everything after its `after`: what it
        # skips is not in the stream, so there is nothing to ask.
        return self.config.gap_repair and transport != "poll"

    def _start_repair(self, wire: WireEvent, transport: str) -> None:
        """Repair `wire`'s stream in a task of its own; its later events wait behind it."""
        self._repairing[wire.stream] = [wire]
        task = asyncio.get_running_loop().create_task(
            self._repair_stream(wire.stream, transport), name=f"tickwire-repair-{wire.stream}"
        )
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _repair_stream(self, stream: str, transport: str) -> None:
        held = self._repairing[stream]
        try:
            while held:
                await self.handle(held.pop(0), transport)
        except Exception:  # a bug: say so; the stream's next resume replays what was held
            log.exception("client %s: repairing %s failed", self.name, stream)
        finally:
            del self._repairing[stream]

    async def _control(self, wire: WireEvent, transport: str) -> None:
        type_ = wire.type
        if type_ == AUTH_EXPIRED:
            await self._deliver(self._event(wire, transport), None)
            raise AuthExpired(f"{transport}: {_message(wire.data, 'the session token expired')}")
        if type_ == CONNECTION_LIMIT:
            await self._deliver(self._event(wire, transport), None)
            message = _message(wire.data, "too many connections for this user")
            raise StreamRefused(f"connection limit: {message}", 4029, "connection_limit")
        if type_ == RESET and wire.stream:
            await self._reset(wire, transport)
            return
        if type_ == CONNECTED and wire.stream:
            await self._connected(wire, transport)
            return
        await self._deliver(self._event(wire, transport), None)

    async def _connected(self, wire: WireEvent, transport: str) -> None:
        cursor = self._cursors.get(wire.stream)
        cursor.started = True
        fresh = cursor.resume_id is None
        if not fresh and not self._readiness.is_ready(wire.stream):
            await self._seed_state(wire.stream, cursor)
        self._readiness.connected(wire.stream, fresh)
        await self._deliver(self._event(wire, transport), cursor.resume_id)

    async def _seed_state(self, stream: str, cursor: StreamCursor) -> None:
        """A stream resumed with no local state yet (restored from a checkpoint): read its
        snapshot into the local state; replayed events older than it then skip the state."""
        kinds = snapshot_types(stream)
        if not kinds or all(self._local.has_snapshot(k) for k in kinds):
            return
        spec = self._subs.wanted().get(stream) or StreamSpec(stream)
        try:
            answer = await fetch_events(self._endpoint, spec, None, limit=self.config.poll_limit)
        except ClientError as exc:
            log.warning("client %s: no snapshot for %s's local state: %s", self.name, stream, exc)
            return
        for event in answer.events:
            if is_snapshot(event.type, event.data):
                self._local.apply(event.type, event.data)
                pos = position_of(event.id)
                if pos is not None and (cursor.state_floor is None or pos.after(cursor.state_floor)):
                    cursor.state_floor = pos

    def _event(self, wire: WireEvent, transport: str, repaired: bool = False) -> ClientEvent:
        return ClientEvent(
            wire.stream, wire.type, wire.data, wire.id, transport, repaired, wire.replayed, wire.urgent
        )

    def _accept(self, wire: WireEvent, cursor: StreamCursor, transport: str, repaired: bool = False) -> Any:
        """Record, apply and queue an event; an awaitable when a consumer has no room."""
        prev = cursor.resume_id
        type_ = wire.type
        data = wire.data
        pos = cursor.accept(type_, wire.id, data, wire.seq)
        if cursor.state_floor is None or cursor.applies(pos):
            self._local.apply(type_, data)
            if data.__class__ is dict and (data.get("snapshot") or data.get("initializing")):
                self._readiness.snapshot(wire.stream, type_)
        event = ClientEvent(
            wire.stream, type_, data, wire.id, transport, repaired, wire.replayed, wire.urgent
        )
        waiting = self._delivery.offer(event, prev)
        if waiting:
            return self._delivery.retry(event, prev, waiting)
        return None

    async def _deliver(self, event: ClientEvent, prev: str | None) -> None:
        waiting = self._delivery.offer(event, prev)
        if waiting:
            await self._delivery.retry(event, prev, waiting)

    async def _reset(self, wire: WireEvent, transport: str) -> None:
        self._cursors.get(wire.stream).reset()
        data = wire.data if isinstance(wire.data, dict) else {}
        self._metrics.reset(transport, str(data.get("reason", "unknown")))
        event = self._event(wire, transport)
        log.warning("client %s: stream %s reset: %s", self.name, wire.stream, data.get("reason"))
        self._on_reset(event)
        await self._deliver(event, None)

    async def _repair(self, wire: WireEvent, cursor: StreamCursor, check: GapCheck, transport: str) -> None:
        """Ask the events endpoint for the hole `wire` revealed; deliver what is missing (or
        surface a reset) before it."""
        missing = cursor.answer_from_last_check(wire.id, check)
        if missing is None:
            self._metrics.gap_check(transport)
            spec = self._subs.wanted().get(wire.stream) or StreamSpec(wire.stream)
            events, reason = await self._fetch_range(spec, check)
            if reason is not None:
                await self._unrecoverable(wire, events, reason, transport)
                return
            cursor.remember_check(events)
            missing = cursor.missing(events, check)
        if missing:
            await self._fill(wire.stream, missing, cursor, transport)
        if wire.id is not None and wire.id in cursor.ids:
            self._metrics.dupe(transport, wire.type)
            return
        self._metrics.message(transport, wire.type)
        waiting = self._accept(wire, cursor, transport)
        if waiting is not None:
            await waiting

    async def _fill(
        self, stream: str, missing: list[WireEvent], cursor: StreamCursor, transport: str
    ) -> None:
        """Deliver the events a gap check found missing, marked `repaired`."""
        self._metrics.gap(transport)
        log.warning(
            "client %s: gap on %s: %d event(s) repaired from the events endpoint",
            self.name,
            stream,
            len(missing),
        )
        for event in missing:
            if event.id is not None and event.id in cursor.ids:
                continue
            event.stream = stream
            self._metrics.message(transport, event.type)
            waiting = self._accept(event, cursor, transport, repaired=True)
            if waiting is not None:
                await waiting
        self._metrics.repaired(transport)

    async def _unrecoverable(
        self, wire: WireEvent, fresh: list[WireEvent], reason: str, transport: str
    ) -> None:
        """The server cannot resume from the cursor: a `stream:reset`, then the fresh events
        it answered with, then the event that revealed the gap."""
        self._metrics.gap(transport)
        data = {"recovered": False, "reason": reason, "timestamp": _now_iso()}
        await self._reset(WireEvent(wire.stream, RESET, None, data), transport)
        for event in fresh:
            event.stream = wire.stream
            await self.handle(event, transport, check_gaps=False)
        await self.handle(wire, transport, check_gaps=False)

    async def _fetch_range(self, spec: StreamSpec, check: GapCheck) -> tuple[list[WireEvent], str | None]:
        """The stream's events after `check.after` through the event that revealed the hole
        (paged), or the fresh events and the reason when the server cannot resume there."""
        after = check.after
        out: list[WireEvent] = []
        limit = self.config.poll_limit
        while True:
            answer = await self._fetch(spec, after, limit)
            if not answer.recovered:
                return answer.events, answer.reason or "unknown"
            out.extend(answer.events)
            positions = [position_of(e.id) for e in answer.events]
            reached = any(p is not None and p.offset >= check.until for p in positions)
            if reached or len(answer.events) < limit or answer.last_event_id in (None, after):
                return out, None
            after = answer.last_event_id

    async def _fetch(self, spec: StreamSpec, after: str | None, limit: int) -> PollAnswer:
        """One page, retried with backoff until it comes (the stream waits, nothing else)."""
        backoff = Backoff(self.config.backoff)
        while True:
            try:
                return await fetch_events(self._endpoint, spec, after, limit=limit)
            except ClientError as exc:
                delay = backoff.next()
                log.warning("client %s: repairing %s: %s (retry in %.1f s)", self.name, spec.name, exc, delay)
                credentials = self._endpoint.credentials
                if isinstance(exc, AuthExpired) and credentials.provider is not None:
                    with contextlib.suppress(ClientError):
                        await credentials.refresh()
                await asyncio.sleep(delay)
