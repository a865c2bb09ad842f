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
from tickwire.core.event import USER_LOG_PREFIX, Event, iso_timestamp
from tickwire.core.ids import Position, parse_id
from tickwire.core.log import MALFORMED, Reset
from tickwire.core.streams import SnapshotPart, Stream
from tickwire.domain.catalog import EVENT_TYPES
from tickwire.errors import MalformedId
from tickwire.metrics import Metrics

# How late (beyond its window) the hub's throttle may fan a tick out, and how far the clocks
# of the nodes that stamp a log may disagree: the timer's lag under load, NTP's skew.
LATE_MARGIN_MS = 1000

# The deepest nesting of objects and lists orjson encodes (its recursion limit refuses one more).
ENCODER_MAX_DEPTH = 254
# The levels the poll body puts around an event's payload (`{"events":[{"data":...}]}`): the
# deepest an event goes out at (SSE and WebSocket frames hold the payload's own JSON as it is).
POLL_WRAPPING = 3
# The field keying each kind of keyed state (`orders`: `orderId`), to name a left-out entry.
STATE_KEYS = {t.state[0]: t.state[1] for t in EVENT_TYPES.values() if t.state is not None}


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
        if not all(_deliverable(e) for e in events):  # entries kept before payloads were bounded
            ts = iso_timestamp(ms)
            events = parts(
                {
                    part.kind: [
                        v for v in snap.states.get(part.kind, []) if entry_encodes(part, v, ts, stream.log)
                    ]
                    for part in stream.definition.snapshot
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
    """Whether the event can be put on the wire in every form (its JSON is kept for delivery);
    one that cannot (stored before payloads were bounded) is left out and logged, never the
    stream."""
    if _deliverable(event):
        return True
    log.error("event left out: it cannot be encoded", extra={"event_id": event.id, "type": event.type})
    return False


def entry_encodes(part: SnapshotPart, value: dict[str, Any], ts: str, log_name: str) -> bool:
    """Whether a snapshot entry can be put on the wire at the depth it goes out at: in its
    part's payload (tried with that entry alone), in a poll body. One that cannot is left out
    and logged with its key."""
    _, data = part.build([value], ts)
    try:
        _check_encodes(data, orjson.dumps(data), POLL_WRAPPING)
    except (TypeError, ValueError):
        key = value.get(STATE_KEYS.get(part.kind, ""))
        log.error(
            "snapshot entry left out: it cannot be encoded",
            extra={
                "log": log_name,
                "kind": part.kind,
                "entry_id": key if isinstance(key, str | int) else None,
            },
        )
        return False
    return True


def _deliverable(event: Event) -> bool:
    try:
        _check_encodes(event.data, event.json, POLL_WRAPPING)  # event.json: encoded once, cached
    except (TypeError, ValueError):
        return False
    return True


def _check_encodes(data: Any, encoded: bytes, levels: int) -> None:
    """Raise (as orjson does) when `data`, encoded alone as `encoded`, cannot be encoded
    `levels` deeper. Payloads are never nested deeper than they have brackets, so counting
    them settles almost every one without encoding it again."""
    if encoded.count(b"{") + encoded.count(b"[") + levels <= ENCODER_MAX_DEPTH:
        return
    wrapped = data
    for _ in range(levels):
        wrapped = [wrapped]
    orjson.dumps(wrapped)
