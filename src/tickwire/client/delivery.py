"""Handing events to the user: the client's policy on its bounded delivery queue.

Every accepted event goes through `Delivery.put` into a `DeliveryQueue` (queue.py) laned by
stream, ordered by the priority of its class (events.py), with price ticks conflated per
(stream, type, symbol) and dropped first under pressure. When the queue is full of what
must not be dropped, `put` waits: the runner stops reading its session, so backpressure
reaches the server. `Client.events()` reads with `get`.
"""

from __future__ import annotations

import asyncio

from tickwire.client.errors import ClientError
from tickwire.client.events import ClientEvent, droppable, key_of, priority_of
from tickwire.client.metrics import ClientMetrics
from tickwire.client.queue import DeliveryQueue


def conflation_key(event: ClientEvent) -> tuple[str, str, str] | None:
    """Events with the same key supersede each other in the queue (latest values)."""
    key = key_of(event.type, event.data)
    return (event.stream, event.type, key) if key is not None else None


class Delivery:
    """The queue between the client and its user, and the metrics of what it holds."""

    def __init__(self, capacity: int, metrics: ClientMetrics) -> None:
        self._metrics = metrics
        self._queue: DeliveryQueue[ClientEvent] = DeliveryQueue(
            capacity,
            priority=lambda e: priority_of(e.type, e.data),
            droppable=lambda e: droppable(e.type, e.data),
            lane=lambda e: e.stream,
            key=conflation_key,
            on_drop=lambda e, reason: metrics.dropped(e.type, reason),
        )

    def __len__(self) -> int:
        return len(self._queue)

    async def put(self, event: ClientEvent) -> None:
        """Queue `event`; waits while the queue is full of what must not be dropped."""
        if not self._queue.put_nowait(event):
            self._metrics.backpressure()  # full of what must not be dropped: stop reading
            try:
                await self._queue.put(event)
            except asyncio.CancelledError:
                self._queue.force(event)  # accepted already: it must not be lost
                raise
        self._metrics.queue_depth(len(self._queue))

    async def get(self) -> ClientEvent:
        """The next event for the user; raises `QueueClosed` once closed and drained."""
        event = await self._queue.get()
        self._metrics.queue_depth(len(self._queue))
        return event

    def close(self, error: ClientError | None) -> None:
        """No more events: `get` ends (raising `error`, if any) once the queue is drained."""
        self._queue.close(error)
