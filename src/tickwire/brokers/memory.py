"""The embedded broker: logs, state and fan-out inside one process.

Every log gets a random epoch when it is created, so two logs never share ids (an id
packs the epoch with the log's counters) and a log created again (another process, or
after it was forgotten) can never be mistaken for the old one: a client resuming with an
old id gets an explicit reset.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Sequence
from typing import Any

from tickwire.brokers.base import Batch, Broker, BrokerSink, History, IngestHandler, Publication, Snapshot
from tickwire.core.event import Event, log_user
from tickwire.core.ids import EPOCH_MAX, Position
from tickwire.core.log import EventLog
from tickwire.core.state import Finished, KeyedState, never_finished
from tickwire.errors import BrokerUnavailable


def new_epoch() -> int:
    return secrets.randbelow(EPOCH_MAX) + 1


class MemoryBroker(Broker):
    name = "memory"

    def __init__(
        self,
        *,
        user_history: int = 100,
        public_history: int = 100,
        state_capacity: int = 1000,
        finished: Finished = never_finished,
    ) -> None:
        self.user_history = user_history
        self.public_history = public_history
        self.state_capacity = state_capacity
        self.finished = finished
        self._logs: dict[str, EventLog] = {}
        self._states: dict[tuple[str, str], KeyedState] = {}
        self._strategies: dict[str, str] = {}
        self._sink: BrokerSink | None = None

    async def start(self, sink: BrokerSink, ingest: IngestHandler | None = None) -> None:
        self._sink = sink  # no ingest path: publishers reach this broker only through its node

    async def stop(self) -> None:
        self._sink = None

    def _log(self, name: str) -> EventLog:
        log = self._logs.get(name)
        if log is None:
            capacity = self.user_history if log_user(name) is not None else self.public_history
            log = self._logs[name] = EventLog(name, new_epoch(), capacity)
        return log

    def _state(self, log: str, kind: str) -> KeyedState:
        state = self._states.get((log, kind))
        if state is None:
            state = self._states[(log, kind)] = KeyedState(self.state_capacity, self.finished)
        return state

    def submit(self, batch: Batch) -> Awaitable[list[Event]]:
        """Stamp and deliver now (nothing can fail half-way in memory)."""
        done: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        if batch.ingest_id is not None:
            done.set_exception(BrokerUnavailable("the memory broker has no ingest stream"))
            return done
        stamped = [self.stamp(pub, batch.ms) for pub in batch.pubs]
        if self._sink is not None:
            for event in stamped:
                self._sink.on_event(event)
        done.set_result(stamped)
        return done

    def stamp(self, pub: Publication, ms: int) -> Event:
        log = self._log(pub.log)
        key = pub.conflation_key
        if pub.tick:
            event = log.stamp_tick(pub.type, pub.data, ms, key)
        else:
            event = log.append(pub.type, pub.data, ms, key)
        if pub.state is not None:
            assert event.pos is not None
            kind, state_key = pub.state
            self._state(pub.log, kind).merge(
                state_key, pub.data, event.pos, tick=pub.tick, type_=pub.type, ms=ms
            )
        if pub.strategy is not None:
            owner = log_user(pub.log)
            if owner is not None:
                self._strategies.setdefault(pub.strategy, owner)
        return event

    async def broadcast(self, type_: str, data: dict[str, Any]) -> None:
        if self._sink is not None:
            self._sink.on_broadcast(type_, data)

    async def history(self, log: str, after: Position | None) -> History:
        event_log = self._log(log)
        if after is None:
            return History(event_log.end, events=event_log.tail(len(event_log)))
        events = event_log.read_after(after)
        if not isinstance(events, list):
            return History(event_log.end, reset=events)
        ticks = []
        for (state_log, _kind), state in self._states.items():
            if state_log == log:
                for entry in state.ticks_after(after):
                    ticks.append(Event(entry.type, dict(entry.value), log, entry.pos, entry.ms, tick=True))
        ticks.sort(key=lambda e: (e.pos.offset, e.pos.tick))  # type: ignore[union-attr]
        return History(event_log.end, events=events, ticks=ticks)

    async def snapshot(self, log: str, kinds: Sequence[str]) -> Snapshot:
        event_log = self._log(log)
        end = event_log.end
        states = {kind: [dict(v) for v in self._state(log, kind).values()] for kind in kinds}
        return Snapshot(end, states, empty=end.tick == 0)

    async def get_state(self, log: str, kind: str, key: str) -> dict[str, Any] | None:
        state = self._states.get((log, kind))
        value = state.get(key) if state is not None else None
        return dict(value) if value is not None else None

    async def strategy_owner(self, strategy_id: str) -> str | None:
        return self._strategies.get(strategy_id)

    async def forget_history(self, log: str) -> None:
        event_log = self._logs.get(log)
        if event_log is not None:
            event_log.clear()

    async def healthy(self) -> bool:
        return True
