"""The broker interface every backend implements (memory, Redis).

A broker owns the truth about logs: it stamps positions, keeps bounded history and
keyed state, and delivers every stamped event to every node's sink in log order.
`submit` is atomic per batch: offsets, history and state change together, or not
at all. The contract test suite (tests/brokers/test_contract.py) is written against
this interface only.

Processors keep their own state in the broker too (`load`, `Batch.writes`): a named,
versioned value per log that is never delivered to clients (the portfolio a user's fills
build). A write says which version it was derived from and the whole batch is refused
(`StateConflict`) when another node changed it meanwhile, so derivation is linearizable
per log on any number of nodes. A tick can be conditional on such a state's version
(`Publication.only_if`): when the state moved on, the tick is left out (a newer event
carries newer values). Sets of logs (`Batch.index`, `members`) let a processor find the
logs it must visit (the holders of a symbol).

Journals (`journal_add`, `journal_page`...) are bounded lists of records kept apart from the
logs, for what must outlive a log's buffer and its TTL (a user's alert history): newest
first, paged by record id, bounded by count and age. A journal of a user is part of what is
kept of them: it goes with their state (`journal_add(user=...)`). Leases (`lease`,
`release`) let one node at a time do something for the whole cluster (run a scan); a broker
of one process grants them the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.core.log import Reset
from tickwire.errors import BrokerUnavailable

__all__ = [
    "Batch",
    "Broker",
    "BrokerSink",
    "BrokerUnavailable",
    "History",
    "IndexChange",
    "IngestHandler",
    "Publication",
    "Record",
    "Snapshot",
    "StateWrite",
    "Stored",
    "journal_ttl_ms",
]


@dataclass(frozen=True, slots=True)
class Publication:
    """An event to stamp: where it goes and what it changes."""

    type: str
    data: dict[str, Any]
    log: str
    tick: bool = False
    # Keyed state updated by this event: (kind, key), e.g. ("orders", "ord-1").
    state: tuple[str, str] | None = None
    # Strategy this event registers for the log's user (first publisher owns it).
    strategy: str | None = None
    # The item (strategy, scan) its `seq` counts within (core/event.py `sequence_key`).
    item: str | None = None
    # (processor state name on this log, version): stamp this tick only if that state is
    # still at that version; otherwise it is left out of the batch.
    only_if: tuple[str, int] | None = None

    @property
    def conflation_key(self) -> str | None:
        if self.state is None:
            return None
        return f"{self.log}|{self.state[0]}|{self.state[1]}"


@dataclass(frozen=True, slots=True)
class History:
    """What a resume from a position gets: log events, then changed tick values."""

    end: Position
    events: list[Event] = field(default_factory=list)
    ticks: list[Event] = field(default_factory=list)
    reset: Reset | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    end: Position
    states: dict[str, list[dict[str, Any]]]
    # The log's position is only meaningful to clients once something was stamped.
    empty: bool = False


@dataclass(frozen=True, slots=True)
class Stored:
    """A processor's state on one log, as read: its value and version (0: never written)."""

    version: int = 0
    value: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StateWrite:
    """A processor's new state on a log (None deletes it), derived from version `expect`."""

    log: str
    name: str
    value: dict[str, Any] | None
    expect: int


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a journal: its id (unique in the journal), when it was added (unix ms)
    and its value."""

    id: str
    ms: int
    value: dict[str, Any]


def journal_ttl_ms(retention_ms: int, state_ttl_ms: int) -> int:
    """How long a journal is kept after its last add (0: no bound): its retention, and for a
    user's journal (`state_ttl_ms` > 0) no longer than their state, so a user who is
    forgotten leaves nothing behind."""
    bounds = [ms for ms in (retention_ms, state_ttl_ms) if ms > 0]
    return min(bounds) if bounds else 0


@dataclass(frozen=True, slots=True)
class IndexChange:
    """Add `member` to (or remove it from) the set `index`."""

    index: str
    member: str
    present: bool


@dataclass(frozen=True, slots=True)
class Batch:
    """Publications stamped together, atomically, at one time, with the processor state
    they were derived with."""

    pubs: Sequence[Publication]
    ms: int
    # The ingest-stream entry this batch publishes: the broker publishes it at most once.
    ingest_id: str | None = None
    writes: Sequence[StateWrite] = ()
    index: Sequence[IndexChange] = ()
    # The publisher's correlation id: delivered events carry it (Event.trace), for logs.
    trace: str | None = None


class BrokerSink(Protocol):
    """Where a broker delivers: the node. Every broker calls `on_event` and `on_broadcast`;
    the other methods matter to brokers shared by several nodes (Redis)."""

    def on_event(self, event: Event) -> None:
        """A stamped event, in log order: dispatch it to this node's subscribers."""

    def on_broadcast(self, type_: str, data: dict[str, Any]) -> None:
        """An unlogged event (`test`) for every connection of this node."""

    def on_reset(self, log: str, reason: str) -> None:
        """A log's live events could not be repaired: reset its subscriptions."""

    def on_evict(self, serial: int) -> None:
        """The cluster-wide per-user cap closed this node's connection `serial`."""

    def watched_logs(self) -> set[str]:
        """The logs some connection of this node reads (repaired after a reconnect)."""
        ...

    def local_connections(self) -> list[tuple[str, int]]:
        """(user, serial) of this node's authenticated connections, oldest first."""
        ...


# A publish body that arrived through the broker (the Redis ingest stream) and the id of its
# entry: validate and publish it as `Batch(..., ingest_id=entry_id)`; the ids published.
IngestHandler = Callable[[Any, str], Awaitable[list[str | None]]]


class Broker(ABC):
    name: str = "broker"
    # The broker expires user history itself (cluster-wide presence), not the node.
    manages_buffer_ttl: bool = False
    # The broker counts connections and connect attempts for every node (`connect_attempt`).
    shared_limits: bool = False

    @abstractmethod
    def submit(self, batch: Batch) -> Awaitable[list[Event]]:
        """Stamp, keep and fan out a batch atomically. The batch's place in the order is
        fixed when this returns (so the caller need not hold a lock while it travels);
        the awaitable gives the stamped events, in order, once this node delivered them
        (conditional ticks whose state moved on are left out), or raises `StateConflict`
        (nothing stamped) when a write's `expect` is not the state's version any more."""

    @abstractmethod
    async def load(self, refs: Sequence[tuple[str, str]]) -> list[Stored]:
        """The processor states (log, name), in order, in one read."""

    @abstractmethod
    async def members(self, index: str) -> set[str]:
        """The members of a set of logs (`Batch.index`)."""

    # -- journals and leases ----------------------------------------------------------

    @abstractmethod
    async def journal_add(
        self,
        journal: str,
        records: Sequence[Record],
        *,
        cap: int,
        retention_ms: int,
        user: str | None = None,
    ) -> None:
        """Add `records` (oldest first) after the journal's newest; a record whose id is in
        the journal already gets the new value and keeps its place. Then the oldest records
        beyond `cap` go, and those added more than `retention_ms` before the newest one; a
        journal nothing was added to for `retention_ms` goes entirely. The journal of a
        `user` (their alert history) also goes when the user is forgotten, and at the latest
        the state TTL after its last add (`journal_ttl_ms`)."""

    @abstractmethod
    async def journal_patch(self, journal: str, record_id: str, fields: dict[str, Any]) -> Record | None:
        """Set top-level `fields` of a record's value; the record after it, None if absent."""

    @abstractmethod
    async def journal_get(self, journal: str, record_id: str) -> Record | None: ...

    @abstractmethod
    async def journal_page(
        self, journal: str, *, before: str | None = None, limit: int = 100, since_ms: int = 0
    ) -> list[Record]:
        """Newest first: at most `limit` records added before the record `before` (none when
        it is not in the journal), leaving out those older than `since_ms`."""

    @abstractmethod
    async def lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease `name` for `holder` for `ttl_s`: True when `holder` holds it
        now (it was free, expired, or already its own), False when another holder does."""

    @abstractmethod
    async def release(self, name: str, holder: str) -> None:
        """Give the lease up, if `holder` holds it."""

    async def maintain(self) -> None:  # noqa: B027
        """Periodic upkeep (the node calls it about once a second): retention, bounds."""

    def held_users(self) -> int:
        """Users whose history or state this process holds (a shared broker holds them elsewhere)."""
        return 0

    def held_events(self) -> int:
        """Log events this process holds in history."""
        return 0

    async def publish(self, pubs: Sequence[Publication], ms: int) -> list[Event]:
        """`submit` and wait: the stamped events in order."""
        return await self.submit(Batch(pubs, ms))

    def connection_opened(self, user: str, serial: int, evicted: Sequence[int] = ()) -> None:  # noqa: B027
        """A node registered a user's connection (and closed `evicted` over its own cap)."""

    def connection_closed(self, user: str, serial: int) -> None:  # noqa: B027
        """A node unregistered a user's connection."""

    async def connect_attempt(self, key: str, limit: int, window_s: float) -> float | None:
        """Count a connection attempt cluster-wide: None when allowed, else seconds to
        wait. Only brokers with `shared_limits` count attempts; the node asks no other."""
        raise TypeError(f"{type(self).__name__} does not share limits: the node counts attempts itself")

    @abstractmethod
    async def start(self, sink: BrokerSink, ingest: IngestHandler | None = None) -> None:
        """Connect and start delivering stamped events to `sink`; brokers with an ingest
        path hand what arrives there to `ingest`."""

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def broadcast(self, type_: str, data: dict[str, Any]) -> None:
        """Send an unlogged event to every connection on every node."""

    @abstractmethod
    async def history(self, log: str, after: Position | None, *, since_ms: int | None = None) -> History:
        """Retained log events after `after` (all retained when None) and, when
        resuming, the tick values changed since `after`; or why not (`reset`). With
        `since_ms`, also the tick values changed before `after` but stamped at or after
        that unix ms (a throttle that fans ticks out after stamping may have sent
        those after `after`); a broker may bound how many of those it looks at."""

    @abstractmethod
    async def snapshot(self, log: str, kinds: Sequence[str]) -> Snapshot:
        """Current keyed values of `kinds` and the log position they reflect."""

    @abstractmethod
    async def get_state(self, log: str, kind: str, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def strategy_owner(self, strategy_id: str) -> str | None:
        """The user owning a strategy, None when no event made it known."""

    @abstractmethod
    async def forget_history(self, log: str) -> None:
        """Drop a log's retained history (user buffer TTL); offsets keep counting."""

    @abstractmethod
    async def healthy(self) -> bool: ...
