"""The ingest stream: other services XADD publish bodies to `{p}:ingest` (docs/redis.md).

One node at a time holds a lease (`{p}:ingest:leader`, leader.lua), reads the stream from the
cursor `{p}:ingest:cursor` in order and hands each entry to the node's `IngestHandler` with
its entry id; the node publishes it as `Batch(..., ingest_id=entry_id)` and publish.lua moves
the cursor in the same atomic step, so each entry is published exactly once even if two nodes
briefly both think they lead. An entry that cannot be published (invalid) moves the cursor
too (ingest_skip.lua) and is recorded in `{p}:ingest:errors`. The answer, `{"ids": [...]}` or
`{"error", "status", "entry"}`, goes to the entry's optional `reply` list.

A `reply` must be a reply key of this deployment, `<p>:reply:<token>` (token: 1-64 of
A-Z a-z 0-9 . _ -): an entry naming any other key is refused (not published, recorded in
the errors stream, not answered), so a producer cannot touch another key. The answer is
pushed and the list given its TTL in one script (ingest_reply.lua) that leaves a key of
another type alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from redis.exceptions import RedisError

from tickwire.brokers.base import IngestHandler
from tickwire.brokers.redis.reading import text
from tickwire.brokers.redis.scripts import LEADER, Link, evalsha
from tickwire.brokers.redis.tasks import Tasks
from tickwire.errors import BrokerUnavailable, IngestDuplicate, PublishError

log = logging.getLogger("tickwire.redis")

INGEST_REPLY_TTL_MS = 60_000
INGEST_ERRORS_MAXLEN = 1000
INGEST_LEASE_MS = 5000
INGEST_BATCH = 100
READ_BLOCK_MS = 1000
FIRST_RETRY_S = 0.1
MAX_RETRY_S = 2.0


class Ingest:
    def __init__(self, link: Link, tasks: Tasks, handler: IngestHandler, *, node_id: str) -> None:
        self._link = link
        self._tasks = tasks
        self._handler = handler
        self._node_id = node_id
        self.ingested = 0

    async def run(self) -> None:
        """While this node holds the lease, read and publish; else check the lease every second."""
        delay = FIRST_RETRY_S
        while not self._tasks.stopping:
            try:
                leader = await self.lease_once()
            except (RedisError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            if not leader:
                await asyncio.sleep(INGEST_LEASE_MS / 5000)
                continue
            try:
                await self.read_once()
                delay = FIRST_RETRY_S
            except BrokerUnavailable as exc:
                log.warning("ingest paused: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)
            except (RedisError, OSError) as exc:
                log.warning("ingest paused", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)

    async def lease_once(self) -> bool:
        """Take or renew the lease: True when this node leads the ingest now."""
        keys = self._link.keys
        script = self._link.scripts[LEADER]
        return bool(
            await evalsha(self._link.client, script, 1, keys.ingest_leader, self._node_id, INGEST_LEASE_MS)
        )

    async def read_once(self, block_ms: int | None = READ_BLOCK_MS) -> int:
        """Publish the entries after the cursor (up to a batch; waiting up to `block_ms` for
        one, None: not at all), then trim them. The number of entries read."""
        client, keys = self._link.client, self._link.keys
        cursor = await client.get(keys.ingest_cursor) or b"0-0"
        reply: Any = await client.xread({keys.ingest: cursor}, count=INGEST_BATCH, block=block_ms)
        last = None
        count = 0
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                await self._ingest_one(text(entry_id), fields)
                last = text(entry_id)
                count += 1
        if last is not None:
            await client.xtrim(keys.ingest, minid=last)
        return count

    async def _ingest_one(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        result: dict[str, Any]
        reply = fields.get(b"reply") or None  # empty: no answer wanted
        try:
            if reply is not None and not self._link.keys.is_reply(reply):
                reply = None  # never touched: not ours to write
                raise PublishError(
                    f"`reply` must be a key {self._link.prefix}:reply:<token> "
                    "(token: 1-64 of A-Z a-z 0-9 . _ -); the entry was not published"
                )
            raw = fields.get(b"event")
            if raw is None:
                raise PublishError("the entry has no `event` field (a JSON event or array of events)")
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise PublishError(f"`event` is not valid JSON: {exc}") from None
            result = {"ids": await self._handler(body, entry_id)}
            self.ingested += 1
        except IngestDuplicate:
            return  # another node published it (and answered)
        except BrokerUnavailable:
            raise  # not published: the entry is read again when Redis is back
        except Exception as exc:
            status = 400 if isinstance(exc, PublishError) else 500
            if status == 500:
                log.exception("ingest entry failed", extra={"entry": entry_id})
            result = {"error": str(exc), "status": status, "entry": entry_id}
            if not await self._skip(entry_id, str(exc), fields):
                return  # another node got there first
        if reply is not None:
            await self._reply(reply, entry_id, result)

    async def _skip(self, entry_id: str, error: str, fields: dict[bytes, bytes]) -> bool:
        """Move the cursor past an entry that cannot be published and record it; False when
        the cursor already was past it (another node handled it)."""
        if not await self._link.run("ingest_skip", [entry_id]):
            return False
        record: dict[Any, Any] = {"entry": entry_id, "error": error, "event": fields.get(b"event", b"")}
        if b"reply" in fields:
            record["reply"] = fields[b"reply"]
        await self._link.client.xadd(
            self._link.keys.ingest_errors,
            record,
            maxlen=INGEST_ERRORS_MAXLEN,
            approximate=True,
        )
        return True

    async def _reply(self, reply_key: bytes, entry_id: str, result: dict[str, Any]) -> None:
        """Push the answer on a reply list and give it its TTL, atomically; a key of another
        type (not a list) is left alone and the entry goes unanswered."""
        answered = await self._link.run(
            "ingest_reply", [reply_key, orjson.dumps(result), INGEST_REPLY_TTL_MS]
        )
        if not answered:
            log.warning("ingest reply key is not a list: not answered", extra={"entry": entry_id})
