"""The embedded broker: logs, state and fan-out inside one process.

Every log gets a random epoch when it is created, so two logs never share ids (an id
packs the epoch with the log's counters) and a log created again (another process, or
after it was forgotten) can never be mistaken for the old one: a client resuming with an
old id gets an explicit reset.

Users are kept as long as retention.py says (buffer TTL, state TTL, a cap), their alert
history included, so memory stays bounded however many distinct users a process sees.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Sequence
from typing import Any

from tickwire.brokers.base import (
    Batch,
    Broker,
    BrokerSink,
    History,
    IngestHandler,
    Publication,
    Record,
    Snapshot,
    Stored,
    journal_ttl_ms,
)
from tickwire.brokers.journals import MemoryJournals
from tickwire.brokers.retention import UserRetention
from tickwire.core.clock import Clock, SystemClock
from tickwire.core.event import Event, log_user, sequence_key, user_log
from tickwire.core.ids import EPOCH_MAX, Position
from tickwire.core.log import EventLog
from tickwire.core.state import Finished, KeyedState, never_finished
from tickwire.errors import BrokerUnavailable, StateConflict


def new_epoch() -> int:
    return secrets.randbelow(EPOCH_MAX) + 1


class MemoryBroker(Broker):
    name = "memory"
    manages_buffer_ttl = True

    def __init__(
        self,
        *,
        user_history: int = 100,
        public_history: int = 100,
        state_capacity: int = 1000,
        finished: Finished = never_finished,
        clock: Clock | None = None,
        buffer_ttl_s: float = 300.0,
        state_ttl_s: float = 7 * 86400.0,
        max_users: int = 1_000_000,
    ) -> None:
        self.user_history = user_history
        self.public_history = public_history
        self.state_capacity = state_capacity
        self.finished = finished
        clock = clock or SystemClock()
        self.retention = UserRetention(
            clock, buffer_ttl_s=buffer_ttl_s, state_ttl_s=state_ttl_s, max_users=max_users
        )
        self.journals = MemoryJournals(clock)
        self._logs: dict[str, EventLog] = {}
        self._states: dict[str, dict[str, KeyedState]] = {}  # log -> kind -> state
        self._stored: dict[str, dict[str, Stored]] = {}  # log -> processor state name -> state
        self._strategies: dict[str, str] = {}
        self._owned: dict[str, set[str]] = {}  # user -> strategies they own
        self._index: dict[str, set[str]] = {}
        self._indexed: dict[str, set[str]] = {}  # member -> indexes holding it
        self._journals_of: dict[str, set[str]] = {}  # user -> their journals (alert history)
        self._sink: BrokerSink | None = None
        self.buffered = 0  # log events held in history, over every log

    async def start(self, sink: BrokerSink, ingest: IngestHandler | None = None) -> None:
        self._sink = sink  # no ingest path: publishers reach this broker only through its node

    async def stop(self) -> None:
        self._sink = None

    def _log(self, name: str) -> EventLog:
        log = self._logs.get(name)
        user = log_user(name)
        if user is not None:
            self.retention.touch(user)
        if log is None:
            capacity = self.user_history if user is not None else self.public_history
            log = self._logs[name] = EventLog(name, new_epoch(), capacity)
        return log

    def _state(self, log: str, kind: str) -> KeyedState:
        kinds = self._states.setdefault(log, {})
        state = kinds.get(kind)
        if state is None:
            state = kinds[kind] = KeyedState(self.state_capacity, self.finished)
        return state

    # -- publishing ----------------------------------------------------------------------

    def submit(self, batch: Batch) -> Awaitable[list[Event]]:
        """Stamp and deliver now (nothing can fail half-way in memory)."""
        done: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        if batch.ingest_id is not None:
            done.set_exception(BrokerUnavailable("the memory broker has no ingest stream"))
            return done
        for write in batch.writes:
            if self._stored_at(write.log, write.name).version != write.expect:
                done.set_exception(StateConflict(f"{write.name} of {write.log} changed since it was read"))
                return done
        stamped = [self.stamp(pub, batch.ms) for pub in batch.pubs if self._holds(pub)]
        if batch.trace is not None:
            for event in stamped:
                event.trace = batch.trace
        for write in batch.writes:
            self._write(write.log, write.name, write.value, write.expect + 1)
        for change in batch.index:
            self._reindex(change.index, change.member, change.present)
        if self._sink is not None:
            for event in stamped:
                self._sink.on_event(event)
        done.set_result(stamped)
        return done

    def _holds(self, pub: Publication) -> bool:
        """A conditional tick's state is still at the version it was derived from."""
        return pub.only_if is None or self._stored_at(pub.log, pub.only_if[0]).version == pub.only_if[1]

    def stamp(self, pub: Publication, ms: int) -> Event:
        log = self._log(pub.log)
        key = pub.conflation_key
        if pub.tick:
            event = log.stamp_tick(pub.type, pub.data, ms, key)
        else:
            kept = len(log)
            event = log.append(pub.type, pub.data, ms, key, sequence_key(pub.type, pub.item))
            self.buffered += len(log) - kept
        if pub.state is not None:
            assert event.pos is not None
            kind, state_key = pub.state
            self._state(pub.log, kind).merge(
                state_key, pub.data, event.pos, tick=pub.tick, type_=pub.type, ms=ms
            )
        if pub.strategy is not None:
            owner = log_user(pub.log)
            if owner is not None and pub.strategy not in self._strategies:
                self._strategies[pub.strategy] = owner
                self._owned.setdefault(owner, set()).add(pub.strategy)
        return event

    def _stored_at(self, log: str, name: str) -> Stored:
        return self._stored.get(log, {}).get(name) or Stored()

    def _write(self, log: str, name: str, value: dict[str, Any] | None, version: int) -> None:
        user = log_user(log)
        if user is not None:
            self.retention.touch(user)
        self._stored.setdefault(log, {})[name] = Stored(version, value)

    def _reindex(self, index: str, member: str, present: bool) -> None:
        if present:
            self._index.setdefault(index, set()).add(member)
            self._indexed.setdefault(member, set()).add(index)
            return
        members = self._index.get(index)
        if members is not None:
            members.discard(member)
            if not members:
                del self._index[index]
        indexes = self._indexed.get(member)
        if indexes is not None:
            indexes.discard(index)
            if not indexes:
                del self._indexed[member]

    async def broadcast(self, type_: str, data: dict[str, Any]) -> None:
        if self._sink is not None:
            self._sink.on_broadcast(type_, data)

    # -- reading -------------------------------------------------------------------------

    async def history(self, log: str, after: Position | None, *, since_ms: int | None = None) -> History:
        event_log = self._log(log)
        if after is None:
            return History(event_log.end, events=event_log.tail(len(event_log)))
        events = event_log.read_after(after)
        if not isinstance(events, list):
            return History(event_log.end, reset=events)
        ticks = []
        for state in self._states.get(log, {}).values():
            for entry in state.ticks_after(after, since_ms):
                ticks.append(Event(entry.type, dict(entry.value), log, entry.pos, entry.ms, tick=True))
        ticks.sort(key=lambda e: (e.pos.offset, e.pos.tick))  # type: ignore[union-attr]
        return History(event_log.end, events=events, ticks=ticks)

    async def snapshot(self, log: str, kinds: Sequence[str]) -> Snapshot:
        event_log = self._log(log)
        end = event_log.end
        states = {kind: [dict(v) for v in self._state(log, kind).values()] for kind in kinds}
        return Snapshot(end, states, empty=end.tick == 0)

    async def get_state(self, log: str, kind: str, key: str) -> dict[str, Any] | None:
        state = self._states.get(log, {}).get(kind)
        value = state.get(key) if state is not None else None
        return dict(value) if value is not None else None

    async def load(self, refs: Sequence[tuple[str, str]]) -> list[Stored]:
        return [self._stored_at(log, name) for log, name in refs]

    async def members(self, index: str) -> set[str]:
        return set(self._index.get(index, ()))

    async def strategy_owner(self, strategy_id: str) -> str | None:
        return self._strategies.get(strategy_id)

    # -- journals and leases (journals.py) ---------------------------------------------------

    async def journal_add(
        self,
        journal: str,
        records: Sequence[Record],
        *,
        cap: int,
        retention_ms: int,
        user: str | None = None,
    ) -> None:
        state_ttl_ms = 0
        if user is not None and records:
            self.retention.touch(user)  # a tracked user: the journal goes when they do
            self._journals_of.setdefault(user, set()).add(journal)
            state_ttl_ms = int(self.retention.state_ttl_s * 1000)
        self.journals.add(journal, records, cap, retention_ms, journal_ttl_ms(retention_ms, state_ttl_ms))

    async def journal_patch(self, journal: str, record_id: str, fields: dict[str, Any]) -> Record | None:
        return self.journals.patch(journal, record_id, fields)

    async def journal_get(self, journal: str, record_id: str) -> Record | None:
        return self.journals.get(journal, record_id)

    async def journal_page(
        self, journal: str, *, before: str | None = None, limit: int = 100, since_ms: int = 0
    ) -> list[Record]:
        return self.journals.page(journal, before, limit, since_ms)

    async def lease(self, name: str, holder: str, ttl_s: float) -> bool:
        return self.journals.lease(name, holder, ttl_s)

    async def release(self, name: str, holder: str) -> None:
        self.journals.release(name, holder)

    async def healthy(self) -> bool:
        return True

    # -- retention -------------------------------------------------------------------------

    def connection_opened(self, user: str, serial: int, evicted: Sequence[int] = ()) -> None:
        self.retention.opened(user)

    def connection_closed(self, user: str, serial: int) -> None:
        self.retention.closed(user)

    async def forget_history(self, log: str) -> None:
        event_log = self._logs.get(log)
        if event_log is not None:
            self.buffered -= len(event_log)
            event_log.clear()

    async def maintain(self) -> None:
        self.journals.expire()
        for user in self.retention.history_expired():
            await self.forget_history(user_log(user))
        for user in self.retention.expired():
            self._forget_user(user)

    def _forget_user(self, user: str) -> None:
        """Everything of a user, their alert history included: their next event starts a new
        log with a new epoch."""
        log = user_log(user)
        event_log = self._logs.pop(log, None)
        if event_log is not None:
            self.buffered -= len(event_log)
        self._states.pop(log, None)
        self._stored.pop(log, None)
        for strategy in self._owned.pop(user, ()):
            self._strategies.pop(strategy, None)
        for index in list(self._indexed.get(log, ())):
            self._reindex(index, log, False)
        for journal in self._journals_of.pop(user, ()):
            self.journals.drop(journal)

    def held_users(self) -> int:
        return len(self.retention)

    def held_events(self) -> int:
        return self.buffered
