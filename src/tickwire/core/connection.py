"""A client connection as the core sees it: identity, outbox, subscriptions, timers.

Transports (SSE, WebSocket) own the socket; the core owns what goes into it. The
timer rules live here so that keepalive, idle timeouts and credential expiry are tested
with a fake clock:

- keepalive: nothing written for `keepalive_s` -> the transport writes its keepalive
- idle: no event delivered and nothing received for `idle_timeout_s` -> close
- expiry (SPEC 5): at the credentials' expiry (`expires_at_ms`, the clock's wall time;
  None = never) -> `auth:expired` (`{"message", "timestamp"}`, no id) after what is
  queued, then close (`auth_expired`: SSE ends the response, WebSocket closes with 4001).
  `authenticated_until` moves it (a WebSocket's `auth` with a fresh token).
- tick cap: ticks waiting for the per-connection cap (core/outbox.py rule 5) are queued
  at the outbox's `release_at()`
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from tickwire.codes import CloseReason
from tickwire.core.clock import Clock
from tickwire.core.event import Event, iso_timestamp
from tickwire.core.outbox import DeliveryStats, Outbox
from tickwire.core.pacing import TickPacer

if TYPE_CHECKING:
    from tickwire.core.hub import Subscription


class FrameCodec(Protocol):
    """How one transport turns events into bytes (one instance per wire format)."""

    name: str

    def cache_key(self, stream: str) -> str:
        """Key under which an event's frame for `stream` is cached on the event."""
        ...

    def event_frame(self, event: Event, stream: str) -> bytes: ...

    def control_frame(self, type_: str, data: dict[str, Any], stream: str | None) -> bytes: ...

    def keepalive_frame(self) -> bytes | None: ...


class TimerAction(Enum):
    NONE = "none"
    KEEPALIVE = "keepalive"
    IDLE_CLOSE = "idle"
    AUTH_EXPIRED = "auth_expired"
    RELEASE = "release"


AUTH_EXPIRED_EVENT = "auth:expired"
AUTH_EXPIRED_MESSAGE = "Session token expired: reconnect with a fresh token to resume"


_serial = itertools.count(1)


class Connection:
    """One client connection (SSE stream or WebSocket)."""

    # Connection objects alive in this process: equal to the open connections unless
    # a closed one is still referenced somewhere (a leak, shown in metrics).
    alive = 0

    def __init__(
        self,
        *,
        client_id: str,
        user: str | None,
        transport: str,
        codec: FrameCodec,
        clock: Clock,
        outbox_limit: int,
        notify: Callable[[], None],
        stats: DeliveryStats | None = None,
        ip: str = "",
        correlation_id: str = "",
        keepalive_s: float = 30.0,
        idle_timeout_s: float = 300.0,
        conflate: bool = True,
        expires_at: float | None = None,
        max_ticks_per_s: float = 0.0,
    ) -> None:
        self.serial = next(_serial)
        self.client_id = client_id
        self.user = user
        self.transport = transport
        self.codec = codec
        self.clock = clock
        self.ip = ip
        self.correlation_id = correlation_id
        self.keepalive_s = keepalive_s
        self.idle_timeout_s = idle_timeout_s
        pacer = TickPacer(clock, max_ticks_per_s) if max_ticks_per_s > 0 else None
        self.outbox = Outbox(outbox_limit, notify, stats, conflate=conflate, pacer=pacer)
        # The transport's hot path, when it has one: takes a frame (and its publish time)
        # straight to the socket while nothing is queued; False when it must be queued.
        self.write_now: Callable[[bytes, int], bool] | None = None
        self.subscriptions: dict[str, Subscription] = {}
        now = clock.monotonic()
        self.opened_at = now
        self.last_write = now
        self.last_activity = now
        self.close_reason: str | None = None
        self.expires_at_ms: int | None = None
        self.authenticated_until(expires_at)
        Connection.alive += 1

    def __del__(self) -> None:
        Connection.alive -= 1

    @property
    def closing(self) -> bool:
        return self.outbox.closed is not None

    def send_event(self, event: Event, frame: bytes, *, replay: bool = False) -> None:
        """Queue the (shared) frame of a stamped event, or hand it to the transport's hot
        path when nothing is queued before it (`write_now`)."""
        self.last_activity = self.clock.monotonic()
        outbox = self.outbox
        outbox.trace = event.trace
        write_now = self.write_now
        if write_now is not None and not replay and write_now(frame, event.ms):
            return
        outbox.put(frame, key=event.key, tick=event.tick, ms=event.ms, replay=replay)

    def send_control(self, type_: str, data: dict[str, Any], stream: str | None = None) -> None:
        self.outbox.put(self.codec.control_frame(type_, data, stream))

    def close(self, reason: str) -> None:
        """Ask the transport to close: nothing more is queued."""
        if self.close_reason is None:
            self.close_reason = reason
        self.outbox.close(reason)

    def wrote(self) -> None:
        """The transport wrote bytes to the socket."""
        self.last_write = self.clock.monotonic()

    def received(self) -> None:
        """The client sent something (WebSocket message)."""
        self.last_activity = self.clock.monotonic()

    def authenticated_until(self, expires_at: float | None) -> None:
        """The connection's credentials are valid until `expires_at` (unix seconds; None =
        they do not expire). The transport's task must look at `next_deadline` again."""
        self.expires_at_ms = None if expires_at is None else round(expires_at * 1000)

    def expired(self) -> bool:
        return self.expires_at_ms is not None and self.clock.wall_ms() >= self.expires_at_ms

    def next_deadline(self) -> float:
        """Monotonic time at which `on_timer` has something to do."""
        deadline = min(self.last_write + self.keepalive_s, self.last_activity + self.idle_timeout_s)
        if self.expires_at_ms is not None:
            clock = self.clock
            deadline = min(deadline, clock.monotonic() + (self.expires_at_ms - clock.wall_ms()) / 1000)
        release = self.outbox.release_at()
        return deadline if release is None else min(deadline, release)

    def on_timer(self) -> TimerAction:
        if self.expired():
            data = {"message": AUTH_EXPIRED_MESSAGE, "timestamp": iso_timestamp(self.clock.wall_ms())}
            self.send_control(AUTH_EXPIRED_EVENT, data)
            self.close(CloseReason.AUTH_EXPIRED)
            return TimerAction.AUTH_EXPIRED
        now = self.clock.monotonic()
        release = self.outbox.release_at()
        if release is not None and now >= release:
            self.outbox.release()
            return TimerAction.RELEASE
        if now >= self.last_activity + self.idle_timeout_s:
            self.close(CloseReason.IDLE_TIMEOUT)
            return TimerAction.IDLE_CLOSE
        if now >= self.last_write + self.keepalive_s:
            frame = self.codec.keepalive_frame()
            if frame is not None and not self.outbox:
                self.outbox.put(frame, event=False)
            self.last_write = now
            return TimerAction.KEEPALIVE
        return TimerAction.NONE
