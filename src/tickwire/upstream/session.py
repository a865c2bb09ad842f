"""One open WebSocket to a provider: handshake and auth, then three tasks until it ends.

    reader     every message -> adapter.parse -> updates (normalised, queued for publishing),
               readiness, provider errors (counted), refused credentials (AuthFailed)
    keepalive  a ping every `ping_s` (the protocol's, else a WebSocket ping frame); no message
               (pongs included) for `stale_s` -> Stale
    commands   the connection's command queue: subscription changes (after the batch window,
               in batches, or the whole set for protocols that replace it), replies the
               adapter asked for, a reconnect; and removals whose linger ran out

The first task to end ends the session; the connection (connection.py) decides what next.
Timers read the runtime's clock and sleep (runtime.py), so tests move time by hand. The
handshake (and, for providers that answer auth first, the wait for that answer) is bounded
by `connect_timeout_s` of real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Origin, Subprotocol

from tickwire.upstream.demand import batches
from tickwire.upstream.model import AuthFailed, Frame, Malformed, UpstreamError

if TYPE_CHECKING:
    from tickwire.upstream.connection import UpstreamConnection

log = logging.getLogger("tickwire.upstream")

MESSAGE_TOO_BIG = 1009


class Stale(UpstreamError):
    """No message (pongs included) for `stale_s`."""


async def open_socket(conn: UpstreamConnection) -> ClientConnection:
    adapter, config = conn.adapter, conn.config
    spec = adapter.connect()
    try:
        return await connect(
            spec.url,
            additional_headers=Headers(spec.headers),
            subprotocols=[Subprotocol(p) for p in spec.subprotocols] or None,
            origin=Origin(spec.origin) if spec.origin else None,
            open_timeout=config.connect_timeout_s,
            ping_interval=None,  # keepalive below, on the runtime's clock
            close_timeout=1.0,
            max_size=config.max_message_bytes,
            max_queue=256,
            compression=None,
            proxy=None,
            user_agent_header="tickwire-upstream",
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise AuthFailed(
                f"the provider refused the credentials at the handshake (HTTP {status})"
            ) from None
        raise UpstreamError(f"the provider refused the WebSocket (HTTP {status})") from None
    except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
        raise UpstreamError(conn.scrub(f"cannot connect: {type(exc).__name__}: {exc}")) from None


class StreamSession:
    def __init__(self, conn: UpstreamConnection, ws: ClientConnection) -> None:
        self.conn = conn
        self.ws = ws
        self.clock = conn.runtime.clock
        self.last_seen = self.clock.monotonic()
        self.ready = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Authenticate (when the protocol answers that first) and subscribe everything."""
        conn = self.conn
        conn.adapter.reset()
        await self.send(conn.adapter.on_open())
        if conn.adapter.wait_ready:
            try:
                async with asyncio.timeout(conn.config.connect_timeout_s):
                    while not self.ready.is_set():
                        self.handle(await self._receive())
            except TimeoutError:
                raise UpstreamError("no answer to authentication within connect_timeout_s") from None
        await self.send(conn.subscribe_all())

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._read(), name=f"upstream-{self.conn.name}-read"),
            asyncio.create_task(self._keepalive(), name=f"upstream-{self.conn.name}-keepalive"),
            asyncio.create_task(self._commands(), name=f"upstream-{self.conn.name}-commands"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        raise UpstreamError("the session ended")  # pragma: no cover - the tasks only end by raising

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.ws.close()

    # -- reading -----------------------------------------------------------------------

    async def _receive(self) -> bytes:
        try:
            return await self.ws.recv(decode=False)
        except ConnectionClosed as exc:
            raise self._closed(exc) from None
        except (OSError, WebSocketException) as exc:
            raise UpstreamError(f"connection lost: {type(exc).__name__}") from None

    async def _read(self) -> None:
        while True:
            self.handle(await self._receive())

    def handle(self, frame: bytes) -> None:
        """One provider message (synchronous: nothing waits between parse and queueing)."""
        conn = self.conn
        stats = conn.stats
        stats.messages += 1
        stats.bytes += len(frame)
        now_ms = self.clock.wall_ms()
        stats.last_message_at = now_ms
        self.last_seen = self.clock.monotonic()
        try:
            parsed = conn.adapter.parse(frame, now_ms)
        except Malformed as exc:
            conn.malformed(str(exc))
            return
        except Exception:  # an adapter bug costs this message, never the connection
            conn.malformed("the adapter failed on a message", exc_info=True)
            return
        if parsed.updates:
            conn.deliver(parsed.updates, now_ms)
        if parsed.error:
            conn.provider_error(parsed.error)
        if parsed.reply:
            conn.command(parsed.reply)
        if parsed.fatal:
            raise AuthFailed(conn.scrub(parsed.fatal))
        if parsed.retry:
            raise UpstreamError(conn.scrub(parsed.retry))
        if parsed.ready:
            self.ready.set()

    def _closed(self, exc: ConnectionClosed) -> UpstreamError:
        frame = exc.rcvd or exc.sent
        code, reason = (frame.code, frame.reason) if frame is not None else (None, "")
        if exc.sent is not None and exc.sent.code == MESSAGE_TOO_BIG:
            self.conn.stats.drop("oversized")
            return UpstreamError(f"a message over max_message_bytes ({self.conn.config.max_message_bytes})")
        fatal = self.conn.adapter.closed(code, reason)
        if fatal is not None:
            return AuthFailed(self.conn.scrub(fatal))
        return UpstreamError(self.conn.scrub(f"the provider closed the connection ({code} {reason})".strip()))

    # -- keepalive -----------------------------------------------------------------------

    async def _keepalive(self) -> None:
        config, sleep = self.conn.config, self.conn.runtime.sleep
        last_ping = self.clock.monotonic()
        while True:
            now = self.clock.monotonic()
            stale_at = self.last_seen + config.stale_s
            if now >= stale_at:
                raise Stale(f"no message for {config.stale_s:g} s")
            ping_at = last_ping + config.ping_s
            if now >= ping_at:
                last_ping = now
                await self.send([self.conn.adapter.ping(self.clock.wall_ms())])
                continue
            await sleep(min(ping_at, stale_at) - now)

    def _pong(self, waiter: asyncio.Future[float]) -> None:
        if not waiter.cancelled() and waiter.exception() is None:
            self.last_seen = self.clock.monotonic()

    # -- commands ------------------------------------------------------------------------

    async def _commands(self) -> None:
        conn, runtime = self.conn, self.conn.runtime
        while True:
            deadline = conn.demand.next_deadline()
            timeout = None if deadline is None else deadline - self.clock.monotonic()
            if await runtime.wait(conn.command_ready, timeout) and conn.config.batch_window_s > 0:
                await runtime.sleep(conn.config.batch_window_s)
            conn.command_ready.clear()
            await self.send(conn.take_commands())
            await self.send(conn.sync())

    async def send(self, frames: list[Frame]) -> None:
        for frame in frames:
            try:
                if frame.ping:
                    asyncio.ensure_future(await self.ws.ping()).add_done_callback(self._pong)
                else:
                    await self.ws.send(frame.data)
            except ConnectionClosed as exc:
                raise self._closed(exc) from None
            except (OSError, WebSocketException, RuntimeError) as exc:
                raise UpstreamError(f"send failed: {type(exc).__name__}") from None


def subscribe_frames(
    conn: UpstreamConnection, added: list[str], removed: list[str], fresh: bool
) -> list[Frame]:
    """The messages that take the provider from what it held to `conn.demand.held`."""
    adapter = conn.adapter
    if adapter.replaces_set:
        if not (added or removed or fresh):
            return []
        return adapter.replace(list(conn.demand.held), fresh)
    frames: list[Frame] = []
    for batch in batches(removed, adapter.batch_limit):
        frames += adapter.unsubscribe(batch)
    for batch in batches(added, adapter.batch_limit):
        frames += adapter.subscribe(batch)
    return frames
