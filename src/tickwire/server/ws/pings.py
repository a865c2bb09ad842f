"""WebSocket ping frames (SPEC 6): every TICKWIRE_WS_PING_S, payload the unix ms; the pong
gives the round trip; two pings in a row without a pong close the connection (1011).

Only where the driver can send ping frames (`tickwire serve` under uvicorn); elsewhere the
ASGI server's own keepalive applies and clients measure RTT with the `ping` command.
"""

from __future__ import annotations

from tickwire.codes import CloseReason
from tickwire.core.clock import Clock
from tickwire.core.connection import Connection
from tickwire.drivers.base import WebSocketDriver
from tickwire.metrics import WSMetrics

MISSED_PONGS_TO_CLOSE = 2


class Pinger:
    """The writer's extra timer on a WebSocket (server/writer.py `Timer`)."""

    def __init__(
        self, conn: Connection, driver: WebSocketDriver, clock: Clock, interval_s: float, metrics: WSMetrics
    ) -> None:
        self.conn = conn
        self.driver = driver
        self.clock = clock
        self.interval_s = interval_s
        self.metrics = metrics
        self.next_at = clock.monotonic() + interval_s
        self.out: dict[bytes, float] = {}  # payload -> monotonic send time, at most 2
        self.missed = 0
        self.rtt: float | None = None

    def due(self) -> float:
        return self.next_at

    async def fire(self, now: float) -> None:
        self.next_at = now + self.interval_s
        if self.out:  # the last ping is still unanswered
            self.missed += 1
            self.metrics.missed_pongs.inc()
            if self.missed == 1:
                self.metrics.lagging.inc()
            if self.missed >= MISSED_PONGS_TO_CLOSE:
                self.conn.close(CloseReason.PING_TIMEOUT)
                return
        payload = str(self.clock.wall_ms()).encode()
        if len(self.out) >= 2:
            self.out.pop(next(iter(self.out)))
        self.out[payload] = now
        await self.driver.ping(payload)

    def on_pong(self, payload: bytes) -> None:
        sent = self.out.pop(payload, None)
        if sent is None:
            return
        self.out.clear()  # this pong answers the older pings too
        self.rtt = self.clock.monotonic() - sent
        self.metrics.rtt.observe(self.rtt)
        if self.missed:
            self.missed = 0
            self.metrics.lagging.dec()

    def done(self) -> None:
        """The connection ended: it no longer counts as lagging."""
        if self.missed:
            self.missed = 0
            self.metrics.lagging.dec()
