"""The broker interface every backend implements (memory, Redis).

A broker owns the truth about logs: it stamps positions, keeps bounded history and
keyed state, and delivers every stamped event to every node's sink in log order.
`publish` is atomic per batch: offsets, history and state change together, or not
at all. The contract test suite (tests/brokers/test_contract.py) is written against
this interface only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.core.log import Reset
from tickwire.errors import BrokerUnavailable

__all__ = ["Broker", "BrokerSink", "BrokerUnavailable", "ClusterSink", "History", "Publication", "Snapshot"]


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


class BrokerSink(Protocol):
    """Where a broker delivers: the node's hub."""

    def on_event(self, event: Event) -> None: ...

    def on_broadcast(self, type_: str, data: dict[str, Any]) -> None: ...


class ClusterSink(BrokerSink, Protocol):
    """What a shared broker (Redis) also asks of a node; each method is optional, a
    broker looks it up and does without it (the contract tests' sink has none)."""

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

    async def ingest(self, body: Any) -> list[str | None]:
        """Validate and publish a POST /api/publish body that arrived through the broker."""
        ...


class Broker(ABC):
    name: str = "broker"
    # The broker expires user history itself (cluster-wide presence), not the node.
    manages_buffer_ttl: bool = False
    # The broker counts connections and connect attempts for every node (`connect_attempt`).
    shared_limits: bool = False
    # `submit` fixes a batch's place in the order when called, so the node need not hold
    # its publish lock while the batch travels to the broker and back.
    ordered_submit: bool = False

    def submit(self, pubs: Sequence[Publication], ms: int) -> Awaitable[list[Event]]:
        """Like `publish`, but the batch is queued (in call order) before this returns."""
        return self.publish(pubs, ms)

    def connection_opened(self, user: str, serial: int, evicted: Sequence[int] = ()) -> None:  # noqa: B027
        """A node registered a user's connection (and closed `evicted` over its own cap)."""

    def connection_closed(self, user: str, serial: int) -> None:  # noqa: B027
        """A node unregistered a user's connection."""

    async def connect_attempt(self, key: str, limit: int, window_s: float) -> float | None:
        """Count a connection attempt cluster-wide: None when allowed, else seconds to
        wait. Only brokers with `shared_limits` count attempts; the node asks no other."""
        raise TypeError(f"{type(self).__name__} does not share limits: the node counts attempts itself")

    @abstractmethod
    async def start(self, sink: BrokerSink) -> None:
        """Connect and start delivering stamped events to `sink`."""

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def publish(self, pubs: Sequence[Publication], ms: int) -> list[Event]:
        """Stamp, keep and fan out a batch atomically; the stamped events in order."""

    @abstractmethod
    async def broadcast(self, type_: str, data: dict[str, Any]) -> None:
        """Send an unlogged event to every connection on every node."""

    @abstractmethod
    async def history(self, log: str, after: Position | None) -> History:
        """Retained log events after `after` (all retained when None) and, when
        resuming, the tick values changed since `after`; or why not (`reset`)."""

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
