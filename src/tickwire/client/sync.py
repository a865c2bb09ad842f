"""A synchronous facade for scripts and notebooks: the async client on a background thread.

    import tickwire.client

    with tickwire.client.connect("http://127.0.0.1:8080", ["prices"]) as c:
        print(c.local.prices)                       # current, kept up to date in the background
        for event in c.events(timeout=5):           # or read events; stops after 5 s of quiet
            print(event.type, event.data)

`connect()` starts a daemon thread running an event loop with a `Client` (every option of
`Client` applies), waits until every stream is ready (its snapshot applied; `timeout`
seconds at most, then `ConnectTimeout`) and returns a `SyncClient`. Everything you read
from it is a copy made on the client's thread (`local.orders` and friends), so the loop
can go on updating while you look. Handlers given to `subscribe` run on the client's
thread: keep them short, or hand the work to your own thread. `close()` (or leaving the
`with` block) stops the loop and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar

from tickwire.client.client import Client, HistoryPage
from tickwire.client.consumers import Handler, Subscription
from tickwire.client.errors import ConnectTimeout
from tickwire.client.events import ClientEvent, StreamSpec
from tickwire.client.local_state import LocalState
from tickwire.client.metrics import ClientStats
from tickwire.client.state_machine import ConnectionState

T = TypeVar("T")


def connect(
    url: str,
    streams: str | StreamSpec | Iterable[str | StreamSpec] = (),
    *,
    timeout: float | None = 10.0,
    ready: bool = True,
    **options: Any,
) -> SyncClient:
    """A started `SyncClient` (module docstring); `ready=False` returns without waiting."""
    client = SyncClient(url, streams, **options)
    try:
        client.start(timeout=timeout, ready=ready)
    except BaseException:
        client.close()
        raise
    return client


class SyncLocal:
    """Copies of the client's local state, made on its thread."""

    def __init__(self, owner: SyncClient) -> None:
        self._owner = owner

    def _copy(self, read: Callable[[LocalState], T]) -> T:
        return self._owner.call(lambda: read(self._owner.client.local))

    @property
    def orders(self) -> dict[str, dict[str, Any]]:
        return self._copy(lambda local: {k: dict(v) for k, v in local.orders.items()})

    @property
    def positions(self) -> dict[str, dict[str, Any]]:
        return self._copy(lambda local: {k: dict(v) for k, v in local.positions.items()})

    @property
    def prices(self) -> dict[str, dict[str, Any]]:
        return self._copy(lambda local: {k: dict(v) for k, v in local.prices.items()})

    @property
    def total_value(self) -> float | None:
        return self._copy(lambda local: local.total_value)

    def price(self, symbol: str) -> float | None:
        return self._copy(lambda local: local.price(symbol))


class SyncSubscription:
    """A `Subscription` seen from the caller's thread."""

    def __init__(self, owner: SyncClient, sub: Subscription) -> None:
        self._owner = owner
        self.subscription = sub
        self.spec = sub.spec

    def ready(self, timeout: float | None = 10.0) -> None:
        self._owner.run(self.subscription.ready(), timeout)

    def release(self) -> None:
        self._owner.call(self.subscription.release)

    def events(self, timeout: float | None = None) -> Iterator[ClientEvent]:
        return self._owner._iterate(self.subscription.events(), timeout)


class SyncClient:
    """The async `Client` on a background thread (module docstring)."""

    def __init__(
        self, url: str, streams: str | StreamSpec | Iterable[str | StreamSpec] = (), **options: Any
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tickwire-client", daemon=True)
        self._url = url
        self._streams = streams
        self._options = options
        self._client: Client | None = None
        self.local = SyncLocal(self)

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the client is not started: use connect() or start()")
        return self._client

    # -- running things on the client's thread ---------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the client's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def call(self, fn: Callable[[], T]) -> T:
        """Call a plain function on the client's loop and wait for its result."""

        async def call() -> T:
            return fn()

        return self.run(call())

    # -- life --------------------------------------------------------------------------------------

    def start(self, timeout: float | None = 10.0, ready: bool = True) -> None:
        if self._client is not None:
            return
        self._thread.start()
        self._client = self.call(lambda: Client(self._url, self._streams, **self._options))
        self.run(self._client.start())
        if ready:
            try:
                self.run(self._client.ready(), timeout)
            except TimeoutError:
                last = self.call(lambda: self.client.last_error)
                raise ConnectTimeout(
                    f"not ready within {timeout:g} s ({self.state.value}; last error: {last or 'none'})"
                ) from None

    def close(self) -> None:
        if self._thread.is_alive():
            if self._client is not None:
                self.run(self._client.close(), 30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self.client.state

    @property
    def stats(self) -> ClientStats:
        return self.call(lambda: ClientStats(**vars(self.client.stats)))

    @property
    def last_error(self) -> str | None:
        return self.client.last_error

    def last_event_ids(self) -> dict[str, str | None]:
        return self.call(self.client.last_event_ids)

    def ready(self, timeout: float | None = 10.0) -> None:
        self.run(self.client.ready(), timeout)

    def events(self, timeout: float | None = None) -> Iterator[ClientEvent]:
        """The client's events; with `timeout`, the iteration ends after that many seconds
        without one."""
        return self._iterate(self.client.events(), timeout)

    def _iterate(self, events: Any, timeout: float | None) -> Iterator[ClientEvent]:
        try:
            while True:
                try:
                    event: ClientEvent = self.run(events.__anext__(), timeout)
                except (StopAsyncIteration, TimeoutError):
                    return
                yield event
        finally:
            if self._thread.is_alive():
                self.run(events.aclose(), 5)

    def subscribe(
        self,
        stream: str | StreamSpec,
        symbols: str | Iterable[str] | None = None,
        *,
        handler: Handler | None = None,
    ) -> SyncSubscription:
        sub = self.call(lambda: self.client.subscribe(stream, symbols, handler=handler))
        return SyncSubscription(self, sub)

    def history(self, stream: str, after: str | None = None, limit: int = 100) -> HistoryPage:
        return self.run(self.client.history(stream, after, limit), 30)
