"""Handing events to the user: which consumer gets an event, and how far each stream was consumed.

Consumers are outlets (outlet.py): the client's own (`client.events()`), and one per
subscription that has a handler or is iterated (`sub = client.subscribe(..., handler=h)`,
`async for ev in sub`). An event goes to every consuming subscription of its stream that
it matches (a `prices` subscription's symbols), and to `client.events()` when its stream is
also held without a consumer (the client's constructor streams, a plain `subscribe`) or by
nobody. The common case, no consuming subscription, is one dictionary check per event.

Consumed positions (`positions`): for each stream, the id after which nothing of it is
pending with any consumer: the earliest floor of the outlets that hold something of the
stream, or, when none does, the client's own position in the stream (everything received
was consumed). With `finished=False` an event counts once taken (yielded by an iterator,
or its handler returned); with `finished=True` once finished (its handler returned, or the
iterator was asked for the next event): `last_event_ids()` and checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tickwire.client.config import ClientConfig
from tickwire.client.errors import ClientError
from tickwire.client.events import ClientEvent
from tickwire.client.gaps import Cursors, earliest
from tickwire.client.metrics import ClientMetrics
from tickwire.client.outlet import History, Outlet


class Delivery:
    """The client's consumers and the routes to them."""

    def __init__(self, config: ClientConfig, metrics: ClientMetrics, history: History | None) -> None:
        self.config = config
        self._metrics = metrics
        self._history = history
        self.main = self.outlet("events")
        self._outlets: list[Outlet] = []
        self.routes: dict[str, tuple[list[Outlet], bool]] = {}
        metrics.queue_depth(lambda: sum(len(o) for o in self.all_outlets()))

    def outlet(self, name: str, matches: object = None) -> Outlet:
        """A new consumer queue with the client's settings (not routed to until `reroute`)."""
        return Outlet(
            name,
            self.config.queue_capacity,
            self._metrics,
            self.config.conflate_for,
            self._history,
            matches,  # type: ignore[arg-type]
            self.config.poll_limit,
        )

    def all_outlets(self) -> list[Outlet]:
        return [self.main, *self._outlets]

    def __len__(self) -> int:
        return len(self.main)

    def reroute(self, holders: Iterable[tuple[str, Outlet | None]]) -> None:
        """`holders`: (stream, the holder's outlet or None for a plain holder), every live one."""
        consumers: dict[str, list[Outlet]] = {}
        plain: set[str] = set()
        outlets: list[Outlet] = []
        for stream, outlet in holders:
            if outlet is None:
                plain.add(stream)
            else:
                consumers.setdefault(stream, []).append(outlet)
                if outlet not in outlets:
                    outlets.append(outlet)
        self._outlets = outlets
        self.routes = {stream: (found, stream in plain) for stream, found in consumers.items()}

    def offer(self, event: ClientEvent, prev: str | None) -> Sequence[Outlet]:
        """Queue `event` with its consumers; the outlets that had no room (wait, then `retry`)."""
        route = self.routes.get(event.stream) if self.routes else None
        if route is None:
            return () if self.main.offer(event, prev) else (self.main,)
        outlets, main = route
        waiting = [o for o in outlets if (o.matches is None or o.matches(event)) and not o.offer(event, prev)]
        if main and not self.main.offer(event, prev):
            waiting.append(self.main)
        return waiting

    async def retry(self, event: ClientEvent, prev: str | None, waiting: Sequence[Outlet]) -> None:
        """Backpressure: wait for room in each outlet that had none, and queue there."""
        for outlet in waiting:
            while not outlet.offer(event, prev):
                await outlet.wait_room()

    def positions(self, cursors: Cursors, streams: Iterable[str], finished: bool) -> dict[str, str | None]:
        """Each stream's consumed position (module docstring)."""
        outlets = self.all_outlets()
        out: dict[str, str | None] = {}
        for stream in streams:
            floors = []
            for outlet in outlets:
                pending, floor = outlet.floor(stream, finished)
                if pending:
                    floors.append(floor)
            out[stream] = earliest(floors) if floors else cursors.get(stream).resume_id
        return out

    def streams(self) -> set[str]:
        names: set[str] = set()
        for outlet in self.all_outlets():
            names |= outlet.streams()
        return names

    def close(self, error: ClientError | None) -> None:
        """No more events: every consumer ends (raising `error`, if any) once drained."""
        for outlet in self.all_outlets():
            outlet.close(error)
