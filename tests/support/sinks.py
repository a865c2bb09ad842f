"""A broker sink for tests: a node as a broker sees it, recording every call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tickwire.brokers.base import BrokerSink
from tickwire.core.event import Event


class RecordingSink:
    """A node as the broker sees it: records deliveries, resets and evictions, and wakes
    whoever waits for one (`wait_until`)."""

    def __init__(self, watched: set[str] | None = None) -> None:
        self.events: list[Event] = []
        self.broadcasts: list[tuple[str, dict[str, Any]]] = []
        self.resets: list[tuple[str, str]] = []
        self.evicted: list[int] = []
        self.watched = watched or set()
        self.conns: list[tuple[str, int]] = []
        self._changed = asyncio.Event()

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def on_broadcast(self, type_: str, data: dict[str, Any]) -> None:
        self.broadcasts.append((type_, data))
        self._changed.set()

    def on_reset(self, log: str, reason: str) -> None:
        self.resets.append((log, reason))
        self._changed.set()

    def on_evict(self, serial: int) -> None:
        self.evicted.append(serial)
        self._changed.set()

    def watched_logs(self) -> set[str]:
        return self.watched

    def local_connections(self) -> list[tuple[str, int]]:
        return self.conns

    def ids(self, log: str) -> list[str | None]:
        return [e.id for e in self.events if e.log == log]

    async def wait_until(self, check: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until `check()` holds, re-checking whenever the broker calls this sink."""

        async def waiting() -> None:
            while not check():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(waiting(), within)


def _is_a_sink(sink: RecordingSink) -> BrokerSink:
    return sink  # mypy checks that Sink implements the whole BrokerSink protocol
