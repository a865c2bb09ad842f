"""The resilient client: one loop that connects, resumes, deduplicates, repairs gaps, falls
back to polling and comes back, and hands events to the user through a bounded queue.

    async with Client("http://127.0.0.1:8080", ["orders", "prices?symbols=AAPL"], token=t) as client:
        async for event in client.events():
            ...

Theory of operation. `Client` is the public facade; the work is done by one piece per
concept, all wired together here:

- runner.py: the one task that owns the connection (state_machine.py draws the states). It
  asks the token provider for a fresh token (credentials.py), opens a session on the
  configured transport with every wanted stream at its cursor's resume id, pumps received
  `WireEvent`s (with stale detection) to the router, reconnects after a backoff delay
  (backoff.py; at once after `auth:expired`), and after `fallback_after` streaming
  failures in a row polls instead, probing the streaming transport every
  `fallback_probe_s` and switching back as soon as a probe opens.
- routing.py: what happens to one event: the stream's cursor decides (gaps.py: deliver,
  duplicate, stale, or a gap candidate to check with the events endpoint first), the event
  is applied to the local state and put in the delivery queue.
- delivery.py: the bounded priority queue to the user (queue.py), which may make the pump
  wait: backpressure.
- gaps.py: the cursors. Cursors only move forward, so a new session (or the switch between
  polling and streaming) resumes each stream where the user's view of it is, and whatever
  arrives twice is dropped.
- status.py: the visible state, its listeners and waiters.

A `stream:reset` (the server could not resume: another epoch, history trimmed) resets the
stream's cursor, is delivered as an event and to `on_reset` callbacks, and the fresh
snapshot that follows replaces the local state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from tickwire.client.backoff import Random
from tickwire.client.config import ClientConfig
from tickwire.client.credentials import Credentials
from tickwire.client.delivery import Delivery
from tickwire.client.errors import ClientError
from tickwire.client.events import ClientEvent, StreamSpec, as_spec
from tickwire.client.gaps import Cursors
from tickwire.client.local_state import LocalState
from tickwire.client.metrics import ClientMetrics, ClientStats
from tickwire.client.queue import QueueClosed
from tickwire.client.routing import Router
from tickwire.client.runner import Runner, Sleep, TransportFactory
from tickwire.client.state_machine import ConnectionState, StateChange
from tickwire.client.status import Status
from tickwire.client.subscriptions import Handle, SubscriptionManager
from tickwire.client.transports import Endpoint, create_transport

log = logging.getLogger("tickwire.client")

__all__ = ["Client", "Sleep", "TransportFactory"]


class Client:
    """A resilient consumer of tickwire streams over SSE, WebSocket or polling.

    `url` is the server's base address (`http://host:port`); `streams` are stream names with
    optional parameters (`"orders"`, `"prices?symbols=AAPL,MSFT"`, `"strategies/s1"`) held for
    the client's lifetime; more can be taken and released with `subscribe()`. Settings come
    from `config` (`ClientConfig`) with keyword overrides (`transport="ws"`, `token=...`).
    `last_event_ids` resumes streams after ids the caller kept. Time and randomness are
    injectable: `sleep` waits between attempts, `random` draws the jitter.

    Tokens expire on open connections too. For a long-running consumer pass
    `token_provider=` instead of `token=`: a sync or async callable returning the token,
    asked before every connection attempt. When the server says `auth:expired` (or answers
    401, or closes a WebSocket with 4001) the client reconnects at once with a fresh token
    and resumes every stream from its last id, so rotation costs no event and doubles none;
    it never gives up while the provider returns tokens (credentials.py).
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
        self._status = Status(name, config.transport, self.metrics)
        self._subs = SubscriptionManager()
        self._held = [self._subs.acquire(as_spec(s)) for s in streams]
        self._cursors = Cursors(config.dedup_capacity, config.key_capacity)
        self._cursors.seed(last_event_ids or {})
        self._delivery = Delivery(config.queue_capacity, self.metrics)
        self._sleep: Sleep = sleep or asyncio.sleep
        self._random = random
        self._factory: TransportFactory = transport_factory or create_transport
        self._http = http
        self._owns_http = http is None
        self._runner: Runner | None = None
        self._closing = False
        self._reset_listeners: list[Callable[[ClientEvent], None]] = []
        self._subs.on_change = self._subscriptions_changed

    # -- public surface ------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._status.state

    @property
    def state_reason(self) -> str:
        return self._status.reason

    @property
    def transport(self) -> str:
        """The transport events flow over now ("poll" while in fallback)."""
        return self._status.transport

    @property
    def fallback_reason(self) -> str | None:
        """Why the client fell back to polling, while it does (None otherwise)."""
        return self._runner.fallback_reason if self._runner is not None else None

    @property
    def stats(self) -> ClientStats:
        return self.metrics.stats

    @property
    def queued(self) -> int:
        return len(self._delivery)

    def last_event_ids(self) -> dict[str, str | None]:
        """Each stream's resume id: pass it as `last_event_ids` to a later client."""
        return self._cursors.resume_ids()

    def on_state_change(self, callback: Callable[[StateChange], None]) -> Callable[[], None]:
        """Call `callback(StateChange)` on every state change; returns an unsubscribe function."""
        return self._status.listen(callback)

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
        if self._runner is not None or self._closing:
            return
        if self._http is None:
            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=20),
                headers={"User-Agent": "tickwire-client"},
            )
        credentials = Credentials(self.config.token, self.config.token_provider)
        self._runner = self._build_runner(Endpoint(self.base_url, self.config, self._http, credentials))
        self._runner.start()

    async def close(self) -> None:
        """Stop: close the connection; `events()` ends once the queue is drained."""
        if self._closing:
            return
        self._closing = True
        if self._runner is not None:
            await self._runner.stop()
        else:
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
                event = await self._delivery.get()
            except QueueClosed:
                return
            yield event

    async def wait_for_state(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the client is in one of `states`; returns it (wrap it in
        `asyncio.timeout` to bound the wait)."""
        return await self._status.wait_for(frozenset(states))

    # -- wiring --------------------------------------------------------------------------

    def _build_runner(self, endpoint: Endpoint) -> Runner:
        router = Router(
            name=self.name,
            config=self.config,
            endpoint=endpoint,
            cursors=self._cursors,
            subs=self._subs,
            local=self.local,
            metrics=self.metrics,
            delivery=self._delivery,
            on_reset=self._notify_reset,
        )
        return Runner(
            name=self.name,
            config=self.config,
            endpoint=endpoint,
            factory=self._factory,
            sleep=self._sleep,
            random=self._random,
            status=self._status,
            metrics=self.metrics,
            subs=self._subs,
            cursors=self._cursors,
            router=router,
            on_finish=self._finish,
        )

    def _subscriptions_changed(self) -> None:
        if self._runner is not None:
            self._runner.subscriptions_changed()

    def _notify_reset(self, event: ClientEvent) -> None:
        for callback in list(self._reset_listeners):
            try:
                callback(event)
            except Exception:
                log.exception("reset callback failed")

    def _finish(self, error: ClientError | None) -> None:
        self._status.close(error)
        self._delivery.close(error)
        self._status.fail_waiters(error)
