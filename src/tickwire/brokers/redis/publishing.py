"""The ordered, pipelined publish path: submit -> queue -> one writer task -> EVALSHA
publish.lua (one pipeline for whatever queued meanwhile) -> each batch's future.

`submit` fixes a batch's place in the order when it returns (it is queued then); the
awaitable it returns gives the stamped events once this node's own subscription delivered
them (at most the echo timeout; then the log is repaired), so a publisher's local
subscribers see its events before it gets its answer.

Failures say whether anything may have been stored: `BrokerUnavailable` when Redis was never
reached, `PublishOutcomeUnknown` when the request went out and no answer came back,
`IngestDuplicate` when the batch's ingest entry was already published.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

import msgpack
import orjson
from redis.exceptions import NoScriptError, RedisError, ResponseError

from tickwire.brokers.base import Batch, Publication
from tickwire.brokers.memory import new_epoch
from tickwire.brokers.redis.scripts import Link
from tickwire.brokers.redis.tasks import Tasks
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.errors import (
    BrokerUnavailable,
    IngestDuplicate,
    PublishError,
    PublishOutcomeUnknown,
    StateConflict,
)

MAX_PIPELINE = 256  # batches per round trip

Outgoing = tuple[list[Any], asyncio.Future[Any]]


class Echo(Protocol):
    """Delivery, as a publisher waits on it: its own events coming back."""

    @property
    def subscribed(self) -> bool: ...

    async def delivered(self, log_name: str, pos: Position, wait_s: float) -> bool: ...

    def request_repair(self, log_name: str) -> None: ...


async def _done(value: list[Event]) -> list[Event]:
    return value


async def _failed(error: BaseException) -> list[Event]:
    raise error


def pack(pubs: Sequence[Publication], packer: Any = None) -> bytes:
    """The batch argument of publish.lua: one MessagePack array of strings, per event log,
    type, tick, kind, key, strategy, item, only_if name, only_if version, npairs, then (key JSON,
    value JSON) per data field.

    Packed item by item into a reusable `msgpack.Packer(use_bin_type=False, autoreset=False)`
    (the bytes are those of `msgpack.packb(items, use_bin_type=False)`): each JSON text is
    freed as soon as it is packed, instead of thousands living at once (which makes the C
    allocator grow and trim its heap on every batch)."""
    if packer is None:
        packer = msgpack.Packer(use_bin_type=False, autoreset=False)
    dumps = orjson.dumps
    put = packer.pack
    size = 0
    for pub in pubs:
        size += 10 + 2 * len(pub.data)
    try:
        packer.pack_array_header(size)
        for pub in pubs:
            kind, key = pub.state if pub.state is not None else ("", "")
            put(pub.log)
            put(pub.type)
            put("1" if pub.tick else "0")
            put(kind)
            put(key)
            put(pub.strategy or "")
            put(pub.item or "")
            cond, version = pub.only_if if pub.only_if is not None else ("", 0)
            put(cond)
            put(str(version))
            put(str(len(pub.data)))
            for name, value in pub.data.items():
                if type(name) is not str:
                    raise PublishError(f"{pub.type}: data keys must be strings, got {name!r}")
                put(dumps(name))
                put(dumps(value))
        packed: bytes = packer.bytes()
        return packed
    finally:
        packer.reset()


def pack_writes(batch: Batch) -> tuple[bytes, bytes]:
    """The processor state writes and the index changes of a batch, for publish.lua."""
    writes: list[str] = []
    for w in batch.writes:
        value = orjson.dumps(w.value).decode() if w.value is not None else ""
        writes += [w.log, w.name, str(w.expect), value]
    index: list[str] = []
    for change in batch.index:
        index += [change.index, change.member, "1" if change.present else "0"]
    return msgpack.packb(writes, use_bin_type=False), msgpack.packb(index, use_bin_type=False)


def _fail(todo: Sequence[Outgoing], error: BaseException) -> None:
    for _, fut in todo:
        if not fut.done():
            fut.set_exception(error)


class Publisher:
    def __init__(
        self,
        link: Link,
        tasks: Tasks,
        echo: Echo,
        *,
        user_history: int,
        public_history: int,
        state_capacity: int,
        buffer_ttl_ms: int,
        state_ttl_ms: int,
        kinds: str,
        echo_timeout_s: float,
    ) -> None:
        self._link = link
        self._tasks = tasks
        self._echo = echo
        self._limits = [user_history, public_history, state_capacity, buffer_ttl_ms, state_ttl_ms]
        self._kinds = kinds
        self._echo_timeout_s = echo_timeout_s
        self._outgoing: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._packer = msgpack.Packer(use_bin_type=False, autoreset=False)

    def submit(self, batch: Batch) -> Awaitable[list[Event]]:
        """Queue the batch now (its place in the order is fixed by this call)."""
        pubs = batch.pubs
        if not pubs and not batch.writes and not batch.index:
            return _done([])
        ms = batch.ms
        args: list[Any] = [
            ms,
            *self._limits,
            new_epoch(),
            self._kinds,
            batch.ingest_id or "",
            len(pubs),
            pack(pubs, self._packer),
            *pack_writes(batch),
            batch.trace or "",
        ]
        if self._tasks.stopping:
            return _failed(BrokerUnavailable("the Redis broker is stopped"))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._outgoing.put_nowait((args, fut))
        return self._stamped(pubs, ms, fut, batch.trace)

    async def _stamped(
        self, pubs: Sequence[Publication], ms: int, reply_fut: asyncio.Future[Any], trace: str | None = None
    ) -> list[Event]:
        reply = await reply_fut
        events = []
        last: dict[str, Position] = {}
        for i, pub in enumerate(pubs):
            epoch = int(reply[4 * i])
            if epoch == 0:  # a conditional tick whose state moved on: left out
                continue
            pos = Position(epoch, int(reply[4 * i + 1]), int(reply[4 * i + 2]))
            seq = int(reply[4 * i + 3]) or None
            event = Event(pub.type, pub.data, pub.log, pos, ms, key=pub.conflation_key, tick=pub.tick)
            event.trace = trace
            event.seq = seq
            events.append(event)
            last[pub.log] = pos
        echo = self._echo
        if echo.subscribed:  # the publisher sees its own events delivered before it returns
            for log_name, pos in last.items():
                if not await echo.delivered(log_name, pos, self._echo_timeout_s):
                    echo.request_repair(log_name)
        return events

    async def run(self) -> None:
        """The writer: send queued batches in order, pipelined; answer each one's future."""
        queue, client, prefix = self._outgoing, self._link.client, self._link.prefix
        script = self._link.scripts["publish"]
        while not self._tasks.stopping:
            todo = [await queue.get()]
            while not queue.empty() and len(todo) < MAX_PIPELINE:
                todo.append(queue.get_nowait())
            for _attempt in range(2):
                try:
                    if len(todo) == 1:  # a plain command costs less than a pipeline of one
                        try:
                            results = [await client.evalsha(script.sha, 0, prefix, *todo[0][0])]
                        except ResponseError as exc:
                            results = [exc]
                    else:
                        async with client.pipeline(transaction=False) as pipe:
                            for args, _ in todo:
                                pipe.evalsha(script.sha, 0, prefix, *args)
                            results = await pipe.execute(raise_on_error=False)
                except asyncio.CancelledError:
                    _fail(todo, BrokerUnavailable("the Redis broker stopped"))
                    raise
                except (RedisError, OSError) as exc:
                    _fail(todo, self._lost(exc))
                    break
                todo = self._answer(todo, results)
                if not todo:
                    break
                with contextlib.suppress(RedisError, OSError):
                    await client.script_load(script.text)
            _fail(todo, BrokerUnavailable("Redis lost the publish script twice"))

    def _lost(self, exc: BaseException) -> BrokerUnavailable:
        if "connecting" in str(exc).lower():  # never reached Redis: certainly not stored
            return self._link.unavailable(exc)
        return PublishOutcomeUnknown(str(self._link.unavailable(exc)))

    def _answer(self, todo: Sequence[Outgoing], results: Sequence[Any]) -> list[Outgoing]:
        """Answer each batch's future from its result; the batches to send again (Redis
        lost its scripts, a restart: those did not run)."""
        retry = []
        for (args, fut), result in zip(todo, results, strict=True):
            if isinstance(result, NoScriptError):
                retry.append((args, fut))
            elif fut.done():  # its publisher gave up waiting (cancelled)
                continue
            elif isinstance(result, ResponseError):
                if "TICKWIRE_DUPLICATE" in str(result):
                    fut.set_exception(IngestDuplicate(str(result)))
                elif "TICKWIRE_CONFLICT" in str(result):
                    fut.set_exception(StateConflict(str(result).removeprefix("TICKWIRE_CONFLICT ")))
                else:
                    fut.set_exception(self._link.unavailable(result))
            else:
                fut.set_result(result)
        return retry

    def fail_queued(self) -> None:
        """The broker stopped: nothing still queued will be sent."""
        while not self._outgoing.empty():
            _, fut = self._outgoing.get_nowait()
            if not fut.done():
                fut.set_exception(BrokerUnavailable("the Redis broker stopped"))
