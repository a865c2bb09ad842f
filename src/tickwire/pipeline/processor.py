"""The processor interface: how features plug into the publish pipeline.

A processor sees every event of a batch after it is validated and sanitized and before it
is stamped (`derive`). It may rewrite the event's payload (`draft.data`), refuse it (raise
`ValueError`: the whole batch is refused with that message, nothing is stamped), and
derive more events, which are stamped in the same atomic batch right after it.

State a processor keeps lives in the broker, per log (`reads` names what a draft needs;
the pipeline reads it before `derive`, which reads and writes it through a `StateView`).
The batch carries the writes with the versions they were derived from: when another node
wrote meanwhile, nothing is stamped and the pipeline reads and derives again. So a
processor on any number of nodes behaves as one.

After a batch is stamped, `after` may return a follow-up (events it causes elsewhere,
such as the marks of positions a price moves); `due` returns what a processor held back
(a throttle) once its time came; the node's timer calls it. Follow-ups are published as
batches of their own; their ticks can be conditional on a state's version
(`Publication.only_if`), so a follow-up derived from a state that moved on is left out;
its `redo` may derive again what was left out but is still due.

`derive` runs synchronously and must not do I/O; `after` and `due` may read the broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tickwire.brokers.base import IndexChange, Publication, StateWrite, Stored
from tickwire.core.event import Event, EventType, user_log

StateRef = tuple[str, str]  # (log, processor state name)


@dataclass(slots=True)
class Draft:
    """One event on its way to the broker, before it is stamped."""

    spec: EventType
    data: dict[str, Any]
    user: str | None
    ms: int  # publish time, unix ms (every event of a batch shares it)
    ts: str  # the same as an ISO 8601 timestamp, for payloads

    @property
    def type(self) -> str:
        return self.spec.name

    @property
    def log(self) -> str:
        return user_log(self.user) if self.user is not None else (self.spec.public_log or "")

    def publication(self) -> Publication:
        """What the broker stamps for this draft: its log, tick or not, keyed state, item."""
        spec, data = self.spec, self.data
        state = (spec.state[0], str(data[spec.state[1]])) if spec.state is not None else None
        owned = str(data[spec.item_field]) if spec.item_field is not None else None
        item = str(data[spec.sequence_field]) if spec.sequence_field is not None else None
        return Publication(
            spec.name, data, self.log, tick=spec.always_tick, state=state, strategy=owned, item=item
        )


class StateView:
    """The processor state one batch was derived with: what was read, what it wrote."""

    def __init__(self, read: dict[StateRef, Stored]) -> None:
        self._read = read
        self._values: dict[StateRef, dict[str, Any] | None] = {ref: s.value for ref, s in read.items()}
        self._written: dict[StateRef, None] = {}
        self.index: list[IndexChange] = []

    def get(self, log: str, name: str) -> dict[str, Any] | None:
        """The state as this batch left it so far (reads must have been declared)."""
        ref = (log, name)
        if ref not in self._values:
            raise KeyError(f"{name} of {log} was not declared by `reads`")
        return self._values[ref]

    def put(self, log: str, name: str, value: dict[str, Any] | None) -> None:
        self.get(log, name)
        self._values[(log, name)] = value
        self._written[(log, name)] = None

    def version(self, log: str, name: str) -> int:
        stored = self._read.get((log, name))
        return stored.version if stored is not None else 0

    @property
    def writes(self) -> list[StateWrite]:
        return [
            StateWrite(log, name, self._values[(log, name)], self._read[(log, name)].version)
            for log, name in self._written
        ]


@dataclass(slots=True)
class FollowUp:
    """Events a processor publishes as a batch of their own (after stamping, or on time), with
    the state they were derived from: when a write conflicts (another node wrote that state),
    the pipeline asks the processor again (`after` or `due` with the same arguments), so those
    must read the state afresh each time."""

    pubs: list[Publication] = field(default_factory=list)
    index: list[IndexChange] = field(default_factory=list)
    writes: list[StateWrite] = field(default_factory=list)
    # Called with the stamped events: what to publish again of the conditional ticks the
    # broker left out (their state moved on for a reason that does not make them stale).
    redo: Callable[[Sequence[Event]], Awaitable[FollowUp | None]] | None = None

    def __bool__(self) -> bool:
        return bool(self.pubs or self.index or self.writes)


class Processor(Protocol):
    """A derivation stage of the publish pipeline (see the module docstring)."""

    name: str

    def reads(self, draft: Draft) -> Sequence[StateRef]:
        """The processor state deriving `draft` needs (read before `derive`)."""
        ...

    def derive(self, draft: Draft, state: StateView) -> Sequence[Publication]:
        """Adjust `draft.data` if needed; what this event derives (stamped right after it)."""
        ...

    async def after(self, events: Sequence[Event]) -> FollowUp | None:
        """What the stamped events cause elsewhere, published right after them."""
        ...

    async def due(self) -> FollowUp | None:
        """Derived events held back until now (e.g. by a throttle); called by the node's timer."""
        ...


class BaseProcessor:
    """A processor that needs no state and causes nothing later: override what you use."""

    name = "processor"

    def reads(self, draft: Draft) -> Sequence[StateRef]:
        return ()

    def derive(self, draft: Draft, state: StateView) -> Sequence[Publication]:
        return ()

    async def after(self, events: Sequence[Event]) -> FollowUp | None:
        return None

    async def due(self) -> FollowUp | None:
        return None
