"""One upstream connection: its state machine, demand, statistics and command queue.

    run: CONNECTING -> open + auth + subscribe everything -> CONNECTED -> session (session.py)
         until it ends: Stale -> STALE; lost -> RECONNECTING, or POLLING (polling.py, with a
         rest_url, after `fallback_after` failed attempts); wait the backoff delay
         (1 s -> 60 s +-20%, client/backoff.py), try again; a connection that opened resets
         the count and the delay; `max_attempts` failed attempts in a row, or refused
         credentials -> FAILED (polling stops too)

Every state change is published as `provider:status` (status.py) through the same batcher
as the data. Subscription changes (`acquire` / `release`, called from the hub's demand
hook through the manager) queue a sync command; the open session sends them in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from tickwire.client.backoff import Backoff, BackoffPolicy
from tickwire.upstream.adapters.base import Adapter
from tickwire.upstream.config import UpstreamConfig
from tickwire.upstream.demand import Demand
from tickwire.upstream.model import PRICE, AuthFailed, Frame, Update, UpstreamError
from tickwire.upstream.normalize import Normalizer
from tickwire.upstream.polling import Poller
from tickwire.upstream.publish import Publisher, PublishFn
from tickwire.upstream.runtime import Runtime
from tickwire.upstream.session import Stale, StreamSession, open_socket, subscribe_frames
from tickwire.upstream.state import Change, StateMachine, UpstreamState
from tickwire.upstream.stats import ConnectionStats
from tickwire.upstream.status import status_request

log = logging.getLogger("tickwire.upstream")
S = UpstreamState
SYNC = "sync"
RECONNECT = "reconnect"


class UpstreamConnection:
    def __init__(
        self,
        config: UpstreamConfig,
        adapter: Adapter,
        publish: PublishFn,
        runtime: Runtime | None = None,
        *,
        node_id: str = "",
        instance: str | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.adapter = adapter
        self.runtime = runtime = runtime or Runtime()
        self.node_id = node_id
        self.instance = instance or config.name
        self.stats = ConnectionStats()
        limit = min(config.max_symbols, adapter.connection_limit or config.max_symbols)
        self.demand = Demand(config.symbols, config.linger_s, limit, runtime.clock)
        self.normalizer = Normalizer(config.name, self.stats, self.holds)
        self.publisher = Publisher(config.name, publish, self.stats)
        self.machine = StateMachine(self._changed)
        self.backoff = Backoff(
            BackoffPolicy(config.backoff_initial_s, config.backoff_max_s, 2.0, config.backoff_jitter),
            runtime.random,
        )
        self.commands: list[Any] = []  # SYNC, RECONNECT, or frames to send
        self.command_ready = asyncio.Event()
        self.session: StreamSession | None = None
        self.failures = 0  # failed attempts in a row
        self.attempts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._malformed_logged = 0

    @property
    def state(self) -> UpstreamState:
        return self.machine.state

    @property
    def state_code(self) -> int:
        return self.machine.state.code

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self.publisher.run(), name=f"upstream-{self.name}-publish"),
            asyncio.create_task(self._run(), name=f"upstream-{self.name}"),
        ]

    async def stop(self, *, standby: bool = False) -> None:
        """Close everything; `standby` (a leader_only upstream losing its lease) says so."""
        tasks, self._tasks = self._tasks, []
        await self._stop_polling()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.session = None
        if standby and self.state is not S.STANDBY:
            self.machine.move(S.STANDBY, "another node holds this upstream")

    def reconnect(self) -> None:
        """Drop the connection and try again at once (FAILED: start over)."""
        if self.state is S.FAILED:
            self._tasks = [t for t in self._tasks if not t.done()]
            self._tasks.append(asyncio.create_task(self._run(), name=f"upstream-{self.name}"))
        else:
            self.command(RECONNECT)

    # -- demand and commands -------------------------------------------------------------

    def acquire(self, symbol: str) -> None:
        self.demand.acquire(symbol)
        self.command(SYNC)

    def release(self, symbol: str) -> None:
        self.demand.release(symbol)
        self.command(SYNC)

    def holds(self, symbol: str) -> bool:
        demand = self.demand
        return symbol in demand.held or symbol in demand.refs or symbol in demand.pinned

    def command(self, command: Any) -> None:
        if command is SYNC and SYNC in self.commands:
            return
        self.commands.append(command)
        self.command_ready.set()

    def take_commands(self) -> list[Frame]:
        """Frames to send now; raises when a reconnect was asked for."""
        commands, self.commands = self.commands, []
        if RECONNECT in commands:
            raise UpstreamError("reconnect requested")
        return [f for c in commands if isinstance(c, list) for f in c]

    def subscribe_all(self) -> list[Frame]:
        symbols = self.demand.resubscribe()
        return subscribe_frames(self, symbols, [], fresh=True)

    def sync(self) -> list[Frame]:
        added, removed = self.demand.flush()
        for symbol in removed:
            self.normalizer.forget(symbol)
        if added or removed:
            self.publisher.offer(status_request(self, self.machine.reason), force=True)
        return subscribe_frames(self, added, removed, fresh=False)

    # -- data ----------------------------------------------------------------------------

    def deliver(self, updates: Sequence[Update], now_ms: int) -> None:
        accept, offer = self.normalizer.accept, self.publisher.offer
        for update in updates:
            request = accept(update, now_ms)
            if request is not None:
                offer(request, update.symbol if request.type == PRICE else None)

    def malformed(self, what: str, *, exc_info: bool = False) -> None:
        self.stats.drop("malformed")
        if self._malformed_logged < 10 or exc_info:  # the count is in the metrics; the log stays quiet
            self._malformed_logged += 1
            log.warning(
                "malformed upstream message", extra={"upstream": self.name, "error": what}, exc_info=exc_info
            )

    def provider_error(self, text: str) -> None:
        self.stats.errors += 1
        log.warning("upstream error", extra={"upstream": self.name, "error": self.scrub(text)})

    def scrub(self, text: str) -> str:
        """`text` without the adapter's secrets (reasons and logs may quote URLs)."""
        for secret in self.adapter.secrets:
            text = text.replace(secret, "[REDACTED]")
        return text

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        self.failures = 0
        self.machine.move(S.CONNECTING, "starting")
        try:
            while True:
                reason = await self._attempt()
                if reason is None:
                    return  # failed
                if self.failures >= self.config.max_attempts:
                    self._fail(f"{self.failures} connection attempts failed in a row; last: {reason}")
                    return
                if self.adapter.can_poll and self.failures >= self.config.fallback_after:
                    self.machine.move(S.POLLING, reason)
                    self._start_polling()
                else:
                    self.machine.move(S.RECONNECTING, reason)
                await self.runtime.sleep(self.backoff.next())
        finally:
            await self._stop_polling()

    async def _attempt(self) -> str | None:
        """One connection, served until it ends; why it ended (None: failed for good)."""
        if self.attempts:
            self.stats.reconnects += 1
        self.attempts += 1
        connected = False
        try:
            ws = await open_socket(self)
            self.session = session = StreamSession(self, ws)
            try:
                await session.start()
                connected = True
                self.failures = 0
                self.backoff.reset()
                self.machine.move(S.CONNECTED, "streaming")
                await self._stop_polling()
                await session.run()
            finally:
                self.session = None
                await session.close()
        except AuthFailed as exc:
            self._fail(str(exc))
            return None
        except Stale as exc:
            self.machine.move(S.STALE, str(exc))
            return str(exc)
        except UpstreamError as exc:
            if not connected:
                self.failures += 1
            return str(exc)
        return "the connection ended"  # pragma: no cover - run() only ends by raising

    def _fail(self, reason: str) -> None:
        log.error("upstream failed", extra={"upstream": self.name, "reason": reason})
        self.machine.move(S.FAILED, reason)

    def _start_polling(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(Poller(self).run(), name=f"upstream-{self.name}-poll")

    async def _stop_polling(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    def _changed(self, change: Change) -> None:
        if change.new is not S.STANDBY:
            self.publisher.offer(status_request(self, change.reason), force=True)
        log.info(
            "upstream state",
            extra={"upstream": self.name, "state": change.new.value, "reason": self.scrub(change.reason)},
        )
