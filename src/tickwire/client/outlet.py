"""One consumer's bounded queue: `client.events()`, or one subscription's handler or iterator.

Rules, per outlet:

1. Ticks (price updates) follow the stream's `conflate` policy when the queue is full
   (config.py): `latest` replaces the queued tick of the same symbol, `always` does so even
   with room, `never` makes the client wait for room (backpressure: the only case in which
   it stops reading for a consumer).
2. Log events (orders, fills, alerts, snapshots, ...) are never dropped and never make the
   client stop reading, so local state stays current whoever consumes. A log event that
   finds the queue full *spills*: the outlet remembers where the stream was (the id before
   it) and queues nothing more of that stream; once the consumer has drained half the
   queue, it fetches what it missed from the events endpoint (`replayed`), up to what the
   client has received, and then takes live events again. If history no longer has them,
   the consumer gets a `stream:reset` (recovered false, reason `consumer_behind`) and the
   fresh events the server answers with. Control events (no id) always go in.
3. Consumption. Per stream the outlet counts what is queued and what its consumer holds
   (taken, not finished) and the id just before the first of them (`floor`): delivery.py
   turns these into each stream's consumed position (the id after which nothing is
   pending with any consumer), for `last_event_ids()` (taken) and checkpoints (finished).
   An iterator takes an event when it yields it; a handler only when it returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from tickwire.client.config import ConflatePolicy
from tickwire.client.errors import ClientError
from tickwire.client.events import RESET, ClientEvent, Priority, WireEvent, is_snapshot, priority_of
from tickwire.client.gaps import position_of
from tickwire.client.metrics import ClientMetrics
from tickwire.client.poll import PollAnswer
from tickwire.client.queue import DeliveryQueue, QueueClosed

log = logging.getLogger("tickwire.client")

TICKS = int(Priority.TICKS)


class History(Protocol):
    """Where an outlet gets what it missed: the events endpoint, and the client's position."""

    def fetch(self, stream: str, after: str | None, limit: int) -> Awaitable[PollAnswer]: ...

    def received(self, stream: str) -> str | None: ...

    def event(self, wire: WireEvent, replayed: bool) -> ClientEvent: ...


def _after(event_id: str | None, mark: str | None) -> bool:
    """Whether `event_id` comes after `mark` in its stream (unknown: False)."""
    if event_id is None or mark is None:
        return False
    a, b = position_of(event_id), position_of(mark)
    if a is None or b is None or a.epoch != b.epoch:
        return False
    return (a.offset, a.tick) > (b.offset, b.tick)


class Outlet:
    def __init__(
        self,
        name: str,
        capacity: int,
        metrics: ClientMetrics,
        conflate: Callable[[str], ConflatePolicy],
        history: History | None = None,
        matches: Callable[[ClientEvent], bool] | None = None,
        page: int = 1000,
    ) -> None:
        self.name = name
        self.capacity = capacity
        self.matches = matches
        self._metrics = metrics
        self._conflate = conflate
        self._history = history
        self._page = page
        self.queue: DeliveryQueue[ClientEvent] = DeliveryQueue(
            capacity,
            priority=lambda e: priority_of(e.type, e.raw, e.urgent),
            droppable=lambda e: False,
            lane=lambda e: e.stream,
            on_drop=self._dropped,
        )
        self._queued: dict[str, int] = {}
        self._held: dict[str, int] = {}
        self._taken_floor: dict[str, str | None] = {}
        self._done_floor: dict[str, str | None] = {}
        self.spilled: dict[str, str | None] = {}
        self.iterated = False  # read by an iterator (not a handler)
        self._catching: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self.queue)

    # -- in ----------------------------------------------------------------------------------

    def offer(self, event: ClientEvent, prev: str | None) -> bool:
        """Queue `event` (`prev`: its stream's id before it); False: wait for room (a tick of
        a `never` stream), then offer again."""
        stream = event.stream
        if self.spilled and stream in self.spilled and self._spill_passes(event):
            return True
        type_ = event.type
        raw = event.raw
        priority = priority_of(type_, raw, event.urgent)
        self._count_in(stream, prev)
        if priority == TICKS and type_ != RESET and not is_snapshot(type_, raw):
            policy = self._conflate(stream)
            if policy != "never":
                symbol = raw.get("symbol") if raw.__class__ is dict else None
                key = (stream, type_, symbol) if isinstance(symbol, str) else None
                self.queue.offer(event, stream, priority, True, key, policy == "always")
                return True
            if self.queue.offer(event, stream, priority, False, None):
                return True
            self._count_out(stream)
            return False
        if not self.queue.offer(event, stream, priority, False, None):
            if event.id is None:
                self.queue.force(event)
            else:
                self._count_out(stream)
                self._spill(stream, prev)
        return True

    def _spill_passes(self, event: ClientEvent) -> bool:
        """An event of a spilled stream: True when it stays behind (history has it)."""
        if event.type == RESET:
            del self.spilled[event.stream]  # the old position means nothing any more
            return False
        if event.id is None:
            return False
        self._metrics.spilled()
        return True

    def _spill(self, stream: str, prev: str | None) -> None:
        self.spilled[stream] = prev
        self._metrics.spilled()
        log.warning(
            "client consumer %s is %d events behind: %s continues from history when it catches up",
            self.name,
            len(self.queue),
            stream,
        )

    async def wait_room(self) -> None:
        self._metrics.backpressure()
        queue = self.queue
        while len(queue) >= queue.capacity and not queue.closed:
            queue._room.clear()
            await queue._room.wait()

    def _count_in(self, stream: str, prev: str | None) -> None:
        queued = self._queued.get(stream, 0)
        if not queued:
            self._taken_floor[stream] = prev
            if not self._held.get(stream):
                self._done_floor[stream] = prev
        self._queued[stream] = queued + 1

    def _count_out(self, stream: str) -> None:
        self._queued[stream] -= 1

    def _dropped(self, event: ClientEvent, reason: str) -> None:
        self._queued[event.stream] -= 1
        self._metrics.dropped(event.type, reason)

    # -- out ---------------------------------------------------------------------------------

    def get_nowait(self) -> ClientEvent | None:
        event = self.queue.get_nowait()
        if event is not None:
            self._take(event)
        return event

    async def get(self) -> ClientEvent:
        event = await self.queue.get()
        self._take(event)
        return event

    def _take(self, event: ClientEvent) -> None:
        stream = event.stream
        self._queued[stream] -= 1
        self._held[stream] = self._held.get(stream, 0) + 1
        if event.id is not None:
            self._taken_floor[stream] = event.id
        if self.spilled and self._catching is None and len(self.queue) <= self.capacity // 2:
            self._catching = asyncio.get_running_loop().create_task(
                self._catch_up(), name="tickwire-catch-up"
            )

    def done(self, event: ClientEvent) -> None:
        """The consumer finished `event` (its handler returned; the iterator was asked for
        the next one)."""
        stream = event.stream
        self._held[stream] -= 1
        if event.id is not None:
            self._done_floor[stream] = event.id

    async def iterate(self, finished: Callable[[], None]) -> AsyncIterator[ClientEvent]:
        """The events, each `done` (then `finished()`) when the next one is asked for; ends
        when the queue closes."""
        self.iterated = True
        previous: ClientEvent | None = None
        while True:
            if previous is not None:
                self.done(previous)
                finished()
            event = self.get_nowait()
            if event is None:
                try:
                    event = await self.get()
                except QueueClosed:
                    return
            previous = event
            yield event

    def hand_over(
        self, stream: str, matches: Callable[[ClientEvent], bool] | None, keep: bool
    ) -> list[ClientEvent]:
        """The events of `stream` waiting here that `matches` accepts, for a consumer that
        starts now; they leave this queue unless `keep` (the stream is read here too)."""
        moved = self.queue.take_lane(stream, matches or (lambda e: True), not keep)
        if moved and not keep:
            self._queued[stream] -= len(moved)
        return moved

    def adopt(self, events: list[ClientEvent], prev: str | None) -> None:
        """Take over events handed over by another consumer (`prev`: the id before them)."""
        for event in events:
            self._push(event, prev)
            prev = event.id or prev

    def finish_held(self) -> None:
        """The program ended cleanly: what its iterator took is finished too."""
        if self.iterated:
            for stream, held in self._held.items():
                if held:
                    self._held[stream] = 0
                    self._done_floor[stream] = self._taken_floor.get(stream)

    def floor(self, stream: str, finished: bool) -> tuple[bool, str | None]:
        """(whether something of `stream` is pending here, the id just before it).

        An iterator's event is taken once yielded; a handler's only once the handler
        returned, so for a handler's outlet taken and finished are the same."""
        queued = self._queued.get(stream, 0)
        counts_held = finished or not self.iterated
        pending = queued + self._held.get(stream, 0) if counts_held else queued
        floors = self._done_floor if counts_held else self._taken_floor
        if pending:
            return True, floors.get(stream)
        if stream in self.spilled:
            return True, self.spilled[stream]
        return False, None

    def streams(self) -> set[str]:
        return set(self._queued) | set(self.spilled)

    def close(self, error: ClientError | None) -> None:
        self.queue.close(error)
        if self._catching is not None:
            self._catching.cancel()

    # -- catching up ---------------------------------------------------------------------------

    async def _catch_up(self) -> None:
        history = self._history
        try:
            while self.spilled and history is not None:
                room = self.capacity - len(self.queue)
                if room < max(1, self.capacity // 4):
                    return  # the next drain starts again
                stream, after = next(iter(self.spilled.items()))
                received = history.received(stream)  # before asking: the answer has all of it
                answer = await history.fetch(stream, after, min(self._page, room))
                if stream in self.spilled and self.spilled[stream] == after:
                    self._catch_page(stream, answer, received)
        except ClientError as exc:
            log.warning(
                "client consumer %s: catching up failed (%s); again at the next drain", self.name, exc
            )
        finally:
            self._catching = None

    def _catch_page(self, stream: str, answer: PollAnswer, received: str | None) -> None:
        """Queue a page of history up to what the client received (no await in here: live
        events of the stream still stay behind meanwhile); done when nothing is left."""
        history = self._history
        assert history is not None
        last = self.spilled[stream]
        if not answer.recovered:
            data = {"recovered": False, "reason": "consumer_behind", "timestamp": _now()}
            self._push(history.event(WireEvent(stream, RESET, None, data), False), None)
            last = None
        taken = 0
        for wire in answer.events:
            if answer.recovered and _after(wire.id, received):
                break  # not received yet: it will arrive live
            wire.stream = stream
            event = history.event(wire, answer.recovered)
            if self.matches is None or self.matches(event):
                self._push(event, last)
            taken += 1
            last = wire.id or last
        self._metrics.caught_up(taken)
        if taken == 0 or last == received or (answer.recovered and len(answer.events) > taken):
            del self.spilled[stream]  # caught up with what the client received
        else:
            self.spilled[stream] = last

    def _push(self, event: ClientEvent, prev: str | None) -> None:
        self._count_in(event.stream, prev)
        self.queue.force(event)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
