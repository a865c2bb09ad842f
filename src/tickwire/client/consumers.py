"""Subscriptions as consumers: a handler, or an iterator, of one stream.

    sub = client.subscribe("orders", handler=on_order)      # called for each event, in order
    prices = client.subscribe("prices", ["AAPL"])
    await prices.ready()                                    # its snapshot is applied
    async for event in prices:                              # or iterate it
        ...

A `Subscription` is a `Handle` (subscriptions.py: reference-counted on the wire) that can
also consume its stream's events itself. With `handler=` (a plain or async function) the
client calls it with each event of the subscription, one at a time, in stream order, from
a task of its own: an exception is logged and counted (`stats.handler_errors`) and the
next event follows. Iterating it (`async for ev in sub`) reads the same events instead.
Either way the subscription gets its own queue (outlet.py) and `client.events()` no
longer gets those events (unless the stream is also held without a consumer, which then
gets them too). A `prices` subscription gets the ticks of its symbols (and the
snapshots). Until a subscription is iterated its events wait for `client.events()`; the
first iteration takes over those `events()` has not taken yet, so nothing is lost between
`subscribe` and `async for`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from tickwire.client.config import ConflatePolicy
from tickwire.client.events import TICK_TYPES, ClientEvent, StreamSpec, is_snapshot
from tickwire.client.outlet import Outlet
from tickwire.client.queue import QueueClosed
from tickwire.client.subscriptions import Handle

if TYPE_CHECKING:
    from tickwire.client.client import Client

log = logging.getLogger("tickwire.client")

Handler = Callable[[ClientEvent], Any]


class Subscription(Handle):
    """One holder of a stream (and symbols); may consume its events (module docstring)."""

    def __init__(
        self,
        spec: StreamSpec,
        client: Client,
        handler: Handler | None = None,
        conflate: ConflatePolicy | None = None,
    ) -> None:
        super().__init__(spec, None)
        self.handler = handler
        self.conflate = conflate
        self.outlet: Outlet | None = None
        self._client = client
        self._task: asyncio.Task[None] | None = None

    def matches(self, event: ClientEvent) -> bool:
        """Whether the event belongs to this subscription (its symbols, on `prices`)."""
        symbols = self.spec.symbols
        if symbols is None or event.type not in TICK_TYPES or is_snapshot(event.type, event.raw):
            return True
        raw = event.raw
        return isinstance(raw, dict) and raw.get("symbol") in symbols

    def _consume(self) -> Outlet:
        if self.outlet is None:
            if not self.active:
                raise RuntimeError("this subscription was released")
            matches = self.matches if self.spec.symbols is not None else None
            outlet = self.outlet = self._client._delivery.outlet(f"{self.spec.name} subscription", matches)
            if self.conflate is not None:
                policy = self.conflate
                outlet._conflate = lambda stream: policy
            self._client._reroute()
            # What waits for `client.events()` of this stream is this subscription's now.
            delivery = self._client._delivery
            route = delivery.routes.get(self.spec.name)
            keep = route is None or route[1]
            _, before = delivery.main.floor(self.spec.name, False)
            outlet.adopt(delivery.main.hand_over(self.spec.name, matches, keep), before)
        return self.outlet

    def start(self) -> None:
        """Start the handler's task (the client does it when running)."""
        if self.handler is not None and self._task is None and self.active:
            outlet = self._consume()
            self._task = asyncio.get_running_loop().create_task(
                self._run(outlet, self.handler), name=f"tickwire-handler-{self.spec.name}"
            )

    async def _run(self, outlet: Outlet, handler: Handler) -> None:
        client = self._client
        while True:
            try:
                event = outlet.get_nowait() or await outlet.get()
            except QueueClosed:
                return
            except Exception as exc:  # the client closed with an error: its iterators raise it
                log.info("handler of %s stops: %s", self.spec.name, exc)
                return
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("handler of %s failed on %s %s", self.spec.name, event.type, event.id)
                client.metrics.handler_error()
            outlet.done(event)
            client._finished()

    def __aiter__(self) -> AsyncIterator[ClientEvent]:
        return self.events()

    def events(self) -> AsyncIterator[ClientEvent]:
        """This subscription's events (ends when it is released or the client closes); they
        are its own from this call on."""
        if self.handler is not None:
            raise TypeError("this subscription has a handler: its events go there")
        outlet = self._consume()
        outlet.iterated = True
        return self._events(outlet)

    async def _events(self, outlet: Outlet) -> AsyncIterator[ClientEvent]:
        await self._client.start()
        async for event in outlet.iterate(self._client._finished):
            yield event

    async def ready(self) -> None:
        """Return once the subscription's stream is connected and its snapshot applied."""
        await self._client._readiness.wait(lambda: [self.spec.name])

    def release(self) -> None:
        was_active = self.active
        super().release()
        if not was_active:
            return
        if self._task is not None:
            self._task.cancel()
        if self.outlet is not None:
            self.outlet.close(None)
        self._client._reroute()
