"""The writer: one connection's outbox to its driver, for SSE and WebSocket alike.

Ready connections are flushed by the `Flusher` once per event-loop turn, right after
dispatch, writing in the dispatching code: no task is woken per event. The connection's
own task (`run`) sleeps on its timers and wakes only to complete a write that had to
wait for the socket, to close, or for its timers:

    event, nothing queued ─► write_now ─► driver (at most once per connection per loop turn)
    outbox non-empty ─► notify ─► Flusher (next loop turn) ─► flush: drain outbox ─► driver
                                   driver not writable ──────► wake the task: drain()
    keepalive / idle / credential expiry / tick-cap releases (core/connection.py), WebSocket pings (an extra
    `Timer`) ─► task

Bytes leave the outbox only while the driver is writable, so what the socket has not
taken stays under the outbox's bound and conflation. A peer that stops reading while the
outbox overflows is aborted (`abort`): the task stops waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from tickwire.codes import CloseReason
from tickwire.core.clock import Clock
from tickwire.core.connection import Connection
from tickwire.core.outbox import Outbox
from tickwire.drivers.base import Driver, PeerGone
from tickwire.metrics import FastHistogram
from tickwire.server.streaming import Flusher, Waker

log = logging.getLogger("tickwire.writer")


class Timer(Protocol):
    """Something else the connection's task does on time (WebSocket pings)."""

    def due(self) -> float:
        """Monotonic time of the next action."""
        ...

    async def fire(self, now: float) -> None: ...


class Writer:
    __slots__ = (
        "_aborted",
        "_in_drain",
        "_marked",
        "_task",
        "_turn",
        "clock",
        "compress",
        "conn",
        "driver",
        "flusher",
        "frames",
        "latency",
        "timer",
        "waker",
    )

    def __init__(
        self,
        driver: Driver,
        flusher: Flusher,
        clock: Clock,
        latency: FastHistogram,
        *,
        frames: bool,
        compress: Callable[[bytes], bytes] | None = None,
        timer: Timer | None = None,
    ) -> None:
        self.driver = driver
        self.flusher = flusher
        self.clock = clock
        self.latency = latency
        self.frames = frames  # a message transport: one frame per queued frame
        self.compress = compress  # a stream transport's content coding (gzip)
        self.timer = timer
        self.waker = Waker()
        self.conn: Connection | None = None
        self._marked = False
        self._in_drain = False
        self._turn = -1  # the flusher's turn in which `write_now` last wrote
        self._aborted = False
        self._task: asyncio.Task[None] | None = None

    def attach(self, conn: Connection) -> None:
        self.conn = conn
        conn.outbox.on_abort = self.abort
        conn.outbox.on_shed = self._shed
        conn.outbox.on_held = self.timers_changed  # a tick waits for the cap: wake at its release
        if self.compress is None:  # a content coding compresses what is pending as one
            conn.write_now = self.write_now

    def write_now(self, frame: bytes, ms: int) -> bool:
        """The hot path: an event's frame for a connection with nothing queued or waiting
        goes to the driver at once, skipping the outbox and the flusher. At most once per
        connection per flusher turn: what follows in the same turn is queued behind it and
        written in one go. False when the frame must be queued instead."""
        conn = self.conn
        flusher = self.flusher
        if (
            self._turn == flusher.turn
            or self._marked
            or self._in_drain
            or conn is None
            or not self.driver.writable
            or not conn.outbox.bypassable()
        ):
            return False
        self._turn = flusher.turn
        flusher.end_turn_soon()
        try:
            written = self.driver.write_frames((frame,)) if self.frames else self.driver.write(frame)
        except PeerGone:
            conn.close(CloseReason.CLIENT_GONE)
            return True
        except Exception:  # one broken connection must not stop the dispatch to the others
            log.exception("write failed", extra=self._log_extra())
            conn.close(CloseReason.CLIENT_GONE)
            return True
        conn.outbox.stats.delivered += 1
        self._wrote(ms)
        if not written:
            self.waker.wake()  # the task completes the write that waits
        return True

    def notify(self) -> None:
        """The outbox became non-empty (or closed)."""
        if self._in_drain or not self.driver.writable:
            self.waker.wake()
        elif not self._marked:
            self._marked = True
            self.flusher.mark(self.flush)

    def flush(self) -> None:
        """Write what is queued, now, unless the socket is full or the task is writing."""
        self._marked = False
        conn = self.conn
        if conn is None:  # the connection ended after this flush was scheduled
            return
        outbox = conn.outbox
        if self._in_drain or not self.driver.writable or outbox.closed is not None or not outbox:
            self.waker.wake()
            return
        try:
            written = self._write(outbox)
        except PeerGone:
            conn.close(CloseReason.CLIENT_GONE)
            written = False
        if not written:
            self.waker.wake()  # the task completes the write that waits (or ends)

    def _write(self, outbox: Outbox) -> bool:
        """Everything queued to the driver; True when the socket took it now."""
        oldest = outbox.oldest_ms
        if self.frames:
            written = self.driver.write_frames(outbox.drain_frames())
        elif self.compress is not None:
            written = self.driver.write(self.compress(outbox.drain()))
        else:
            written = self.driver.write(outbox.drain())
        if written:
            self._wrote(oldest)
        return written

    def _wrote(self, oldest: int) -> None:
        assert self.conn is not None
        self.conn.wrote()
        if oldest:
            self.latency.observe(max(0, self.clock.wall_ms() - oldest) / 1000)

    async def run(self) -> None:
        """The connection's task until the outbox closes: parked writes, timers."""
        conn = self.conn
        assert conn is not None
        self._task = asyncio.current_task()
        outbox = conn.outbox
        try:
            while True:
                if not self.driver.writable:
                    await self._drain()
                    continue
                if outbox:
                    self._write(outbox)
                    continue
                if outbox.closed is not None:
                    return
                if not await self._on_time():
                    continue
        except PeerGone:
            conn.close(CloseReason.CLIENT_GONE)
        except asyncio.CancelledError:
            # An abort (slow consumer) may surface at the next await instead of in the drain.
            task = asyncio.current_task()
            if not (self._aborted and task is not None and task.uncancel() == 0):
                raise
        finally:
            self._task = None
            self.waker.close()

    async def _drain(self) -> None:
        self._in_drain = True
        try:
            await self.driver.drain()
        finally:
            self._in_drain = False
        self._wrote(0)

    async def _on_time(self) -> bool:
        """Run what is due; else sleep until woken or the next deadline. True when slept."""
        conn = self.conn
        assert conn is not None
        now = self.clock.monotonic()
        timer = self.timer
        if timer is not None and now >= timer.due():
            await timer.fire(now)
            return False
        deadline = conn.next_deadline()
        if now >= deadline:
            conn.on_timer()
            return False
        await self.waker.wait(min(deadline, timer.due()) if timer is not None else deadline, now)
        return True

    def timers_changed(self) -> None:
        """The connection's deadlines moved (e.g. a new credential expiry): the task
        looks at them again instead of sleeping until the old one."""
        self.waker.wake()

    def _shed(self, dropped: int) -> None:
        """The outbox dropped ticks its client did not read in time (slow consumer, rule 4)."""
        log.warning("slow consumer: dropped unsent ticks", extra={**self._log_extra(), "dropped": dropped})

    def _log_extra(self) -> dict[str, object]:
        conn = self.conn
        if conn is None:
            return {}
        return {
            "client_id": conn.client_id,
            "correlation_id": conn.correlation_id,
            "user": conn.user,
            "publish_correlation_id": conn.outbox.trace,  # the publish of the last event queued
        }

    def abort(self) -> None:
        """The outbox gave up on its client (slow consumer): stop waiting for the socket."""
        log.warning("slow consumer: connection closed", extra=self._log_extra())
        self._aborted = True
        self.driver.abort()
        task = self._task
        if self._in_drain and task is not None:
            task.cancel()
        self.waker.wake()

    @property
    def aborted(self) -> bool:
        return self._aborted

    def detach(self) -> None:
        """Break the connection's reference cycles so that reference counting frees it
        (see server.gcpolicy)."""
        if self.conn is not None:
            self.conn.write_now = None
            self.conn.outbox.on_abort = None
            self.conn.outbox.on_shed = None
            self.conn.outbox.on_held = None
        self.conn = None
        self.timer = None  # a WebSocket's pinger holds the connection too
        self.waker.close()
