"""Journals and leases of the embedded broker (the `Broker` interface describes them).

A journal is an ordered dict of records, oldest first, bounded by count and age when
records are added and swept by `expire` (the broker's upkeep) once nothing was added for its
`keep_ms` (its retention, shorter for a user's journal: base.journal_ttl_ms); `drop` removes
one at once (a forgotten user's). A lease is a holder and an expiry on the broker's clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tickwire.brokers.base import Record
from tickwire.core.clock import Clock


@dataclass(slots=True)
class _Journal:
    records: OrderedDict[str, Record] = field(default_factory=OrderedDict)
    keep_ms: int = 0  # how long it is kept after its last add (0: no bound)
    added_at: int = 0  # wall ms of the last add


class MemoryJournals:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._journals: dict[str, _Journal] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (holder, expires, monotonic s)

    def __len__(self) -> int:
        return len(self._journals)

    def add(self, name: str, records: Sequence[Record], cap: int, retention_ms: int, keep_ms: int) -> None:
        if not records:
            return
        journal = self._journals.setdefault(name, _Journal())
        journal.keep_ms = keep_ms
        journal.added_at = self.clock.wall_ms()
        kept = journal.records
        newest = 0
        for record in records:
            kept[record.id] = replace(record, value=dict(record.value))
            newest = max(newest, record.ms)
        while len(kept) > max(cap, 0):
            kept.popitem(last=False)
        if retention_ms > 0:
            cutoff = newest - retention_ms
            while kept and next(iter(kept.values())).ms < cutoff:
                kept.popitem(last=False)
        if not kept:
            del self._journals[name]

    def patch(self, name: str, record_id: str, fields: dict[str, Any]) -> Record | None:
        journal = self._journals.get(name)
        record = journal.records.get(record_id) if journal is not None else None
        if journal is None or record is None:
            return None
        updated = journal.records[record_id] = replace(record, value={**record.value, **fields})
        return _copy(updated)

    def get(self, name: str, record_id: str) -> Record | None:
        journal = self._journals.get(name)
        record = journal.records.get(record_id) if journal is not None else None
        return _copy(record) if record is not None else None

    def page(self, name: str, before: str | None, limit: int, since_ms: int) -> list[Record]:
        journal = self._journals.get(name)
        if journal is None or limit <= 0:
            return []
        records = journal.records
        if before is not None and before not in records:
            return []
        out: list[Record] = []
        started = before is None
        for record in reversed(records.values()):
            if not started:
                started = record.id == before
                continue
            if record.ms >= since_ms:
                out.append(_copy(record))
                if len(out) >= limit:
                    break
        return out

    def drop(self, name: str) -> None:
        self._journals.pop(name, None)

    def expire(self) -> None:
        """Drop the journals nothing was added to for their `keep_ms`."""
        now = self.clock.wall_ms()
        for name in [n for n, j in self._journals.items() if 0 < j.keep_ms < now - j.added_at]:
            del self._journals[name]
        mono = self.clock.monotonic()
        for lease in [n for n, (_, until) in self._leases.items() if until <= mono]:
            del self._leases[lease]

    # -- leases ----------------------------------------------------------------------------

    def lease(self, name: str, holder: str, ttl_s: float) -> bool:
        now = self.clock.monotonic()
        current = self._leases.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._leases[name] = (holder, now + ttl_s)
        return True

    def release(self, name: str, holder: str) -> None:
        current = self._leases.get(name)
        if current is not None and current[0] == holder:
            del self._leases[name]


def _copy(record: Record) -> Record:
    return replace(record, value=dict(record.value))
