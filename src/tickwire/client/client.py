"""The resilient client: one loop that connects, resumes, deduplicates, repairs gaps, falls
back to polling and comes back, and hands events to its consumers.

    async with Client("http://127.0.0.1:8080", ["orders", "prices?symbols=AAPL"], token=t) as client:
        await client.ready()
        async for event in client.events():
            ...

Theory of operation. `Client` is the public facade; the work is done by one piece per
concept, all wired together here:

- runner.py: the one task that owns the connection (state_machine.py draws the states). It
  asks `get_token` for a fresh token (credentials.py), opens a session on the configured
  transport with every wanted stream at its cursor's resume id, hands what each socket read
  produced to the router (with stale detection), renews the token before it expires,
  reconnects after a backoff delay (backoff.py; at once after `auth:expired`), and after
  `fallback_after` streaming failures in a row polls instead, probing the streaming
  transport every `fallback_probe_s` and switching back as soon as a probe opens.
- routing.py: what happens to each event: the stream's cursor decides (gaps.py: deliver,
  duplicate, stale, or a hole in the sequence numbers, repaired from the events endpoint by
  a task of that stream alone), the event is applied to the local state and handed to its
  consumers.
- delivery.py / outlet.py: the consumers (`events()`, subscriptions with a handler or an
  iterator), each a bounded priority queue that spills log events to history rather than
  stop the reading, and the consumed position of each stream.
- checkpoint.py: consumed positions saved to a store and restored at the start.
- readiness.py: when each stream's snapshot is applied (`ready()`).
- status.py: the visible state, its listeners and waiters.

A `stream:reset` (the server could not resume: another epoch, history trimmed) resets the
stream's cursor, is delivered as an event and to `on_reset` callbacks, and the fresh
snapshot that follows replaces the local state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from tickwire.client.backoff import Random
from tickwire.client.checkpoint import Checkpointer, CheckpointStore
from tickwire.client.config import ClientConfig, ConflatePolicy
from tickwire.client.consumers import Handler, Subscription
from tickwire.client.credentials import Credentials
from tickwire.client.delivery import Delivery
from tickwire.client.errors import AuthExpired, ClientError
from tickwire.client.events import ClientEvent, StreamSpec, WireEvent, as_items, as_spec, as_specs
from tickwire.client.gaps import Cursors
from tickwire.client.local_state import LocalState
from tickwire.client.metrics import ClientMetrics, ClientStats
from tickwire.client.poll import PollAnswer, fetch_events
from tickwire.client.readiness import Readiness
from tickwire.client.routing import Router
from tickwire.client.runner import Runner, Sleep, TransportFactory
from tickwire.client.state_machine import ConnectionState, StateChange
from tickwire.client.status import Status
from tickwire.client.subscriptions import Handle, SubscriptionManager
from tickwire.client.transports import Endpoint, create_transport

log = logging.getLogger("tickwire.client")

__all__ = ["Client", "HistoryPage", "Sleep", "TransportFactory"]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One answer of the events endpoint: `events` after the id asked for, `last_event_id`
    to ask after next, and whether the server could resume from it (`recovered`)."""

    events: list[ClientEvent]
    last_event_id: str | None
    recovered: bool
    reason: str | None = None

    def __iter__(self) -> Any:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


class Client:
    """A resilient consumer of tickwire streams over SSE, WebSocket or polling.

    `url` is the server's base address (`http://host:port`); `streams` are stream names with
    optional parameters (`"orders"`, `"prices?symbols=AAPL,MSFT"`, `"strategies/s1"`; one
    name alone is one stream) held for the client's lifetime; more can be taken and released
    with `subscribe()`. Settings come from `config` (`ClientConfig`) with keyword overrides
    (`transport="ws"`, `get_token=...`). `last_event_ids` resumes streams after ids the
    caller kept; `checkpoint` (checkpoint.py) restores and saves them by itself. Time and
    randomness are injectable: `sleep` waits between attempts, `random` draws the jitter.

    Tokens expire on open connections too. For a long-running consumer pass `get_token=`
    (a sync or async callable returning the token; `token_provider` is its former name)
    instead of `token=`: it is asked before every connection attempt and shortly before the
    token's `exp`. When the server says `auth:expired` (or answers 401, or closes a
    WebSocket with 4001) the client reconnects at once with a fresh token and resumes every
    stream from its last id, so rotation costs no event and doubles none; it never gives up
    while `get_token` returns tokens (credentials.py).
    """

    def __init__(
        self,
        url: str,
        streams: str | StreamSpec | Iterable[str | StreamSpec] = (),
        *,
        config: ClientConfig | None = None,
        registry: CollectorRegistry | None = None,
        name: str = "tickwire",
        last_event_ids: Mapping[str, str] | None = None,
        checkpoint: CheckpointStore | None = None,
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
        self._holders: list[Handle] = [self._subs.acquire(s) for s in as_specs(streams)]
        self._cursors = Cursors(config.dedup_capacity, config.key_capacity)
        self._cursors.seed(last_event_ids or {})
        self._readiness = Readiness()
        self._delivery = Delivery(config, self.metrics, _History(self))
        self._checkpoint = (
            Checkpointer(checkpoint, name, lambda: self._positions(True)) if checkpoint else None
        )
        self._sleep: Sleep = sleep or asyncio.sleep
        self._random = random
        self._factory: TransportFactory = transport_factory or create_transport
        self._http = http
        self._owns_http = http is None
        self._endpoint: Endpoint | None = None
        self._runner: Runner | None = None
        self._starting: asyncio.Lock | None = None
        self._closing = False
        self._reset_listeners: list[Callable[[ClientEvent], Any]] = []
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._subs.on_change = self._subscriptions_changed

    # -- state -----------------------------------------------------------------------------

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
    def last_error(self) -> str | None:
        """What made the last connection attempt fail (None before any failure)."""
        return self._runner.last_error if self._runner is not None else None

    @property
    def stats(self) -> ClientStats:
        return self.metrics.stats

    @property
    def queued(self) -> int:
        return len(self._delivery)

    @property
    def streams(self) -> list[str]:
        """The streams read now (what the constructor and `subscribe` hold)."""
        return sorted(self._subs.wanted())

    def last_event_ids(self) -> dict[str, str | None]:
        """Each stream's consumed position: the id after which your program has taken
        nothing yet (an event counts once taken from an iterator or once its handler
        returned). Pass it as `last_event_ids` to a later client to go on from there."""
        return self._positions(False)

    def _positions(self, finished: bool) -> dict[str, str | None]:
        names = set(self._cursors.names()) | self._delivery.streams()
        return self._delivery.positions(self._cursors, sorted(names), finished)

    def on_state_change(self, callback: Callable[[StateChange], Any]) -> Callable[[], None]:
        """Call `callback(StateChange)` (a plain or async function) on every state change;
        returns an unsubscribe function."""
        return self._status.listen(lambda change: self._call(callback, change))

    def on_reset(self, callback: Callable[[ClientEvent], Any]) -> None:
        """Call `callback(event)` (a plain or async function) when a stream is reset
        (history could not be resumed)."""
        self._reset_listeners.append(callback)

    def _call(self, callback: Callable[[Any], Any], arg: Any) -> None:
        """Run a user's callback; an async one as a task of its own (errors are logged)."""
        try:
            result = callback(arg)
        except Exception:
            log.exception("client %s: callback failed", self.name)
            return
        if inspect.isawaitable(result):
            try:
                task = asyncio.get_running_loop().create_task(_logged(result, self.name))
            except RuntimeError:  # no loop (closed from outside one): nothing can run it
                if inspect.iscoroutine(result):
                    result.close()
                return
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(
        self,
        stream: str | StreamSpec,
        symbols: str | Iterable[str] | None = None,
        user_id: str | None = None,
        *,
        handler: Handler | None = None,
        conflate: ConflatePolicy | None = None,
    ) -> Subscription:
        """Read `stream` (and, on prices, `symbols`: a list, or one symbol) until the
        subscription is released. Subscriptions of one stream or symbol share one wire
        subscription. With `handler` (a plain or async function) the subscription's events
        go to it, in order; iterate the subscription (`async for ev in sub`) to read them
        instead; else they go to `events()` (consumers.py). `conflate` overrides the tick
        policy for this subscription's own queue. A stream the server refuses (unknown,
        forbidden) closes the client with `StreamRefused`."""
        spec = as_spec(stream)
        items = as_items(symbols, f"subscribe({spec.name!r}) symbols")
        if items is not None or user_id is not None:
            chosen = frozenset(items) if items is not None else spec.symbols
            spec = StreamSpec(spec.name, chosen, user_id if user_id is not None else spec.user_id)
        sub = Subscription(spec, self, handler, conflate)
        self._subs.acquire(spec, sub)
        self._holders.append(sub)
        self._reroute()
        if handler is not None:
            sub._consume()
            if self._runner is not None:
                sub.start()
        return sub

    def references(self, stream: str, symbol: str | None = None) -> int:
        return self._subs.references(stream, symbol)

    def _reroute(self) -> None:
        self._holders = [h for h in self._holders if h.active]
        self._delivery.reroute(
            (h.spec.name, h.outlet if isinstance(h, Subscription) else None) for h in self._holders
        )

    def _finished(self) -> None:
        if self._checkpoint is not None:
            self._checkpoint.consumed()

    # -- life --------------------------------------------------------------------------------

    def _ensure_endpoint(self) -> Endpoint:
        if self._endpoint is None:
            if self._http is None:
                self._http = httpx.AsyncClient(
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=20),
                    headers={"User-Agent": "tickwire-client"},
                )
            config = self.config
            credentials = Credentials(config.token, config.get_token, config.token_refresh_margin_s)
            self._endpoint = Endpoint(self.base_url, config, self._http, credentials)
        return self._endpoint

    async def start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._runner is not None or self._closing:
                return
            endpoint = self._ensure_endpoint()
            if self._checkpoint is not None:
                saved = await self._checkpoint.restore()
                self._cursors.seed({k: v for k, v in saved.items() if not self._cursors.seeded(k)})
                self._checkpoint.start()
            self._runner = self._build_runner(endpoint)
            self._runner.start()
            for holder in self._holders:
                if isinstance(holder, Subscription):
                    holder.start()

    async def close(self, *, clean: bool = True) -> None:
        """Stop: close the connection; `events()` ends once the queue is drained. `clean`
        (the default; False when leaving `async with` on an exception): the events your
        loops took count as finished for the checkpoint."""
        if self._closing:
            return
        self._closing = True
        if self._runner is not None:
            await self._runner.stop()
        else:
            self._finish(None)
        if clean:
            for outlet in self._delivery.all_outlets():
                outlet.finish_held()
        if self._checkpoint is not None:
            await self._checkpoint.close()
        if self._callbacks:
            await asyncio.wait(set(self._callbacks), timeout=1.0)
        if self._owns_http and self._http is not None:
            await self._http.aclose()

    async def save_checkpoint(self) -> bool:
        """Save the consumed positions to the checkpoint store now; False when it failed."""
        return await self._checkpoint.save() if self._checkpoint is not None else False

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(clean=exc_type is None)

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Every event not consumed by a subscription, in order per stream; ends when the
        client is closed, raises the error that closed it (`StreamRefused`,
        `RetriesExhausted`, `ConnectTimeout`)."""
        await self.start()
        async for event in self._delivery.main.iterate(self._finished):
            yield event

    async def ready(self) -> None:
        """Return once every stream read now is connected and its snapshot applied to the
        local state (readiness.py); raises what closed the client if it closes first."""
        await self.start()
        await self._readiness.wait(self._live_streams)

    def _live_streams(self) -> list[str]:
        return [n for n, s in self._subs.wanted().items() if not (s.symbols is not None and not s.symbols)]

    async def wait_for_state(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the client is in one of `states`; returns it (wrap it in
        `asyncio.timeout` to bound the wait)."""
        return await self._status.wait_for(frozenset(states))

    async def history(
        self,
        stream: str | StreamSpec,
        after: str | None = None,
        limit: int = 100,
        *,
        symbols: str | Iterable[str] | None = None,
    ) -> HistoryPage:
        """What the stream's events endpoint holds after `after` (SPEC 7): at most `limit`
        (1 to 1000) events, oldest first; without `after`, what a new connection would get
        (its snapshot or buffered events). Page on with `page.last_event_id`."""
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be from 1 to 1000 (the server's bound)")
        spec = as_spec(stream)
        items = as_items(symbols, "history symbols")
        if items is not None:
            spec = StreamSpec(spec.name, frozenset(items), spec.user_id)
        answer = await self._fetch(spec, after, limit)
        events = [
            ClientEvent(spec.name, e.type, e.data, e.id, "poll", replayed=after is not None)
            for e in answer.events
        ]
        return HistoryPage(events, answer.last_event_id, answer.recovered, answer.reason)

    async def _fetch(self, spec: StreamSpec, after: str | None, limit: int) -> PollAnswer:
        endpoint = self._ensure_endpoint()
        credentials = endpoint.credentials
        if credentials.provider is not None and credentials.token is None:
            await credentials.refresh()
        try:
            return await fetch_events(endpoint, spec, after, limit=limit)
        except AuthExpired:
            await credentials.refresh()
            return await fetch_events(endpoint, spec, after, limit=limit)

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
            readiness=self._readiness,
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
        self._reroute()
        if self._runner is not None:
            self._runner.subscriptions_changed()

    def _notify_reset(self, event: ClientEvent) -> None:
        for callback in list(self._reset_listeners):
            self._call(callback, event)

    def _finish(self, error: ClientError | None) -> None:
        self._status.close(error)
        self._delivery.close(error)
        self._readiness.fail(error)
        self._status.fail_waiters(error)


class _History:
    """What an outlet that fell behind asks (outlet.py's `History`), bound to a client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def fetch(self, stream: str, after: str | None, limit: int) -> Awaitable[PollAnswer]:
        spec = self._client._subs.wanted().get(stream) or StreamSpec(stream)
        return self._client._fetch(spec, after, limit)

    def received(self, stream: str) -> str | None:
        return self._client._cursors.get(stream).resume_id

    def event(self, wire: WireEvent, replayed: bool) -> ClientEvent:
        return ClientEvent(wire.stream, wire.type, wire.data, wire.id, "poll", replayed=replayed)


async def _logged(awaitable: Awaitable[Any], name: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("client %s: callback failed", name)
