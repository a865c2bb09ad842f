"""Delta prices (SPEC 6): a tick as only the fields that changed since the previous tick of
its key, for subscriptions that ask for it (`?delta=1`, `"delta":true`).

A delta is relative to the tick fanned out before it on this node (after the hub's
throttle), so it is the same for every subscriber: `Bases` links each keyed public tick to
its predecessor, `delta_of` builds the delta event once and caches it on the tick, and
each wire format encodes it once (Event.wire), like any event. A subscriber gets the delta
only when it was sent that predecessor (core/hub.py `DeltaSubscription`); otherwise the
full tick, which a client merging deltas can always take.

The delta payload is the key field, every field whose value differs from the base's, and
`"delta": true`. A tick that lost a field of its base, or whose payload has a `delta` field
of its own, goes out in full.
"""

from __future__ import annotations

from typing import Any

from tickwire.core.event import Event

DELTA_FIELD = "delta"


def delta_payload(data: dict[str, Any], base: dict[str, Any], key_field: str) -> dict[str, Any] | None:
    """The fields of `data` that differ from `base` (and the key field), marked as a delta;
    None when only the full payload says it (a field was removed, `delta` is taken)."""
    if DELTA_FIELD in data or any(k not in data for k in base):
        return None
    out = {k: v for k, v in data.items() if k == key_field or k not in base or base[k] != v}
    out[DELTA_FIELD] = True
    return out


def delta_of(event: Event, key_field: str) -> Event | None:
    """The delta form of a linked tick (made once, shared); None when it has no base."""
    delta = event.delta
    if delta is not None:
        return delta
    base = event.base
    if base is None:
        return None
    payload = delta_payload(event.data, base[1], key_field)
    if payload is None:
        event.base = None  # the full form only: later subscribers need not look again
        return None
    delta = Event(event.type, payload, event.log, event.pos, event.ms, key=event.key, tick=True)
    delta.trace = event.trace
    event.delta = delta
    return delta


class Bases:
    """The last tick fanned out per (log, key), for the logs some delta subscription reads.

    Logs without a delta subscriber cost one dict lookup per tick and keep nothing.
    """

    __slots__ = ("_last", "_readers")

    def __init__(self) -> None:
        self._readers: dict[str, int] = {}  # log -> delta subscriptions reading it
        self._last: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}  # log -> key -> (id, data)

    def reader_added(self, log: str) -> None:
        self._readers[log] = self._readers.get(log, 0) + 1
        self._last.setdefault(log, {})

    def reader_removed(self, log: str) -> None:
        left = self._readers.get(log, 0) - 1
        if left > 0:
            self._readers[log] = left
        else:
            self._readers.pop(log, None)
            self._last.pop(log, None)

    def link(self, event: Event) -> None:
        """Point a keyed tick at the previous tick of its key (when its log has readers)."""
        last = self._last.get(event.log)
        if last is None or event.key is None or event.id is None:
            return
        event.base = last.get(event.key)
        last[event.key] = (event.id, event.data)
