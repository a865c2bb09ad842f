"""Journals and leases on Redis (the `Broker` interface describes them; keys: docs/redis.md).

A journal is a sorted set of record ids by insertion number plus a hash of the records,
changed by journal.lua in one atomic step per call; a lease is a key holding its holder's id
with a TTL, taken, renewed and given up by leader.lua (the ingest lease's script).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from tickwire.brokers.base import Record
from tickwire.brokers.redis.reading import text
from tickwire.brokers.redis.scripts import LEADER, Link, evalsha


def record(record_id: Any, raw: Any) -> Record:
    """A record from its hash field, "ms<TAB>JSON"."""
    ms, _, value = (raw if isinstance(raw, bytes) else str(raw).encode()).partition(b"\t")
    return Record(text(record_id), int(ms), orjson.loads(value))


class Records:
    def __init__(self, link: Link, node_id: str) -> None:
        self._link = link
        self._node_id = node_id

    async def _journal(self, op: str, journal: str, *args: Any) -> Any:
        try:
            return await self._link.run("journal", [op, journal, *args])
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None

    async def add(
        self, journal: str, records: Sequence[Record], cap: int, retention_ms: int, ttl_ms: int
    ) -> None:
        """`ttl_ms`: the journal's keys expire that long after this add (0: they are kept)."""
        if not records:
            return
        flat: list[Any] = []
        for r in records:
            flat += [r.id, r.ms, orjson.dumps(r.value)]
        await self._journal("add", journal, cap, retention_ms, ttl_ms, len(records), *flat)

    async def patch(self, journal: str, record_id: str, fields: dict[str, Any]) -> Record | None:
        reply = await self._journal("patch", journal, record_id, orjson.dumps(fields))
        if reply is None:
            return None
        ms, value = reply
        return Record(record_id, int(ms), orjson.loads(value))

    async def get(self, journal: str, record_id: str) -> Record | None:
        raw = await self._journal("get", journal, record_id)
        return record(record_id, raw) if raw is not None else None

    async def page(self, journal: str, before: str | None, limit: int, since_ms: int) -> list[Record]:
        if limit <= 0:
            return []
        flat = await self._journal("page", journal, before or "", limit, since_ms)
        return [record(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]

    async def lease(self, name: str, ttl_s: float, holder: str | None = None) -> bool:
        """Take or renew (`ttl_s` > 0) or give up (0) a lease; whether it is held now."""
        script = self._link.scripts[LEADER]
        ms = max(0, int(ttl_s * 1000))
        try:
            held = await evalsha(
                self._link.client, script, 1, self._link.keys.lease(name), holder or self._node_id, ms
            )
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None
        return bool(held)
