"""What a reader of a stream gets before live events: a snapshot, buffered events or a
replay; and the request/response form of the same thing (poll, long-poll, backfill).

The reader reads the broker and returns events; it never touches a connection. Attaching
them to a connection (sessions.py) and answering a poll request (server/poll.py) are its
callers' business.

Resume rule (SPEC 4): an id the log can honour gets the missed log events of the stream
and the current values of the ticks it missed, in position order; anything else
(malformed, another epoch, trimmed, ahead) gets a `Reset` saying why, plus what a new
reader would get.

Every id a reader receives must be a point it can resume from without a loss or a
repeat, since a connection can drop after any event:
- a replay goes out in position order (a changed tick at the position of its change), so
  the last id received is the furthest point seen: log events then ticks would put an
  older tick's id last, and resuming from it would replay those log events twice;
- of a snapshot in several parts (orders, then positions), only the last carries the id:
  a reader cut off after the first part has no id (or an older one) and starts afresh,
  instead of resuming after a snapshot it never fully received;
- public ticks (prices) pass the hub's throttle after they are stamped, so one held back
  goes out after ticks of other keys stamped later: a resume of a public log also gets
  the values ticks changed in the throttle window (plus `LATE_MARGIN_MS`) before the id's
  time, which covers any tick sent after that id was. Re-sending a current value is
  harmless; missing one leaves a price stale until it moves again.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from tickwire.brokers.base import Broker, History
from tickwire.core.clock import Clock
from tickwire.core.event import USER_LOG_PREFIX, Event
from tickwire.core.ids import Position, parse_id
from tickwire.core.log import MALFORMED, Reset
from tickwire.core.streams import Stream
from tickwire.errors import MalformedId
from tickwire.metrics import Metrics

# How late (beyond its window) the hub's throttle may fan a tick out, and how far the clocks
# of the nodes that stamp a log may disagree: the timer's lag under load, NTP's skew.
LATE_MARGIN_MS = 1000


@dataclass(frozen=True, slots=True)
class Start:
    """The events a reader gets before live ones, and the log position they reflect."""

    events: list[Event]
    end: Position
    # Why the requested resume could not be honoured (the events are then a fresh start).
    reset: Reset | None = None

    @property
    def recovered(self) -> bool:
        return self.reset is None


log = logging.getLogger("tickwire.node")


class StreamReader:
    def __init__(self, broker: Broker, clock: Clock, metrics: Metrics, throttle_s: float = 0.0) -> None:
        self.broker = broker
        self.clock = clock
        self.metrics = metrics
        self.throttle_ms = round(throttle_s * 1000)
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    async def start(self, stream: Stream, last_event_id: str | None) -> Start:
        """A new reader's start (no id), or a resume from `last_event_id`."""
        if last_event_id is None:
            return await self.fresh(stream)
        try:
            pos = parse_id(last_event_id)
        except MalformedId:
            return await self._reset(stream, MALFORMED)
        history = await self.broker.history(stream.log, pos, since_ms=self._late_since(stream, last_event_id))
        if history.reset is not None:
            return await self._reset(stream, history.reset)
        self.metrics.replays.inc()
        return Start(replayed(stream, history), history.end)

    def _late_since(self, stream: Stream, last_event_id: str) -> int | None:
        """For a log whose ticks the hub throttles after stamping: the earliest stamping time
        of a tick that may have gone out after `last_event_id` did."""
        if self.throttle_ms <= 0 or stream.log.startswith(USER_LOG_PREFIX):
            return None
        return int(last_event_id[:13]) - self.throttle_ms - LATE_MARGIN_MS

    async def _reset(self, stream: Stream, reset: Reset) -> Start:
        self.metrics.resets.labels(reset.reason).inc()
        fresh = await self.fresh(stream)
        return Start(fresh.events, fresh.end, reset)

    async def fresh(self, stream: Stream) -> Start:
        """What a new connection gets: the snapshot, or the buffered log events, or for a
        composite stream both (the buffered events of its parts without a snapshot, up to the
        snapshot's position, then the snapshots of the others: later events arrive live)."""
        if not stream.definition.snapshot:
            history = await self.broker.history(stream.log, None)
            return Start([e for e in history.events if stream.matches(e) and encodes(e)], history.end)
        start = await self._snapshot(stream)
        buffered = stream.buffered_parts
        if not buffered:
            return start
        history = await self.broker.history(stream.log, None)
        end = start.end
        events = [
            e
            for e in history.events
            if e.pos is not None
            and e.pos.epoch == end.epoch
            and not e.pos.after(end)
            and any(p.matches(e) for p in buffered)
            and encodes(e)
        ]
        # The buffered events first: the snapshot's id (the log's end) is then the last one a
        # client sees, and a resume from it replays exactly what came after.
        return Start(events + start.events, end)

    async def _snapshot(self, stream: Stream) -> Start:
        ms = self.clock.wall_ms()
        kinds = [part.kind for part in stream.definition.snapshot]
        snap = await self.broker.snapshot(stream.log, kinds)
        pos = None if snap.empty else snap.end

        def parts(states: dict[str, list[dict[str, Any]]]) -> list[Event]:
            payloads = stream.snapshot_payloads(states, ms)
            last = len(payloads) - 1  # the id goes with the last part only
            return [
                Event(t, d, stream.log, pos if i == last else None, ms) for i, (t, d) in enumerate(payloads)
            ]

        events = parts(snap.states)
        if not all(encodes(e) for e in events):  # kept before payloads were bounded
            events = parts(
                {
                    kind: [v for v in values if encodes_value(v, stream.log)]
                    for kind, values in snap.states.items()
                }
            )
        return Start(events, snap.end)

    async def poll(self, stream: Stream, after: str | None, wait_s: float) -> Start:
        """SPEC section 7: what comes after `after` (or a fresh start); with `wait_s`, hold
        the request until something arrives on the stream or the time is up."""
        deadline = self.clock.monotonic() + wait_s
        while True:
            start = await self.start(stream, after)
            if start.events or wait_s <= 0 or not start.recovered:
                return start
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0 or not await self._wait(stream.log, remaining):
                return start

    async def _wait(self, log: str, timeout_s: float) -> bool:
        """Wait until `log` gets an event (True) or the time is up (False)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(log, set())
        waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiters.discard(fut)
            if not waiters and self._waiters.get(log) is waiters:
                del self._waiters[log]

    def wake(self, log: str) -> None:
        """Something happened on `log` (an event, or a reset): long-polls of it look again."""
        waiters = self._waiters.pop(log, None)
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(None)


def replayed(stream: Stream, history: History) -> list[Event]:
    """The stream's part of a resume: its missed log events and changed ticks, merged in
    position order (both come sorted)."""
    events = heapq.merge(
        (e for e in history.events if stream.matches(e)),
        (t for t in history.ticks if stream.matches(t)),
        key=_order,
    )
    return [e for e in events if encodes(e)]


def _order(event: Event) -> tuple[int, int]:
    pos = event.pos
    return (pos.offset, pos.tick) if pos is not None else (0, 0)


def encodes(event: Event) -> bool:
    """Whether the event can be put on the wire (its JSON is kept for delivery); one that
    cannot (stored before payloads were bounded) is left out and logged, never the stream."""
    try:
        event.json  # noqa: B018 - encoded once, cached on the event
    except (TypeError, ValueError):
        log.error("event left out: it cannot be encoded", extra={"event_id": event.id, "type": event.type})
        return False
    return True


def encodes_value(value: dict[str, Any], log_name: str) -> bool:
    try:
        orjson.dumps(value)
    except (TypeError, ValueError):
        log.error("snapshot entry left out: it cannot be encoded", extra={"log": log_name})
        return False
    return True
