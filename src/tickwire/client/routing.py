"""What happens to one received event: control events, resets, dedup, gap repair, local
state, delivery.

`Router.handle` takes each `WireEvent` a session yields. Connection-wide and `connected`
events go straight to the user; `connection:limit` then ends the client (`StreamRefused`),
`auth:expired` ends the session (`AuthExpired`: the runner reconnects at once, with a fresh
token from the token provider, and every stream resumes from its last id).
A `stream:reset` resets the stream's cursor, is told to `on_reset` and delivered. Any other
event is judged by its stream's cursor (gaps.py): a duplicate or stale value is dropped and
counted; a gap candidate is checked with the events endpoint first (`_repair`), which
delivers what was missing, marked `repaired`, before the event that revealed it, or
surfaces a `stream:reset` and the fresh events when the server cannot resume; everything
accepted moves the cursor, updates the local state and goes to the delivery queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tickwire.client.config import ClientConfig
from tickwire.client.delivery import Delivery
from tickwire.client.errors import AuthExpired, StreamRefused
from tickwire.client.events import (
    AUTH_EXPIRED,
    CONNECTED,
    CONNECTION_LIMIT,
    RESET,
    ClientEvent,
    StreamSpec,
    WireEvent,
)
from tickwire.client.gaps import Cursors, GapCheck, StreamCursor, Verdict, position_of
from tickwire.client.local_state import LocalState
from tickwire.client.metrics import ClientMetrics
from tickwire.client.poll import fetch_events
from tickwire.client.subscriptions import SubscriptionManager
from tickwire.client.transports import Endpoint

log = logging.getLogger("tickwire.client")


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _message(data: Any, default: str) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return default


def _limit_message(data: Any) -> str:
    return _message(data, "too many connections for this user")


class Router:
    """Routes one client's received events to its cursors, local state and user."""

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
        self._on_reset = on_reset

    async def handle(self, wire: WireEvent, transport: str, *, check_gaps: bool = True) -> None:
        type_ = wire.type
        if type_ == AUTH_EXPIRED:
            await self._delivery.put(ClientEvent(wire.stream, type_, wire.data, wire.id, transport))
            raise AuthExpired(f"{transport}: {_message(wire.data, 'the session token expired')}")
        if type_ == CONNECTED or not wire.stream:
            await self._delivery.put(ClientEvent(wire.stream, type_, wire.data, wire.id, transport))
            if type_ == CONNECTION_LIMIT:
                raise StreamRefused(f"connection limit: {_limit_message(wire.data)}", 4029)
            return
        if type_ == RESET:
            await self._reset(wire, transport)
            return
        if type_ == CONNECTION_LIMIT:
            await self._delivery.put(ClientEvent(wire.stream, type_, wire.data, wire.id, transport))
            raise StreamRefused(f"connection limit: {_limit_message(wire.data)}", 4029)
        cursor = self._cursors.get(wire.stream)
        verdict, check = cursor.decide(type_, wire.id, wire.data)
        if verdict is Verdict.CHECK and check is not None:
            # A poll answer is the server's own filtered list of everything after its `after`:
            # what it skips is not in the stream, so there is nothing to ask.
            if check_gaps and self.config.gap_repair and transport != "poll":
                await self._repair(wire, cursor, check, transport)
                return
            verdict = Verdict.DELIVER
        if verdict is not Verdict.DELIVER:
            self._metrics.dupe(transport, type_)
            return
        await self._accept(wire, cursor, transport)

    async def _accept(
        self, wire: WireEvent, cursor: StreamCursor, transport: str, repaired: bool = False
    ) -> None:
        cursor.accept(wire.type, wire.id, wire.data)
        self._local.apply(wire.type, wire.data)
        self._metrics.message(transport, wire.type)
        await self._delivery.put(ClientEvent(wire.stream, wire.type, wire.data, wire.id, transport, repaired))

    async def _reset(self, wire: WireEvent, transport: str) -> None:
        self._cursors.get(wire.stream).reset()
        data = wire.data if isinstance(wire.data, dict) else {}
        self._metrics.reset(transport, str(data.get("reason", "unknown")))
        event = ClientEvent(wire.stream, RESET, wire.data, wire.id, transport)
        log.warning("client %s: stream %s reset: %s", self.name, wire.stream, data.get("reason"))
        self._on_reset(event)
        await self._delivery.put(event)

    async def _repair(self, wire: WireEvent, cursor: StreamCursor, check: GapCheck, transport: str) -> None:
        """Ask the events endpoint what the candidate's range holds; deliver what is missing
        (or surface a reset) before the event that revealed it."""
        missing = cursor.answer_from_last_check(wire.id, check)
        if missing is None:
            self._metrics.gap_check(transport)
            spec = self._subs.wanted().get(wire.stream) or StreamSpec(wire.stream)
            events, reason = await self._fetch_range(spec, check)
            if reason is not None:
                await self._unrecoverable(wire, events, reason, transport)
                return
            cursor.remember_check(events)
            missing = cursor.missing(events, check, wire.id)
        if missing:
            await self._fill(wire.stream, missing, cursor, transport)
        cursor.cover(check)
        verdict, _ = cursor.decide(wire.type, wire.id, wire.data)
        if verdict in (Verdict.DUPLICATE, Verdict.STALE):
            self._metrics.dupe(transport, wire.type)
            return
        await self._accept(wire, cursor, transport)

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
            verdict, _ = cursor.decide(event.type, event.id, event.data)
            if verdict in (Verdict.DUPLICATE, Verdict.STALE):
                continue
            await self._accept(event, cursor, transport, repaired=True)
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
            await self.handle(event, transport, check_gaps=False)
        await self.handle(wire, transport, check_gaps=False)

    async def _fetch_range(self, spec: StreamSpec, check: GapCheck) -> tuple[list[WireEvent], str | None]:
        """The stream's events after `check.after` through `check.high` (paged), or the fresh
        events and the reason when the server cannot resume from there."""
        after = check.after
        out: list[WireEvent] = []
        limit = self.config.poll_limit
        while True:
            answer = await fetch_events(self._endpoint, spec, after, limit=limit)
            if not answer.recovered:
                return answer.events, answer.reason or "unknown"
            out.extend(answer.events)
            positions = [position_of(e.id) for e in answer.events]
            reached = any(p is not None and p.offset >= check.high for p in positions)
            if reached or len(answer.events) < limit or answer.last_event_id in (None, after):
                return out, None
            after = answer.last_event_id
