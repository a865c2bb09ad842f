"""A client connection as the core sees it: identity, outbox, subscriptions, timers.

Transports (SSE, WebSocket) own the socket; the core owns what goes into it. The
timer rules live here so that keepalive and idle timeouts are tested with a fake
clock:

- keepalive: nothing written for `keepalive_s` -> the transport writes its keepalive
- idle: no event delivered and nothing received for `idle_timeout_s` -> close
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from tickwire.codes import CloseReason
from tickwire.core.clock import Clock
from tickwire.core.event import Event
from tickwire.core.outbox import DeliveryStats, Outbox

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
        self.outbox = Outbox(outbox_limit, notify, stats, conflate=conflate)
        self.subscriptions: dict[str, Subscription] = {}
        now = clock.monotonic()
        self.opened_at = now
        self.last_write = now
        self.last_activity = now
        self.close_reason: str | None = None
        Connection.alive += 1

    def __del__(self) -> None:
        Connection.alive -= 1

    @property
    def closing(self) -> bool:
        return self.outbox.closed is not None

    def send_event(self, event: Event, frame: bytes, *, replay: bool = False) -> None:
        """Queue the (shared) frame of a stamped event."""
        self.outbox.put(frame, key=event.key, tick=event.tick, ms=event.ms, replay=replay)
        self.last_activity = self.clock.monotonic()

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

    def next_deadline(self) -> float:
        """Monotonic time at which `on_timer` has something to do."""
        return min(self.last_write + self.keepalive_s, self.last_activity + self.idle_timeout_s)

    def on_timer(self) -> TimerAction:
        now = self.clock.monotonic()
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
