"""The resilient client: one loop that connects, resumes, deduplicates, repairs gaps, falls
back to polling and comes back, and hands events to the user through a bounded queue.

    async with Client("http://127.0.0.1:8080", ["orders", "prices?symbols=AAPL"], token=t) as client:
        async for event in client.events():
            ...

Theory of operation. One runner task owns the connection (state_machine.py draws the
states). It opens a session on the configured transport with every wanted stream at its
cursor's resume id, then pumps: receive a `WireEvent` (with stale detection), decide with
the stream's cursor (gaps.py: deliver, duplicate, stale, or a gap candidate to check with
the events endpoint first), apply it to the local state, and put it in the delivery queue
(queue.py), which may make the pump wait: backpressure. A session that fails is closed
and the runner reconnects after a backoff delay (backoff.py); after `fallback_after`
streaming failures in a row it polls instead, probing the streaming transport every
`fallback_probe_s`, and switches back as soon as a probe opens. Cursors only move forward,
so a new session (or the switch between polling and streaming) resumes each stream where
the user's view of it is, and whatever arrives twice is dropped.

A `stream:reset` (the server could not resume: another epoch, history trimmed) resets the
stream's cursor, is delivered as an event and to `on_reset` callbacks, and the fresh
snapshot that follows replaces the local state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from tickwire.client.backoff import Backoff, Random
from tickwire.client.config import ClientConfig
from tickwire.client.errors import (
    ClientClosed,
    ClientError,
    RetriesExhausted,
    StaleConnection,
    StreamRefused,
    TransportError,
)
from tickwire.client.events import (
    CONNECTED,
    CONNECTION_LIMIT,
    RESET,
    ClientEvent,
    StreamSpec,
    WireEvent,
    as_spec,
    droppable,
    key_of,
    priority_of,
)
from tickwire.client.gaps import GapCheck, StreamCursor, Verdict, position_of
from tickwire.client.local_state import LocalState
from tickwire.client.metrics import ClientMetrics, ClientStats
from tickwire.client.poll import fetch_events
from tickwire.client.queue import DeliveryQueue, QueueClosed
from tickwire.client.state_machine import ConnectionState, StateChange, StateMachine
from tickwire.client.subscriptions import Handle, SubscriptionManager
from tickwire.client.transports import Endpoint, Session, Transport, create_transport

log = logging.getLogger("tickwire.client")

Sleep = Callable[[float], Awaitable[None]]
TransportFactory = Callable[[str, Endpoint], Transport]
S = ConnectionState


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Client:
    """A resilient consumer of tickwire streams over SSE, WebSocket or polling.

    `url` is the server's base address (`http://host:port`); `streams` are stream names with
    optional parameters (`"orders"`, `"prices?symbols=AAPL,MSFT"`, `"strategies/s1"`) held for
    the client's lifetime; more can be taken and released with `subscribe()`. Settings come
    from `config` (`ClientConfig`) with keyword overrides (`transport="ws"`, `token=...`).
    `last_event_ids` resumes streams after ids the caller kept. Time and randomness are
    injectable: `sleep` waits between attempts, `random` draws the jitter.
    """

    def __init__(
        self,
        url: str,
        streams: Iterable[str | StreamSpec] = (),
        *,
        config: ClientConfig | None = None,
        registry: CollectorRegistry | None = None,
        name: str = "tickwire",
        last_event_ids: Mapping[str, str] | None = None,
        sleep: Sleep | None = None,
        random: Random | None = None,
        transport_factory: TransportFactory | None = None,
        http: httpx.AsyncClient | None = None,
        **overrides: Any,
    ) -> None:
        config = config or ClientConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.base_url = url.rstrip("/")
        self.name = name
        self.metrics = ClientMetrics(registry, name)
        self.local = LocalState()
        self._machine = StateMachine()
        self._machine.listen(self._on_change)
        self._subs = SubscriptionManager()
        self._held = [self._subs.acquire(as_spec(s)) for s in streams]
        self._cursors: dict[str, StreamCursor] = {}
        for stream, event_id in (last_event_ids or {}).items():
            self._cursor(stream).seed(event_id)
        self._queue: DeliveryQueue[ClientEvent] = DeliveryQueue(
            config.queue_capacity,
            priority=lambda e: priority_of(e.type, e.data),
            droppable=lambda e: droppable(e.type, e.data),
            lane=lambda e: e.stream,
            key=self._conflation_key,
            on_drop=lambda e, reason: self.metrics.dropped(e.type, reason),
        )
        self._sleep: Sleep = sleep or asyncio.sleep
        self._random = random
        self._factory: TransportFactory = transport_factory or create_transport
        self._http = http
        self._owns_http = http is None
        self._task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._session: Session | None = None
        self._active: str = config.transport
        self._closing = False
        self._fatal: ClientError | None = None
        self._handled_at = 0.0
        self._session_version = -1
        self._reset_listeners: list[Callable[[ClientEvent], None]] = []
        self._waiters: list[tuple[frozenset[ConnectionState], asyncio.Future[None]]] = []
        self.fallback_reason: str | None = None
        self._subs.on_change = self._subscriptions_changed

    # -- public surface ------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._machine.state

    @property
    def state_reason(self) -> str:
        return self._machine.reason

    @property
    def transport(self) -> str:
        """The transport events flow over now ("poll" while in fallback)."""
        return self._active

    @property
    def stats(self) -> ClientStats:
        return self.metrics.stats

    @property
    def queued(self) -> int:
        return len(self._queue)

    def last_event_ids(self) -> dict[str, str | None]:
        """Each stream's resume id: pass it as `last_event_ids` to a later client."""
        return {name: cursor.resume_id for name, cursor in self._cursors.items()}

    def on_state_change(self, callback: Callable[[StateChange], None]) -> Callable[[], None]:
        """Call `callback(StateChange)` on every state change; returns an unsubscribe function."""
        return self._machine.listen(callback)

    def on_reset(self, callback: Callable[[ClientEvent], None]) -> None:
        """Call `callback(event)` when a stream is reset (history could not be resumed)."""
        self._reset_listeners.append(callback)

    def subscribe(
        self, stream: str, symbols: Iterable[str] | None = None, user_id: str | None = None
    ) -> Handle:
        """Read `stream` (and, on prices, `symbols`) until the handle is released. Handles for
        the same stream or symbol share one subscription. The change is sent at once when
        connected (batched), else with the next connection; a stream the server refuses
        (unknown, forbidden) closes the client with `StreamRefused`."""
        spec = as_spec(stream)
        if symbols is not None or user_id is not None:
            spec = StreamSpec(spec.name, frozenset(symbols) if symbols is not None else spec.symbols, user_id)
        return self._subs.acquire(spec)

    def references(self, stream: str, symbol: str | None = None) -> int:
        return self._subs.references(stream, symbol)

    async def start(self) -> None:
        if self._task is not None or self._closing:
            return
        if self._http is None:
            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=20),
                headers={"User-Agent": "tickwire-client"},
            )
        self._task = asyncio.create_task(self._run(), name=f"tickwire-client-{self.name}")

    async def close(self) -> None:
        """Stop: close the connection; `events()` ends once the queue is drained."""
        if self._closing:
            return
        self._closing = True
        for task in (self._sync_task, self._task):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task})
        if self._task is None:
            self._finish(None)
        if self._owns_http and self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Every delivered event, in order per stream; ends when the client is closed, raises
        the error that closed it (`StreamRefused`, `RetriesExhausted`)."""
        await self.start()
        while True:
            try:
                event = await self._queue.get()
            except QueueClosed:
                return
            self.metrics.queue_depth(len(self._queue))
            yield event

    async def wait_for_state(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the client is in one of `states`; returns it (wrap it in
        `asyncio.timeout` to bound the wait)."""
        wanted = frozenset(states)
        if self.state in wanted:
            return self.state
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (wanted, fut)
        self._waiters.append(entry)
        try:
            await fut
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
        return self.state

    # -- state -----------------------------------------------------------------------------

    def _move(self, state: ConnectionState, reason: str, transport: str) -> None:
        self._active = transport
        self._machine.move(state, reason, transport)

    def _on_change(self, change: StateChange) -> None:
        self.metrics.state(change.new, change.transport or self._active)
        log.info(
            "client %s: %s -> %s (%s)",
            self.name,
            change.old.value,
            change.new.value,
            change.reason,
            extra={"client": self.name, "transport": change.transport},
        )
        for wanted, fut in list(self._waiters):
            if change.new in wanted and not fut.done():
                fut.set_result(None)

    def _finish(self, error: ClientError | None) -> None:
        if self.state != S.CLOSED:
            reason = str(error) if error is not None else "closed"
            self._machine.move(S.CLOSED, reason, self._active)
        self._queue.close(error)
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(error or ClientClosed("client closed"))
                fut.exception()

    # -- the runner --------------------------------------------------------------------------

    def _endpoint(self) -> Endpoint:
        assert self._http is not None
        return Endpoint(self.base_url, self.config, self._http)

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
            await self._drop_session()
            self._finish(error)

    async def _connect_loop(self) -> None:
        endpoint = self._endpoint()
        primary = self._factory(self.config.transport, endpoint)
        poll = self._factory("poll", endpoint) if primary.streaming else primary
        backoff = Backoff(self.config.backoff, self._random)
        failures = 0
        attempts = 0
        self._move(S.CONNECTING, f"connecting over {primary.name}", primary.name)
        while True:
            if attempts:
                self.metrics.reconnect(primary.name)
            attempts += 1
            try:
                session = await self._open(primary)
            except TransportError as exc:
                failures += 1
                if self._fallback_due(primary, failures):
                    self.fallback_reason = f"{primary.name} failed {failures} times in a row; last: {exc}"
                    session = await self._fallback(primary, poll, backoff)
                else:
                    self._give_up_if(failures, exc)
                    self._move(S.RECONNECTING, str(exc), primary.name)
                    await self._sleep(self._delay(backoff, exc))
                    continue
            failures = 0
            backoff.reset()
            self.fallback_reason = None
            self._move(S.CONNECTED, f"{session.transport} connected", session.transport)
            try:
                await self._serve(session)
            except TransportError as exc:
                log.info("client %s: session lost: %s", self.name, exc)
                self._move(S.RECONNECTING, str(exc), primary.name)
                await self._drop_session()
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
        wanted = self._subs.wanted()
        last_ids = {name: self._cursor(name).resume_id for name in wanted}
        session = await transport.open(wanted, last_ids)
        return session

    async def _fallback(self, primary: Transport, poll: Transport, backoff: Backoff) -> Session:
        """Poll until a probe of the streaming transport opens; return that session."""
        self.metrics.fallback()
        reason = self.fallback_reason or "streaming unavailable"
        log.warning("client %s: falling back to polling: %s", self.name, reason)
        self._move(S.FALLBACK, reason, poll.name)
        poller = asyncio.create_task(self._poll_until_cancelled(poll, backoff), name="tickwire-fallback")
        sleeper: asyncio.Future[None] | None = None
        try:
            while True:
                sleeper = asyncio.ensure_future(self._sleep(self.config.fallback_probe_s))
                await asyncio.wait({poller, sleeper}, return_when=asyncio.FIRST_COMPLETED)
                if poller.done():
                    poller.result()  # raises what ended polling (refused, retries exhausted)
                    raise ClientError("polling ended")  # pragma: no cover - it never returns
                self.metrics.reconnect(primary.name)
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
                failures += 1
                self._give_up_if(failures, exc)
                await self._sleep(self._delay(backoff, exc))
                continue
            failures = 0
            backoff.reset()
            try:
                await self._serve(session)
            except TransportError as exc:
                log.info("client %s: polling failed: %s", self.name, exc)
                await self._drop_session()
                await self._sleep(self._delay(backoff, exc))

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- a session ---------------------------------------------------------------------------

    async def _serve(self, session: Session) -> None:
        self._session = session
        self._session_version = -1
        self._handled_at = asyncio.get_running_loop().time()
        self._subscriptions_changed()
        while True:
            event = await self._receive(session)
            await self._handle(event, session.transport)
            self._handled_at = asyncio.get_running_loop().time()

    async def _receive(self, session: Session) -> WireEvent:
        stale = self.config.stale_timeout_s
        if stale <= 0:
            return await session.receive()
        loop = asyncio.get_running_loop()
        while True:
            since = max(session.last_activity, self._handled_at)
            remaining = since + stale - loop.time()
            if remaining <= 0:
                raise StaleConnection(f"{session.transport}: no bytes for {stale:g} s")
            try:
                async with asyncio.timeout(remaining):
                    return await session.receive()
            except TimeoutError:
                continue

    def _subscriptions_changed(self) -> None:
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
            last_ids = {name: self._cursor(name).resume_id for name in wanted}
            try:
                await session.update(wanted, last_ids)
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

    # -- events ------------------------------------------------------------------------------

    def _cursor(self, stream: str) -> StreamCursor:
        cursor = self._cursors.get(stream)
        if cursor is None:
            cursor = self._cursors[stream] = StreamCursor(
                stream, self.config.dedup_capacity, self.config.key_capacity
            )
        return cursor

    @staticmethod
    def _conflation_key(event: ClientEvent) -> tuple[str, str, str] | None:
        key = key_of(event.type, event.data)
        return (event.stream, event.type, key) if key is not None else None

    async def _deliver(self, event: ClientEvent) -> None:
        if not self._queue.put_nowait(event):
            self.metrics.backpressure()  # full of what must not be dropped: stop reading
            try:
                await self._queue.put(event)
            except asyncio.CancelledError:
                self._queue.force(event)  # accepted already: it must not be lost
                raise
        self.metrics.queue_depth(len(self._queue))

    async def _handle(self, wire: WireEvent, transport: str, *, check_gaps: bool = True) -> None:
        type_ = wire.type
        if type_ == CONNECTED or not wire.stream:
            await self._deliver(ClientEvent(wire.stream, type_, wire.data, wire.id, transport))
            if type_ == CONNECTION_LIMIT:
                raise StreamRefused(f"connection limit: {_message(wire.data)}", 4029)
            return
        if type_ == RESET:
            await self._reset(wire, transport)
            return
        if type_ == CONNECTION_LIMIT:
            await self._deliver(ClientEvent(wire.stream, type_, wire.data, wire.id, transport))
            raise StreamRefused(f"connection limit: {_message(wire.data)}", 4029)
        cursor = self._cursor(wire.stream)
        verdict, check = cursor.decide(type_, wire.id, wire.data)
        if verdict is Verdict.CHECK and check is not None:
            # A poll answer is the server's own filtered list of everything after its `after`:
            # what it skips is not in the stream, so there is nothing to ask.
            if check_gaps and self.config.gap_repair and transport != "poll":
                await self._repair(wire, cursor, check, transport)
                return
            verdict = Verdict.DELIVER
        if verdict is not Verdict.DELIVER:
            self.metrics.dupe(transport, type_)
            return
        await self._accept(wire, cursor, transport)

    async def _accept(
        self, wire: WireEvent, cursor: StreamCursor, transport: str, repaired: bool = False
    ) -> None:
        cursor.accept(wire.type, wire.id, wire.data)
        self.local.apply(wire.type, wire.data)
        self.metrics.message(transport, wire.type)
        await self._deliver(ClientEvent(wire.stream, wire.type, wire.data, wire.id, transport, repaired))

    async def _reset(self, wire: WireEvent, transport: str) -> None:
        self._cursor(wire.stream).reset()
        data = wire.data if isinstance(wire.data, dict) else {}
        self.metrics.reset(transport, str(data.get("reason", "unknown")))
        event = ClientEvent(wire.stream, RESET, wire.data, wire.id, transport)
        log.warning("client %s: stream %s reset: %s", self.name, wire.stream, data.get("reason"))
        for callback in list(self._reset_listeners):
            try:
                callback(event)
            except Exception:
                log.exception("reset callback failed")
        await self._deliver(event)

    async def _repair(self, wire: WireEvent, cursor: StreamCursor, check: GapCheck, transport: str) -> None:
        """Ask the events endpoint what the candidate's range holds; deliver what is missing
        (or surface a reset) before the event that revealed it."""
        missing = cursor.answer_from_last_check(wire.id, check)
        if missing is None:
            self.metrics.gap_check(transport)
            spec = self._subs.wanted().get(wire.stream) or StreamSpec(wire.stream)
            events, reason = await self._fetch_range(spec, check)
            if reason is not None:
                self.metrics.gap(transport)
                data = {"recovered": False, "reason": reason, "timestamp": _now_iso()}
                await self._reset(WireEvent(wire.stream, RESET, None, data), transport)
                for event in events:
                    await self._handle(event, transport, check_gaps=False)
                await self._handle(wire, transport, check_gaps=False)
                return
            cursor.remember_check(events)
            missing = cursor.missing(events, check, wire.id)
        if missing:
            self.metrics.gap(transport)
            log.warning(
                "client %s: gap on %s: %d event(s) repaired from the events endpoint",
                self.name,
                wire.stream,
                len(missing),
            )
            for event in missing:
                verdict, _ = cursor.decide(event.type, event.id, event.data)
                if verdict in (Verdict.DUPLICATE, Verdict.STALE):
                    continue
                await self._accept(event, cursor, transport, repaired=True)
            self.metrics.repaired(transport)
        cursor.cover(check)
        verdict, _ = cursor.decide(wire.type, wire.id, wire.data)
        if verdict in (Verdict.DUPLICATE, Verdict.STALE):
            self.metrics.dupe(transport, wire.type)
            return
        await self._accept(wire, cursor, transport)

    async def _fetch_range(self, spec: StreamSpec, check: GapCheck) -> tuple[list[WireEvent], str | None]:
        """The stream's events after `check.after` through `check.high` (paged), or the fresh
        events and the reason when the server cannot resume from there."""
        endpoint = self._endpoint()
        after = check.after
        out: list[WireEvent] = []
        limit = self.config.poll_limit
        while True:
            answer = await fetch_events(endpoint, spec, after, limit=limit)
            if not answer.recovered:
                return answer.events, answer.reason or "unknown"
            out.extend(answer.events)
            positions = [position_of(e.id) for e in answer.events]
            reached = any(p is not None and p.offset >= check.high for p in positions)
            if reached or len(answer.events) < limit or answer.last_event_id in (None, after):
                return out, None
            after = answer.last_event_id


def _message(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return "too many connections for this user"
