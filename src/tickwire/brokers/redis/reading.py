"""Reads: history, snapshots and keyed values, turned from script replies into Events.

Each read is one call (a script reads the log's end in the same atomic step as the data);
waiting until the subscription delivered up to that end is the caller's part (Delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from tickwire.brokers.base import History, Snapshot, Stored
from tickwire.brokers.memory import new_epoch
from tickwire.brokers.redis.scripts import Link
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.core.log import Reset


def stored(raw: bytes | None) -> Stored:
    """A processor state from its field, "version<TAB>JSON"."""
    if raw is None:
        return Stored()
    version, _, value = raw.partition(b"\t")
    return Stored(int(version), orjson.loads(value))


def position(head: list[Any]) -> Position:
    return Position(int(head[0]), int(head[1]), int(head[2]))


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_event(log_name: str, epoch: int, entry: list[Any]) -> Event:
    """A log event from its stream entry (id `{offset}-{tick}`; fields type, data, ms, kind, key)."""
    entry_id, flat = entry
    offset, _, tick = text(entry_id).partition("-")
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    kind = fields.get(b"kind")
    key = f"{log_name}|{text(kind)}|{text(fields[b'key'])}" if kind is not None else None
    pos = Position(epoch, int(offset), int(tick))
    event = Event(
        text(fields[b"type"]), orjson.loads(fields[b"data"]), log_name, pos, int(fields[b"ms"]), key=key
    )
    seq = fields.get(b"seq")
    event.seq = int(seq) if seq is not None else None
    return event


def tick_event(log_name: str, epoch: int, row: list[Any]) -> Event:
    """A keyed value last changed by a tick: (kind, key, tick, "type\\toffset\\tms", value)."""
    kind, key, score, meta, value = row
    type_, offset, ms = text(meta).split("\t")
    pos = Position(epoch, int(offset), int(float(score)))
    return Event(
        type_,
        orjson.loads(value),
        log_name,
        pos,
        int(ms),
        key=f"{log_name}|{text(kind)}|{text(key)}",
        tick=True,
    )


class Reader:
    def __init__(self, link: Link, *, kinds: str, state_ttl_ms: int) -> None:
        self._link = link
        self._kinds = kinds
        self._state_ttl_ms = state_ttl_ms

    async def _read(self, name: str, args: Sequence[Any]) -> Any:
        """A read-only script call: retried once (a pooled connection may predate a restart)."""
        try:
            try:
                return await self._link.run(name, args)
            except RedisConnectionError:
                return await self._link.run(name, args)
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None

    async def history(self, log_name: str, after: Position | None, *, since_ms: int | None = None) -> History:
        args: list[Any] = [log_name, new_epoch(), self._kinds, self._state_ttl_ms]
        if after is None:
            args += [0, 0, 0, 0]
        else:
            args += [1, after.epoch, after.offset, after.tick]
        args.append("" if since_ms is None else since_ms)
        head, reason, entries, ticks = await self._read("history", args)
        end = position(head)
        if reason:
            return History(end, reset=Reset(text(reason)))
        events = [entry_event(log_name, end.epoch, entry) for entry in entries]
        return History(end, events=events, ticks=[tick_event(log_name, end.epoch, row) for row in ticks])

    async def snapshot(self, log_name: str, kinds: Sequence[str]) -> Snapshot:
        reply = await self._read("snapshot", [log_name, new_epoch(), self._kinds, self._state_ttl_ms, *kinds])
        end = position(reply[0])
        states = {kind: orjson.loads(raw) for kind, raw in zip(kinds, reply[1:], strict=True)}
        return Snapshot(end, states, empty=end.tick == 0)

    async def get_state(self, log_name: str, kind: str, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._link.client.hget(self._link.keys.state(log_name, kind), key)
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None
        if raw is None:
            return None
        value: dict[str, Any] = orjson.loads(raw)
        return value

    async def load(self, refs: Sequence[tuple[str, str]]) -> list[Stored]:
        """Processor states, in one round trip."""
        if not refs:
            return []
        keys = self._link.keys
        try:
            async with self._link.client.pipeline(transaction=False) as pipe:
                for log_name, name in refs:
                    pipe.hget(keys.stored(log_name), name)
                raws = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None
        return [stored(raw) for raw in raws]

    async def members(self, index: str) -> set[str]:
        try:
            raw = await self._link.client.smembers(self._link.keys.index(index))
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None
        return {text(member) for member in raw}

    async def strategy_owner(self, strategy_id: str) -> str | None:
        try:
            raw = await self._link.client.get(self._link.keys.strategy(strategy_id))
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None
        return None if raw is None else text(raw)

    async def forget_history(self, log_name: str) -> None:
        try:
            await self._link.client.delete(self._link.keys.log_events(log_name))
        except (RedisError, OSError) as exc:
            raise self._link.unavailable(exc) from None
