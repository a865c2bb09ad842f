"""One accepted WebSocket (SPEC 6): many streams on one socket.

    reader:  size bound -> command rate -> decode -> parse (wire/ws.py) -> run (commands.py)
    writer:  the outbox frame by frame (server/writer.py), ping frames (pings.py), timers
    close:   a reason on the core `Connection`, a close code for it (codes.py)

Replies (`subscribed`, `error`, `pong`...) go through the same outbox as events: one
order, one bound. The connection counts against the user's cap (with SSE) once it is
authenticated as a user, or at its first subscription when anonymous. A slow consumer is
closed with 4008 even while the writer waits on a peer that stopped reading: the writer is
aborted and the close frame queued behind what the server still buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tickwire import codes
from tickwire.codes import CloseReason, close_code
from tickwire.core.streams import Principal
from tickwire.drivers.asgi import close_text
from tickwire.drivers.base import Received, WebSocketDriver
from tickwire.errors import DecodeError, ProtocolError
from tickwire.server.admission import Admission
from tickwire.server.streaming import ClientIds, Flusher
from tickwire.server.writer import Writer
from tickwire.server.ws.commands import Commands
from tickwire.server.ws.pings import Pinger
from tickwire.wire.codecs import FramedCodec, WSCodec
from tickwire.wire.ws import CommandLimits, Subscribe, TokenBucket, error, error_message, parse_command

log = logging.getLogger("tickwire.ws")


class WSSession:
    def __init__(
        self,
        admission: Admission,
        driver: WebSocketDriver,
        codec: WSCodec,
        principal: Principal,
        *,
        client_ids: ClientIds,
        correlation_id: str,
        flusher: Flusher,
    ) -> None:
        node = admission.node
        settings = node.settings
        clock = node.clock
        self.admission = admission
        self.driver = driver
        self.codec: WSCodec = FramedCodec(codec) if driver.framed else codec
        self.metrics = node.metrics.ws
        self.writer = Writer(driver, flusher, clock, node.metrics.latency["ws"], frames=True)
        self.conn = admission.connection(
            client_id=client_ids.next(principal.user, "ws", clock.wall_ms()),
            user=principal.user,
            transport="ws",
            codec=self.codec,
            notify=self.writer.notify,
            ip=driver.peer,
            correlation_id=correlation_id,
            expires_at=principal.expires_at,
        )
        self.writer.attach(self.conn)
        self.pinger: Pinger | None = None
        if driver.can_ping:
            self.pinger = Pinger(self.conn, driver, clock, settings.ws_ping_s, self.metrics)
            self.writer.timer = self.pinger
        self.max_message_bytes = settings.ws_max_message_bytes
        self.max_commands_per_s = settings.ws_max_commands_per_s
        self.bucket = TokenBucket(clock, settings.ws_max_commands_per_s)
        self.limits = CommandLimits.from_settings(settings)
        self.rejected_in_a_row = 0
        self.close_text: str | None = None
        self.commands = Commands(self, principal, client_ids)

    @property
    def log_extra(self) -> dict[str, Any]:
        conn = self.conn
        return {"client_id": conn.client_id, "correlation_id": conn.correlation_id, "user": conn.user}

    async def run(self, initial: Subscribe | None = None) -> None:
        """Serve the socket until it closes; `initial` is run first (the `?streams=` query)."""
        self.metrics.sockets.inc()
        self.commands.start()
        log.info("ws connected", extra={**self.log_extra, "codec": self.codec.subprotocol})
        writer = asyncio.create_task(self._write(), name=f"tickwire-ws-{self.conn.client_id}")
        try:
            if initial is not None:
                await self.commands.subscribe(initial)
            await self._read_loop()
        finally:
            self.conn.close(CloseReason.CLIENT_GONE)  # kept only when nothing closed it before
            if not writer.done():
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self._ended()

    def _ended(self) -> None:
        self.writer.detach()  # no reference cycle outlives the socket
        self.commands.stop()
        del self.commands  # it refers back to the session
        if self.pinger is not None:
            self.pinger.done()
        self.metrics.sockets.dec()
        reason = self.conn.outbox.closed or CloseReason.CLIENT_GONE
        known = reason in codes.CLOSE_FOR_REASON
        self.metrics.closes.labels(close_code(reason).name if known else reason).inc()
        rtt = self.pinger.rtt if self.pinger is not None else None
        log.info(
            "ws closed",
            extra={
                **self.log_extra,
                "reason": reason,
                "rtt_ms": None if rtt is None else round(rtt * 1000, 3),
            },
        )

    async def _write(self) -> None:
        try:
            await self.writer.run()
        except Exception:
            log.exception("ws writer failed", extra=self.log_extra)
            self.conn.close(CloseReason.INTERNAL)
        reason = self.conn.outbox.closed or CloseReason.INTERNAL
        if reason != CloseReason.CLIENT_GONE:
            code = close_code(reason)
            await self.driver.close(code, self.close_text or code.reason)

    def close(self, reason: CloseReason, text: str | None = None) -> None:
        if self.conn.outbox.closed is None and text is not None:
            self.close_text = close_text(text)
        self.conn.close(reason)

    def reply(self, message: dict[str, Any]) -> None:
        """Queue a reply behind what is already queued (bounded like events)."""
        if message.get("type") == "error":
            self.metrics.errors.labels(message["code"]).inc()
        self.conn.outbox.put(self.codec.encode(message), event=False)

    # -- reader ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            received = await self.driver.receive()
            if received is None:
                return
            if received.pong is not None:
                if self.pinger is not None:
                    self.pinger.on_pong(received.pong)
                continue
            if self.conn.closing:
                continue  # until the close handshake ends
            try:
                await self._on_message(received)
            except Exception:  # a bug must cost this connection at most, never the server
                log.exception("ws command failed", extra=self.log_extra)
                self.close(CloseReason.INTERNAL)

    async def _on_message(self, received: Received) -> None:
        text, data = received.text, received.data
        frame: str | bytes | None = text if text is not None else data
        if frame is None:
            return
        self.conn.received()
        if _too_big(frame, self.max_message_bytes):
            self.close(CloseReason.POLICY, f"message too big: at most {self.max_message_bytes} bytes")
            return
        if not self._take_command():
            return
        if (text is None) != self.codec.binary:
            kind = "binary" if self.codec.binary else "text"
            self.reply(error(codes.BAD_REQUEST, f"{self.codec.subprotocol} takes {kind} frames"))
            return
        try:
            command = parse_command(self.codec.decode(frame), self.limits)
        except DecodeError as exc:
            self.reply(error(codes.BAD_REQUEST, str(exc)[:200]))
            return
        except ProtocolError as exc:
            self.reply(error_message(exc))
            return
        await self.commands.run(command)

    def _take_command(self) -> bool:
        """The command rate: an `error` beyond it, a 1008 close after too many in a row."""
        if self.bucket.take():
            self.rejected_in_a_row = 0
            return True
        self.rejected_in_a_row += 1
        limit = self.max_commands_per_s
        if self.rejected_in_a_row > 2 * limit:
            self.close(CloseReason.POLICY, f"too many commands: at most {limit} per second")
        else:
            self.reply(
                error(
                    codes.RATE_LIMITED,
                    f"too many commands: at most {limit} per second; this one was not executed",
                )
            )
        return False


def _too_big(frame: str | bytes, limit: int) -> bool:
    if isinstance(frame, bytes):
        return len(frame) > limit
    if len(frame) > limit:
        return True
    return len(frame) * 4 > limit and len(frame.encode()) > limit
