"""Ordered delivery: what the subscription brings goes to the sink in (log, tick) order,
exactly once, or the log's clients are reset.

Per log, a `Track` holds the last position delivered. The next tick is delivered; one
already seen is dropped (a repair delivered it); a hole, or a new epoch, holds everything
later and starts a repair: the missed log events and changed tick values are read from
Redis (history.lua) and delivered in position order, then what was held. A log that cannot
be repaired (history trimmed, a new epoch, unreadable history) is reset (`sink.on_reset`).

Publishers and attaches wait here until their position was delivered (`delivered`,
`catch_up`), so a holding subscription releases exactly what came after its replay.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from tickwire.brokers.base import BrokerSink, History
from tickwire.brokers.redis.tasks import Tasks
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.errors import BrokerUnavailable

log = logging.getLogger("tickwire.redis")

MAX_TRACKED_LOGS = 100_000
MAX_PENDING = 10_000  # held events per log under repair; beyond, they are re-read instead
REPAIR_CONCURRENCY = 16
FIRST_RETRY_S = 0.05
MAX_RETRY_S = 1.0


@dataclass(slots=True)
class Track:
    """What this node has delivered of one log, and a repair in progress."""

    last: Position
    repairing: bool = False
    overflow: bool = False
    pending: list[Event] = field(default_factory=list)


class Step(enum.Enum):
    """What one repair step left to do."""

    DONE = "done"  # the log is in order again (or was reset)
    AGAIN = "again"  # more to read now (held events overflowed, or showed another hole)
    AWAY = "away"  # Redis is away: try again later


class Channel(Protocol):
    """The subscription, as delivery sees it."""

    subscribed: bool

    async def sync(self) -> None: ...


class HistoryReader(Protocol):
    async def history(self, log_name: str, after: Position | None) -> History: ...


class Delivery:
    def __init__(
        self, reader: HistoryReader, channel: Channel, tasks: Tasks, *, echo_timeout_s: float
    ) -> None:
        self._reader = reader
        self._channel = channel
        self._tasks = tasks
        self._echo_timeout_s = echo_timeout_s
        self._sink: BrokerSink | None = None
        self._tracks: OrderedDict[str, Track] = OrderedDict()
        self._echo: dict[str, list[tuple[Position, asyncio.Future[None]]]] = {}
        self._repair_slots = asyncio.Semaphore(REPAIR_CONCURRENCY)
        self.repairs = 0
        self.resets = 0

    def attach(self, sink: BrokerSink) -> None:
        self._sink = sink

    def detach(self) -> None:
        self._sink = None

    @property
    def subscribed(self) -> bool:
        return self._channel.subscribed

    def track(self, log_name: str) -> Track | None:
        return self._tracks.get(log_name)

    def accept(self, event: Event) -> None:
        """Deliver an event from the subscription in (log, tick) order, or repair first."""
        pos = event.pos
        assert pos is not None
        track = self._tracks.get(event.log)
        if track is None:
            self._tracks[event.log] = Track(pos)
            self._bound_tracks()
            self._deliver(event)
            return
        self._tracks.move_to_end(event.log)
        if track.repairing:
            self._hold(track, event)
            return
        last = track.last
        if pos.epoch == last.epoch:
            if pos.tick <= last.tick:
                return  # already delivered (by a repair)
            if pos.tick == last.tick + 1:
                track.last = pos
                self._deliver(event)
                return
        self._hold(track, event)
        self._start_repair(event.log, track)

    @staticmethod
    def _hold(track: Track, event: Event) -> None:
        if len(track.pending) >= MAX_PENDING:
            track.pending.clear()
            track.overflow = True
        track.pending.append(event)

    def _deliver(self, event: Event) -> None:
        sink = self._sink
        if sink is not None:
            try:
                sink.on_event(event)
            except Exception:
                log.exception("sink failed on an event", extra={"event_id": event.id})
        waiters = self._echo.get(event.log)
        if waiters:
            self._wake(event.log)

    def _wake(self, log_name: str) -> None:
        waiters = self._echo.get(log_name)
        track = self._tracks.get(log_name)
        if not waiters or track is None:
            return
        last = track.last
        keep = []
        for pos, fut in waiters:
            if fut.done():
                continue
            if pos.epoch != last.epoch or pos.tick <= last.tick:
                fut.set_result(None)
            else:
                keep.append((pos, fut))
        if keep:
            self._echo[log_name] = keep
        else:
            self._echo.pop(log_name, None)

    async def delivered(self, log_name: str, pos: Position, wait_s: float) -> bool:
        """Wait until this node has delivered `log_name` up to `pos`; False on timeout."""
        track = self._tracks.get(log_name)
        if (
            track is not None
            and not track.repairing
            and track.last.epoch == pos.epoch
            and track.last.tick >= pos.tick
        ):
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._echo.setdefault(log_name, []).append((pos, fut))
        try:
            await asyncio.wait_for(fut, wait_s)
            return True
        except TimeoutError:
            return False

    async def catch_up(self, log_name: str, end: Position) -> None:
        """Make sure everything up to `end` (just read from Redis) went through the sink
        before the caller goes live, so nothing is delivered twice or skipped."""
        track = self._tracks.get(log_name)
        if track is None and self._channel.subscribed:
            # Events stamped before the read may still be on their way through the
            # subscription: a marker published now arrives after all of them.
            await self._channel.sync()
            track = self._tracks.get(log_name)
        if track is None:  # nothing of this log is in flight: start following it at `end`
            self._tracks[log_name] = Track(end)
            self._bound_tracks()
            return
        if not track.repairing and track.last.epoch == end.epoch and track.last.tick >= end.tick:
            return
        if track.last.epoch != end.epoch:
            self._start_repair(log_name, track)
        if not self._channel.subscribed:
            self._start_repair(log_name, track)
        if not await self.delivered(log_name, end, self._echo_timeout_s):
            self._start_repair(log_name, track)
            await self.delivered(log_name, end, self._echo_timeout_s)

    def _bound_tracks(self) -> None:
        """At most MAX_TRACKED_LOGS logs are tracked: when over, the least recently active
        logs that no client of this node reads are forgotten (down to 90%), in one go."""
        if len(self._tracks) <= MAX_TRACKED_LOGS:
            return
        watched = self._sink.watched_logs() if self._sink is not None else set()
        target = MAX_TRACKED_LOGS * 9 // 10
        for log_name in list(self._tracks):
            if len(self._tracks) <= target:
                break
            if log_name not in watched and not self._tracks[log_name].repairing:
                del self._tracks[log_name]

    def resync(self) -> None:
        """After the subscription was lost: repair every log a client here reads, forget the rest."""
        watched = self._sink.watched_logs() if self._sink is not None else set()
        for log_name in list(self._tracks):
            track = self._tracks[log_name]
            if log_name in watched:
                self._start_repair(log_name, track)
            elif not track.repairing:
                del self._tracks[log_name]  # nobody reads it here: start afresh when someone does

    # -- repair --------------------------------------------------------------------

    def request_repair(self, log_name: str) -> None:
        track = self._tracks.get(log_name)
        if track is not None:
            self._start_repair(log_name, track)

    def _start_repair(self, log_name: str, track: Track) -> None:
        if track.repairing or self._tasks.stopping:
            return
        track.repairing = True
        self._tasks.spawn(self._repair(log_name, track), f"tickwire-repair-{log_name}")

    async def _repair(self, log_name: str, track: Track) -> None:
        """Fill a hole in a log from Redis, then deliver what was held meanwhile."""
        delay = FIRST_RETRY_S
        while not self._tasks.stopping:
            step = await self.repair_once(log_name, track)
            if step is Step.DONE:
                return
            if step is Step.AWAY:  # the subscription comes back first
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)

    async def repair_once(self, log_name: str, track: Track | None = None) -> Step:
        """One repair step of a log under repair: read from its last delivered position,
        deliver (or reset), then release what was held."""
        if track is None:
            track = self._tracks[log_name]
        try:
            async with self._repair_slots:
                history = await self._reader.history(log_name, track.last)
        except BrokerUnavailable:
            return Step.AWAY
        except Exception:  # unreadable history: start this log afresh, and say so
            log.exception("could not repair a log; its clients are reset", extra={"log": log_name})
            if self._tracks.get(log_name) is track:
                del self._tracks[log_name]
            track.pending.clear()
            track.repairing = False
            self._notify_reset(log_name, "repair_failed")
            return Step.DONE
        self.repairs += 1
        self._fill(log_name, track, history)
        return self._release(log_name, track)

    def _fill(self, log_name: str, track: Track, history: History) -> None:
        """Deliver what the history says was missed after `track.last`, or reset the log."""
        if history.reset is not None:
            log.warning(
                "log cannot be repaired; its clients are reset",
                extra={"log": log_name, "reason": history.reset.reason},
            )
            track.last = history.end
            self._notify_reset(log_name, history.reset.reason)
            return
        missed = sorted(
            (e for e in (*history.events, *history.ticks) if e.pos is not None and e.pos.after(track.last)),
            key=lambda e: (e.pos.offset, e.pos.tick),  # type: ignore[union-attr]
        )
        if missed:
            log.info("repaired a gap from the stream", extra={"log": log_name, "events": len(missed)})
        for event in missed:
            self._deliver(event)
        if history.end.after(track.last) or history.end.epoch != track.last.epoch:
            track.last = history.end

    def _release(self, log_name: str, track: Track) -> Step:
        """Deliver the events held during the repair, in order, up to the next hole."""
        pending, track.pending = track.pending, []
        if track.overflow:  # some were dropped: read them again
            track.overflow = False
            return Step.AGAIN
        for i, event in enumerate(pending):
            pos = event.pos
            assert pos is not None
            last = track.last
            if pos.epoch == last.epoch and pos.tick <= last.tick:
                continue
            if pos.epoch == last.epoch and pos.tick == last.tick + 1:
                track.last = pos
                self._deliver(event)
                continue
            track.pending = pending[i:] + track.pending
            return Step.AGAIN
        track.repairing = False
        self._wake(log_name)
        return Step.DONE

    def _notify_reset(self, log_name: str, reason: str) -> None:
        self.resets += 1
        if self._sink is None:
            return
        try:
            self._sink.on_reset(log_name, reason)
        except Exception:
            log.exception("sink failed on a reset", extra={"log": log_name})
