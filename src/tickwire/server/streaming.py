"""Pieces every streaming transport shares: the writer wake-up and client ids."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, cast

from starlette.types import Message, Send

log = logging.getLogger("tickwire.streaming")

# Scope key under which `TickwireApp` passes the server's own `send` to stream writers.
RAW_SEND = "tickwire.send"


class Waker:
    """Wakes one writer task: when its outbox becomes non-empty, or at a deadline.

    One future per wait and at most one timer per connection (re-armed only when it
    fires), so waking a writer costs a `set_result` and nothing else.
    """

    __slots__ = ("_fut", "_loop", "_timer", "_timer_at")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._fut: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def wake(self) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def wait(self, deadline_mono: float, now_mono: float) -> None:
        """Sleep until woken or until `deadline_mono` (the node clock's monotonic time)."""
        loop_deadline = self._loop.time() + max(0.0, deadline_mono - now_mono)
        if self._timer is None or self._timer_at > loop_deadline + 0.001:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = loop_deadline
            self._timer = self._loop.call_at(loop_deadline, self._fire)
        self._fut = self._loop.create_future()
        try:
            await self._fut
        finally:
            self._fut = None

    def _fire(self) -> None:
        self._timer = None
        self.wake()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class EagerSend:
    """Runs an ASGI `send` at once, in the caller, when it does not have to wait.

    Waking one writer task per connection for every event costs more than the write
    itself. A server's `send` only suspends when the socket is full (flow control), so
    the dispatching code can step the coroutine itself: when it completes, the write is
    done with no task switch; when it suspends, it is parked and the connection's own
    task finishes it with `finish()`.
    """

    __slots__ = ("_parked", "_send")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._parked: tuple[Coroutine[Any, Any, None], Any] | None = None

    @property
    def parked(self) -> bool:
        return self._parked is not None

    def try_send(self, message: Message) -> bool:
        """True when the message was written; False when it waits for `finish()`."""
        coro = cast(Coroutine[Any, Any, None], self._send(message))
        try:
            waiting = coro.send(None)
        except StopIteration:
            return True
        self._parked = (coro, waiting)
        return False

    async def send(self, message: Message) -> None:
        """Send in the ordinary way, after any parked send."""
        await self.finish()
        await self._send(message)

    async def finish(self) -> None:
        """Complete a parked send (raises what the send raises)."""
        if self._parked is None:
            return
        coro, waiting = self._parked
        try:
            while True:
                if isinstance(waiting, asyncio.Future):
                    waiting._asyncio_future_blocking = False
                    await asyncio.wait([waiting])
                else:  # a bare yield (sleep(0)): give the loop one turn
                    await asyncio.sleep(0)
                try:
                    waiting = coro.send(None)
                except StopIteration:
                    return
        finally:
            self._parked = None
            coro.close()


class Flusher:
    """Flushes every connection that became ready, once per event-loop turn."""

    __slots__ = ("_loop", "_ready", "_scheduled")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready: list[Callable[[], None]] = []
        self._scheduled = False

    def mark(self, flush: Callable[[], None]) -> None:
        self._ready.append(flush)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        ready, self._ready = self._ready, []
        for flush in ready:
            try:
                flush()
            except Exception:  # one broken connection must not stop the others' writes
                log.exception("flush failed")


def app_flusher(state: Any) -> Flusher:
    """The app's flusher, made on first use (it belongs to the running loop)."""
    flusher: Flusher | None = getattr(state, "flusher", None)
    if flusher is None:
        flusher = state.flusher = Flusher()
    return flusher


class ClientIds:
    """`{userId}-{stream}-{unix_ms}`, the ms bumped so ids are unique on this node."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def next(self, user: str | None, stream: str, now_ms: int) -> str:
        key = (user or "anonymous", stream)
        ms = max(now_ms, self._last.get(key, 0) + 1)
        self._last[key] = ms
        if len(self._last) > 10_000:
            self._last = {k: v for k, v in self._last.items() if v > now_ms}
        return f"{key[0]}-{stream}-{ms}"
