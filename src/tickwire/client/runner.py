"""The connection loop: the one task that owns a client's session.

It opens a session on the configured transport with every wanted stream at its cursor's
resume id, then pumps: receive a `WireEvent` (with stale detection) and hand it to the
router (routing.py), which may make the pump wait (backpressure). A session that fails is
closed and the runner reconnects after a backoff delay (backoff.py); after
`fallback_after` streaming failures in a row it polls instead, probing the streaming
transport every `fallback_probe_s`, and switches back as soon as a probe opens.
`max_attempts` failed attempts in a row end the client (`RetriesExhausted`).

Tokens (credentials.py): every attempt first asks `get_token`, if any, for the token to
send. A session that ends with `AuthExpired` (the server's `auth:expired`, a 401 or 4001
with a provider) is reopened at once with the fresh token; an attempt refused that way is
retried with backoff but counts neither towards `max_attempts` nor the fallback. While a
session is open, a second task asks for a new token shortly before the current one's `exp`
and hands it to the session (a WebSocket re-authenticates in place and stays open).

An unreachable server is never silent: every failed attempt moves the state
(`reconnecting`, with the reason), the first failure and each new kind of failure are
logged as warnings, `last_error` says what failed last, and with `first_connect_timeout_s`
a client that never connected closes with `ConnectTimeout` (raised by `events()`,
`ready()`, `wait_for_state()`).

Subscription changes made while a session is open are sent on it by a second task
(`subscriptions_changed`), batched over `batch_window_s`; a refusal ends the client.
Every move is reported through the client's `Status` (status.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tickwire.client.backoff import Backoff, Random
from tickwire.client.config import ClientConfig
from tickwire.client.errors import (
    AuthExpired,
    ClientError,
    ConnectTimeout,
    RetriesExhausted,
    StaleConnection,
    StreamRefused,
    TransportError,
)
from tickwire.client.events import WireEvent
from tickwire.client.gaps import Cursors
from tickwire.client.metrics import ClientMetrics
from tickwire.client.routing import Router
from tickwire.client.state_machine import ConnectionState
from tickwire.client.status import Status
from tickwire.client.subscriptions import SubscriptionManager
from tickwire.client.transports import Endpoint, Session, Transport

log = logging.getLogger("tickwire.client")

Sleep = Callable[[float], Awaitable[None]]
TransportFactory = Callable[[str, Endpoint], Transport]
S = ConnectionState


class Runner:
    """Connects, reconnects, falls back and comes back; feeds the router."""

    def __init__(
        self,
        *,
        name: str,
        config: ClientConfig,
        endpoint: Endpoint,
        factory: TransportFactory,
        sleep: Sleep,
        random: Random | None,
        status: Status,
        metrics: ClientMetrics,
        subs: SubscriptionManager,
        cursors: Cursors,
        router: Router,
        on_finish: Callable[[ClientError | None], None],
    ) -> None:
        self.name = name
        self.config = config
        self._endpoint = endpoint
        self._factory = factory
        self._sleep = sleep
        self._random = random
        self._status = status
        self._metrics = metrics
        self._subs = subs
        self._cursors = cursors
        self._router = router
        self._on_finish = on_finish
        self._task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._session: Session | None = None
        self._fatal: ClientError | None = None
        self._handled_at = 0.0
        self._session_version = -1
        self._connected_once = False
        self._last_kind = ""
        self._deadline: asyncio.TimerHandle | None = None
        self.fallback_reason: str | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"tickwire-client-{self.name}")
        timeout = self.config.first_connect_timeout_s
        if timeout is not None:
            self._deadline = asyncio.get_running_loop().call_later(
                timeout, self._first_connect_expired, timeout
            )

    def _first_connect_expired(self, timeout: float) -> None:
        if self._connected_once or self._task is None or self._task.done():
            return
        self._fatal = ConnectTimeout(
            f"no connection to {self._endpoint.base_url} within {timeout:g} s; last: {self.last_error or 'none'}"
        )
        self._task.cancel()

    def _failed(self, exc: BaseException) -> None:
        """Say that an attempt failed: in the log (as a warning the first time and when the
        reason changes) and in `last_error`."""
        text = str(exc)
        kind = type(exc).__name__ + text.split(":", 2)[0]
        if self.last_error is None or kind != self._last_kind:
            log.warning("client %s: cannot connect: %s (retrying with backoff)", self.name, text)
        else:
            log.info("client %s: cannot connect: %s", self.name, text)
        self._last_kind = kind
        self.last_error = text

    async def stop(self) -> None:
        """Cancel the runner (it closes its session and finishes the client) and wait."""
        for task in (self._sync_task, self._task):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task})

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        error: ClientError | None = None
        try:
            await self._connect_loop()
        except ClientError as exc:
            error = exc
        except asyncio.CancelledError:
            error = self._fatal
        except Exception as exc:  # a bug: close loudly rather than hang
            log.exception("client runner failed")
            error = ClientError(f"client failed: {exc!r}")
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
            await self._drop_session()
            await self._router.close()
            self._on_finish(error)

    async def _connect_loop(self) -> None:
        primary = self._factory(self.config.transport, self._endpoint)
        poll = self._factory("poll", self._endpoint) if primary.streaming else primary
        backoff = Backoff(self.config.backoff, self._random)
        failures = 0
        attempts = 0
        self._status.move(S.CONNECTING, f"connecting over {primary.name}", primary.name)
        while True:
            if attempts:
                self._metrics.reconnect(primary.name)
            attempts += 1
            try:
                session = await self._open(primary)
            except AuthExpired as exc:  # a fresh token is asked for before the next attempt
                self._failed(exc)
                self._status.move(S.RECONNECTING, str(exc), primary.name)
                await self._sleep(self._delay(backoff, exc))
                continue
            except TransportError as exc:
                self._failed(exc)
                failures += 1
                if self._fallback_due(primary, failures):
                    self.fallback_reason = f"{primary.name} failed {failures} times in a row; last: {exc}"
                    session = await self._fallback(primary, poll, backoff)
                else:
                    self._give_up_if(failures, exc)
                    self._status.move(S.RECONNECTING, str(exc), primary.name)
                    await self._sleep(self._delay(backoff, exc))
                    continue
            failures = 0
            backoff.reset()
            self.fallback_reason = None
            self._connected_once = True
            self._status.move(S.CONNECTED, f"{session.transport} connected", session.transport)
            try:
                await self._serve(session)
            except TransportError as exc:
                log.info("client %s: session lost: %s", self.name, exc)
                self._status.move(S.RECONNECTING, str(exc), primary.name)
                await self._drop_session()
                if not isinstance(exc, AuthExpired):  # else reconnect now, with a fresh token
                    await self._sleep(self._delay(backoff, exc))

    def _fallback_due(self, primary: Transport, failures: int) -> bool:
        after = self.config.fallback_after
        return primary.streaming and after > 0 and failures >= after

    def _give_up_if(self, failures: int, exc: TransportError) -> None:
        limit = self.config.max_attempts
        if limit != -1 and failures >= limit:
            raise RetriesExhausted(f"{failures} connection attempts failed in a row; last: {exc}") from exc

    @staticmethod
    def _delay(backoff: Backoff, exc: TransportError) -> float:
        delay = backoff.next()
        return max(delay, exc.retry_after) if exc.retry_after is not None else delay

    async def _open(self, transport: Transport) -> Session:
        await self._endpoint.credentials.refresh()
        wanted = self._subs.wanted()
        return await transport.open(wanted, self._cursors.resume_ids(wanted))

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- fallback to polling -------------------------------------------------------------------

    async def _fallback(self, primary: Transport, poll: Transport, backoff: Backoff) -> Session:
        """Poll until a probe of the streaming transport opens; return that session."""
        self._metrics.fallback()
        reason = self.fallback_reason or "streaming unavailable"
        log.warning("client %s: falling back to polling: %s", self.name, reason)
        self._status.move(S.FALLBACK, reason, poll.name)
        poller = asyncio.create_task(self._poll_until_cancelled(poll, backoff), name="tickwire-fallback")
        sleeper: asyncio.Future[None] | None = None
        try:
            while True:
                sleeper = asyncio.ensure_future(self._sleep(self.config.fallback_probe_s))
                await asyncio.wait({poller, sleeper}, return_when=asyncio.FIRST_COMPLETED)
                if poller.done():
                    poller.result()  # raises what ended polling (refused, retries exhausted)
                    raise ClientError("polling ended")  # pragma: no cover - it never returns
                self._metrics.reconnect(primary.name)
                try:
                    session = await self._open(primary)
                except TransportError as exc:
                    self.fallback_reason = f"{reason}; probe: {exc}"
                    continue
                return session
        finally:
            waits: set[asyncio.Future[Any]] = {poller}
            if sleeper is not None:
                sleeper.cancel()
                waits.add(sleeper)
            poller.cancel()
            await asyncio.wait(waits)
            if self._session is not None and self._session.transport == poll.name:
                await self._drop_session()

    async def _poll_until_cancelled(self, poll: Transport, backoff: Backoff) -> None:
        failures = 0
        while True:
            try:
                session = await self._open(poll)
            except TransportError as exc:
                self._failed(exc)
                if not isinstance(exc, AuthExpired):
                    failures += 1
                    self._give_up_if(failures, exc)
                await self._sleep(self._delay(backoff, exc))
                continue
            failures = 0
            backoff.reset()
            self._connected_once = True
            try:
                await self._serve(session)
            except TransportError as exc:
                log.info("client %s: polling failed: %s", self.name, exc)
                await self._drop_session()
                if not isinstance(exc, AuthExpired):
                    await self._sleep(self._delay(backoff, exc))

    # -- a session ---------------------------------------------------------------------------

    async def _serve(self, session: Session) -> None:
        self._session = session
        self._session_version = -1
        loop = asyncio.get_running_loop()
        self._handled_at = loop.time()
        self.subscriptions_changed()
        refresher = loop.create_task(self._refresh_tokens(session), name=f"tickwire-token-{self.name}")
        handle = self._router.handle_batch
        try:
            while True:
                batch = await self._receive(session)
                await handle(batch, session.transport)
                self._handled_at = loop.time()
        finally:
            refresher.cancel()

    async def _receive(self, session: Session) -> list[WireEvent]:
        stale = self.config.stale_timeout_s
        if stale <= 0:
            return await session.receive_batch()
        loop = asyncio.get_running_loop()
        while True:
            since = max(session.last_activity, self._handled_at)
            remaining = since + stale - loop.time()
            if remaining <= 0:
                raise StaleConnection(f"{session.transport}: no bytes for {stale:g} s")
            try:
                async with asyncio.timeout(remaining):
                    return await session.receive_batch()
            except TimeoutError:
                continue

    async def _refresh_tokens(self, session: Session) -> None:
        """Shortly before the token's `exp`, get a new one and hand it to the open session."""
        credentials = self._endpoint.credentials
        while True:
            due = credentials.refresh_in()
            if due is None:
                return
            await asyncio.sleep(max(0.0, due))
            try:
                token = await credentials.refresh()
            except TransportError as exc:  # the provider failed: the expiry will reconnect
                log.warning("client %s: token refresh failed: %s", self.name, exc)
                await asyncio.sleep(5.0)
                continue
            self._metrics.token_refresh()
            if token is not None and await session.reauthenticate(token):
                log.info("client %s: %s re-authenticated with a fresh token", self.name, session.transport)

    # -- subscription changes ------------------------------------------------------------------

    def subscriptions_changed(self) -> None:
        """The wanted streams changed: send the change on the open session, if any."""
        if self._session is None or (self._sync_task is not None and not self._sync_task.done()):
            return
        with contextlib.suppress(RuntimeError):  # no running loop: picked up by the next session
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_subscriptions())

    async def _sync_subscriptions(self) -> None:
        if self.config.batch_window_s > 0:
            await asyncio.sleep(self.config.batch_window_s)
        while True:
            session = self._session
            if session is None:
                return
            version = self._subs.version
            if version == self._session_version:
                return
            wanted = self._subs.wanted()
            try:
                await session.update(wanted, self._cursors.resume_ids(wanted))
            except StreamRefused as exc:
                self._fatal = exc
                if self._task is not None:
                    self._task.cancel()
                return
            except TransportError as exc:  # the session is failing: the next one subscribes all
                log.info("client %s: subscription update failed: %s", self.name, exc)
                return
            if session is self._session:
                self._session_version = version
