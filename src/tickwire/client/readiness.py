"""When a stream is ready: connected, and its starting state applied to the local state.

A stream is ready once a session carried it (`connected`) and, when that connection started
it fresh, its snapshot arrived and was applied (orders, positions, trading: both of
theirs, prices); a stream without a snapshot (alerts, ai-decisions, strategies/{id}) or a
resumed one is ready at `connected` (its buffered events or its replay follow). A client
that resumed from ids (a checkpoint) with no local state yet reads the snapshots of its
stateful streams from the events endpoint first (routing.py), so `ready()` means the same.
Readiness is reached once per stream; waiters fail with the error that closed the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from tickwire.client.errors import ClientClosed, ClientError

# The snapshot event types of each stream that has a snapshot (SPEC 3).
SNAPSHOT_TYPES: dict[str, frozenset[str]] = {
    "orders": frozenset({"order:update"}),
    "positions": frozenset({"position:update"}),
    "trading": frozenset({"order:update", "position:update"}),
    "prices": frozenset({"price:update"}),
}


def snapshot_types(stream: str) -> frozenset[str]:
    return SNAPSHOT_TYPES.get(stream.partition("/")[0], frozenset())


class Readiness:
    def __init__(self) -> None:
        self._ready: set[str] = set()
        self._pending: dict[str, set[str]] = {}
        self._waiters: list[tuple[Callable[[], Iterable[str]], asyncio.Future[None]]] = []
        self._error: BaseException | None = None

    def is_ready(self, stream: str) -> bool:
        return stream in self._ready

    def connected(self, stream: str, fresh: bool) -> None:
        """A session carried `stream`; `fresh`: it was started without a resume id."""
        if stream in self._ready or stream in self._pending:
            return
        needed = snapshot_types(stream) if fresh else frozenset()
        if needed:
            self._pending[stream] = set(needed)
        else:
            self._mark(stream)

    def snapshot(self, stream: str, type_: str) -> None:
        """A snapshot of `type_` was applied for `stream`."""
        pending = self._pending.get(stream)
        if pending is None:
            return
        pending.discard(type_)
        if not pending:
            del self._pending[stream]
            self._mark(stream)

    def _mark(self, stream: str) -> None:
        self._ready.add(stream)
        for streams, fut in list(self._waiters):
            if not fut.done() and all(s in self._ready for s in streams()):
                fut.set_result(None)

    async def wait(self, streams: Callable[[], Iterable[str]]) -> None:
        """Until every stream `streams()` names (asked again at each change) is ready."""
        if self._error is not None:
            raise self._error
        if all(s in self._ready for s in streams()):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (streams, fut)
        self._waiters.append(entry)
        try:
            await fut
        finally:
            self._waiters.remove(entry)

    def fail(self, error: ClientError | None) -> None:
        """The client closed: whoever waits never gets there."""
        self._error = error or ClientClosed("client closed")
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(self._error)
                fut.exception()
