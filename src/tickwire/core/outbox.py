"""The per-connection outbox: encoded frames waiting for one coalesced write.

Rules, in the order they apply:

1. A keyed tick (price or position mark) supersedes the unsent tick of the same key:
   the old frame is dropped and the new one queued at the end, so wire order (and
   with it the order of ids) stays the order of positions.
2. A log event with a key also supersedes the unsent tick of that key (it carries
   the newer value).
3. A replay or snapshot (`replay=True`) is bounded by the history it comes from,
   not by the outbox: its bytes raise the bound until they are drained, so a client
   resuming a long history is not mistaken for a slow one.
4. When queued bytes pass the bound, every unsent tick is dropped (the client
   can always get current values again); if that is not enough the outbox closes
   with `SLOW_CONSUMER` and the transport closes the connection. Log events are
   never dropped: the client resumes them from history.
5. With a tick cap (TICKWIRE_CLIENT_MAX_EVENTS_S, a `TickPacer`), a keyed tick beyond
   the cap waits outside the queue, one per key: a newer tick of its key replaces it
   (counted as `capped`), and `release()` queues the waiting ones, oldest first, as the
   cap allows (the connection's timer calls it at `release_at()`). A tick that replaces
   an unsent queued tick of its key takes no share of the cap; log events are never
   capped, and go ahead of waiting ticks.

The outbox calls `notify` when it goes from empty to non-empty; the transport's
writer then calls `drain()` and writes everything in one go.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tickwire.codes import CloseReason
from tickwire.core.pacing import TickPacer

SLOW_CONSUMER = CloseReason.SLOW_CONSUMER


class DeliveryStats:
    """Plain counters shared by all outboxes, read by the metrics collector."""

    __slots__ = ("capped", "conflated", "delivered", "dropped_slow", "slow_closes")

    def __init__(self) -> None:
        self.delivered = 0
        self.conflated = 0
        self.capped = 0
        self.dropped_slow = 0
        self.slow_closes = 0


class _Entry:
    __slots__ = ("alive", "frame", "tick")

    def __init__(self, frame: bytes, tick: bool) -> None:
        self.frame = frame
        self.tick = tick
        self.alive = True


class Outbox:
    def __init__(
        self,
        limit_bytes: int,
        notify: Callable[[], None],
        stats: DeliveryStats | None = None,
        *,
        conflate: bool = True,
        pacer: TickPacer | None = None,
    ) -> None:
        self.limit_bytes = limit_bytes
        # Off when the operator turned conflation off (TICKWIRE_THROTTLE_MS=0): every
        # tick is then delivered unless the slow-consumer policy has to drop it.
        self.conflate = conflate
        self._notify = notify
        self._entries: deque[_Entry] = deque()
        self._ticks: dict[str, _Entry] = {}
        # Rule 5: the per-connection tick cap, and the ticks waiting for it (key -> (frame, ms)).
        self.pacer = pacer
        self._held: dict[str, tuple[bytes, int]] = {}
        # Told when a tick starts waiting for the cap: the transport's task must wake at
        # `release_at()`.
        self.on_held: Callable[[], None] | None = None
        # How many times rule 4 dropped ticks: who remembers what a client was sent
        # (delta subscriptions) starts over when it changes.
        self.sheds = 0
        self._bytes = 0
        self._replay_bytes = 0
        self._events = 0
        self.stats = stats if stats is not None else DeliveryStats()
        self.closed: str | None = None
        # Called when the outbox gives up on its client (slow consumer): the transport
        # must stop waiting on a socket that does not drain.
        self.on_abort: Callable[[], None] | None = None
        # Publish time (unix ms) of the oldest event in the pending batch: the
        # transport observes delivery latency once per write, not once per event.
        self.oldest_ms = 0
        # The publisher's correlation id of the last event queued, and a callback told how
        # many ticks rule 4 dropped: for the log lines that follow a publish to its clients.
        self.trace: str | None = None
        self.on_shed: Callable[[int], None] | None = None

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def __bool__(self) -> bool:
        return self._bytes > 0

    def bypassable(self) -> bool:
        """Whether a frame may skip the queue (written at once by the transport): open,
        nothing queued, no tick cap to apply. Order and the rules hold: what is queued
        always goes first, and an empty queue has nothing to conflate."""
        return self._bytes == 0 and self.closed is None and self.pacer is None

    def put(
        self,
        frame: bytes,
        *,
        key: str | None = None,
        tick: bool = False,
        event: bool = True,
        ms: int = 0,
        replay: bool = False,
        paced: bool = False,
    ) -> bool:
        """Queue a frame; False when the outbox is closed (the frame is discarded).
        `paced`: a tick the cap already let through (`release`)."""
        if self.closed is not None:
            return False
        if key is not None:
            if self.pacer is not None and not paced:
                if tick:
                    if self._hold(frame, key, ms):
                        return True
                elif self._held:
                    self._held.pop(key, None)  # rule 2, for a tick waiting for the cap
            if self.conflate:
                old = self._ticks.pop(key, None)
                if old is not None:
                    old.alive = False
                    self._bytes -= len(old.frame)
                    self._events -= 1
                    self.stats.conflated += 1
        entry = _Entry(frame, tick)
        if tick and key is not None and self.conflate:
            self._ticks[key] = entry
        was_empty = self._bytes == 0
        if was_empty:
            self.oldest_ms = ms
        self._entries.append(entry)
        self._bytes += len(frame)
        if event:
            self._events += 1
        if replay:
            self._replay_bytes += len(frame)
        if self._bytes > self.limit_bytes + self._replay_bytes:
            self._shed()
            if self.closed is not None:
                return False
        if was_empty:
            self._notify()
        return True

    def _hold(self, frame: bytes, key: str, ms: int) -> bool:
        """Rule 5: True when the tick waits for the cap instead of being queued."""
        held = self._held
        if key in held:
            held[key] = (frame, ms)  # keeps its place: the oldest waiting goes first
            self.stats.capped += 1
            return True
        if self.conflate and key in self._ticks:
            return False
        if not held and self.pacer is not None and self.pacer.take():
            return False
        held[key] = (frame, ms)
        if len(held) == 1 and self.on_held is not None:
            self.on_held()
        return True

    def holds_tick(self, key: str) -> bool:
        """Whether an unsent tick of `key` is queued or waiting for the cap (a new tick of
        the key replaces it, so the client never gets it)."""
        return key in self._ticks or key in self._held

    def release_at(self) -> float | None:
        """Monotonic time at which a tick waiting for the cap may go; None when none waits."""
        if not self._held or self.pacer is None:
            return None
        return self.pacer.next_at()

    def release(self) -> int:
        """Queue the waiting ticks the cap allows now, oldest first; how many."""
        held = self._held
        released = 0
        while held and self.closed is None and self.pacer is not None and self.pacer.take():
            key = next(iter(held))
            frame, ms = held.pop(key)
            self.put(frame, key=key, tick=True, ms=ms, paced=True)
            released += 1
        return released

    def _shed(self) -> None:
        dropped = len(self._held)
        self._held.clear()
        for entry in self._entries:
            if entry.tick and entry.alive:
                entry.alive = False
                self._bytes -= len(entry.frame)
                self._events -= 1
                dropped += 1
        self.stats.dropped_slow += dropped
        self._ticks.clear()
        self.sheds += 1
        if dropped and self.on_shed is not None:
            self.on_shed(dropped)
        if self._bytes > self.limit_bytes + self._replay_bytes:
            self.close(SLOW_CONSUMER, discard=True)
            self.stats.slow_closes += 1

    def close(self, reason: str, *, discard: bool = False) -> None:
        """Stop accepting frames; what is queued is still drained unless `discard`."""
        if self.closed is None:
            self.closed = reason
            self._held.clear()
            if discard:
                self._entries.clear()
                self._ticks.clear()
                self._bytes = 0
                self._events = 0
            self._notify()
            if discard and self.on_abort is not None:
                self.on_abort()

    def drain(self) -> bytes:
        """Everything queued, as one bytes object, in queue order (stream transports)."""
        return b"".join(self.drain_frames())

    def drain_frames(self) -> list[bytes]:
        """Everything queued, frame by frame (message transports such as WebSocket)."""
        if not self._entries:
            return []
        frames = [e.frame for e in self._entries if e.alive]
        self.stats.delivered += self._events
        self._entries.clear()
        self._ticks.clear()
        self._bytes = 0
        self._replay_bytes = 0
        self._events = 0
        return frames
