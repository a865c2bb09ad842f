"""The processor interface: how features plug into the publish pipeline.

A processor sees every event of a batch after it is validated and sanitized and before it
is stamped. It may rewrite the event's payload (`draft.data`), refuse it (raise
`ValueError`: the whole batch is refused with that message, nothing is stamped), and
derive more events, which are stamped in the same atomic batch right after it. A
processor that holds events back (a throttle) hands them out later from `due()`, which
the node's timer calls; they are then published as a batch of their own.

Processors run synchronously, in the order they were given to the pipeline, and must not
do I/O: a batch's place in the log is fixed as soon as derivation ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tickwire.brokers.base import Publication
from tickwire.core.event import EventType, user_log


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
        item = str(data[spec.item_field]) if spec.item_field is not None else None
        return Publication(spec.name, data, self.log, tick=spec.always_tick, state=state, strategy=item)


class Processor(Protocol):
    """A derivation stage of the publish pipeline (see the module docstring)."""

    name: str

    def derive(self, draft: Draft) -> Sequence[Publication]:
        """Adjust `draft.data` if needed; what this event derives (stamped right after it)."""
        ...

    def due(self) -> Sequence[Publication]:
        """Derived events held back until now (e.g. by a throttle); called by the node's timer."""
        ...
