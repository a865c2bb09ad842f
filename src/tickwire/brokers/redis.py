"""The Redis broker: many tickwire nodes on one Redis.

What lives where (the full key layout, for services that read or publish with a plain
Redis client, is in docs/redis.md):

- Every log has a meta hash (epoch, offset, tick), a stream of its log events (entry id
  `{offset}-{tick}`, bounded by MAXLEN = the user / public buffer) and keyed state in
  hashes (orders, positions, prices, strategies), bounded per kind like the memory broker.
  All of it changes in ONE Lua script per published batch (`lua/publish.lua`): two nodes
  publishing to one log can never produce duplicate or out-of-order offsets.
- The script publishes the stamped batch on one pub/sub channel. Each node holds ONE
  subscription (not one per client) and delivers to its hub in (log, tick) order: a node
  that sees a hole in a log's tick sequence (it was disconnected, or Redis dropped a slow
  subscriber) reads the missing log events from the stream and the changed keyed values
  from state before it delivers anything later. When the hole cannot be filled (history
  trimmed, or the log has a new epoch because Redis lost its data) the node's sink is told
  (`on_reset`) and its clients get `stream:reset` and a fresh snapshot.
- Epochs live in Redis: nodes restart without changing them. A log gets a new epoch only
  when its meta hash is gone (Redis restarted without persistence, or the log sat untouched
  for `state_ttl_s`), i.e. when its history really is lost.
- Presence (which node holds which user's connections) is a sorted set per user: the
  per-user connection cap holds across nodes (the node holding the oldest connection closes
  it), and a user's history starts to expire (TICKWIRE_BUFFER_TTL_S) only when no node
  holds a connection of theirs. Nodes heartbeat; a node silent for `dead_after_s` is
  buried by the others (its connections stop counting).
- The per-IP connect rate is a sorted set per address, shared by every node.
- Services publish from outside Python by XADD to the ingest stream; one node at a time
  (a lease) validates and publishes each entry exactly once, in order.

While Redis cannot be reached, `healthy()` is False (/readyz answers 503), publishing raises
`BrokerUnavailable` (HTTP 503), connections stay open, and the node reconnects by itself:
it resubscribes, repairs every log its clients read (or resets them), and re-registers its
connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import math
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgpack
import orjson
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from tickwire.brokers.base import Broker, BrokerSink, History, Publication, Snapshot
from tickwire.brokers.memory import new_epoch
from tickwire.core.event import EVENT_TYPES, Event
from tickwire.core.ids import Position
from tickwire.core.log import Reset
from tickwire.errors import BrokerUnavailable, PublishError

log = logging.getLogger("tickwire.redis")

__all__ = ["IngestDuplicate", "PublishOutcomeUnknown", "RedisBroker", "split_url"]

STATE_KINDS = tuple(sorted({t.state[0] for t in EVENT_TYPES.values() if t.state is not None}))
DEFAULT_PREFIX = "tw"
INGEST_REPLY_TTL_MS = 60_000
INGEST_ERRORS_MAXLEN = 1000
INGEST_LEASE_MS = 5000
INGEST_BATCH = 100
MAX_TRACKED_LOGS = 100_000
MAX_PENDING = 10_000
REPAIR_CONCURRENCY = 16
MAX_REDIS_CONNECTIONS = 64  # per node, besides its subscription

_INGEST: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("tickwire_ingest", default=None)

_LEADER_LUA = """
local key, node, ms = KEYS[1], ARGV[1], ARGV[2]
if redis.call('GET', key) == node then
  redis.call('PEXPIRE', key, ms)
  return 1
end
if redis.call('SET', key, node, 'NX', 'PX', ms) then
  return 1
end
return 0
"""


class IngestDuplicate(BrokerUnavailable):
    """The ingest entry was already published (by this or another node)."""


class PublishOutcomeUnknown(BrokerUnavailable):
    """The batch was sent but Redis never answered: it may or may not be stored."""

    outcome_unknown = True


def split_url(url: str) -> tuple[str, str]:
    """`redis://host:port/db?prefix=p` -> (the URL for redis-py, the key prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    kept = []
    for name, value in query:
        if name == "prefix":
            prefix = value or DEFAULT_PREFIX
        else:
            kept.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), prefix


class _Script:
    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


def _load_script(name: str) -> _Script:
    folder = resources.files("tickwire.brokers") / "lua"
    common = (folder / "common.lua").read_text()
    return _Script(name, common + "\n" + (folder / f"{name}.lua").read_text())


@dataclass(slots=True)
class _Track:
    """What this node has delivered of one log, and a repair in progress."""

    last: Position
    repairing: bool = False
    overflow: bool = False
    pending: list[Event] = field(default_factory=list)


async def _done(value: list[Event]) -> list[Event]:
    return value


async def _failed(error: BaseException) -> list[Event]:
    raise error


def _position(head: list[Any]) -> Position:
    return Position(int(head[0]), int(head[1]), int(head[2]))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBroker(Broker):
    name = "redis"
    manages_buffer_ttl = True
    shared_limits = True
    ordered_submit = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str | None = None,
        user_history: int = 100,
        public_history: int = 100,
        state_capacity: int = 1000,
        buffer_ttl_s: float = 300.0,
        state_ttl_s: float = 7 * 86400.0,
        max_conns_per_user: int = 10,
        node_id: str | None = None,
        socket_timeout_s: float = 5.0,
        heartbeat_s: float = 1.0,
        dead_after_s: float = 10.0,
        echo_timeout_s: float = 2.0,
        ingest: bool = True,
    ) -> None:
        redis_url, url_prefix = split_url(url)
        self.prefix = prefix or url_prefix
        self.where = urlsplit(redis_url).netloc.rpartition("@")[2] or redis_url
        self.user_history = user_history
        self.public_history = public_history
        self.state_capacity = state_capacity
        self.buffer_ttl_ms = int(buffer_ttl_s * 1000)
        self.state_ttl_ms = int(state_ttl_s * 1000)
        self.max_conns_per_user = max_conns_per_user
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.heartbeat_s = heartbeat_s
        self.dead_after_ms = int(dead_after_s * 1000)
        self.echo_timeout_s = echo_timeout_s
        self.ingest_enabled = ingest
        # Commands wait for one of a bounded set of connections (a burst of attaches must
        # queue, not fail with "too many connections").
        self._pool = aioredis.BlockingConnectionPool.from_url(
            redis_url,
            max_connections=MAX_REDIS_CONNECTIONS,
            timeout=socket_timeout_s,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=min(2.0, socket_timeout_s),
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
            health_check_interval=0,
            protocol=2,  # pub/sub messages as plain replies (RESP3 would route them to push handlers)
        )
        self._r = aioredis.Redis(connection_pool=self._pool)
        p = self.prefix
        self.channel = f"{p}:events"
        self.control = f"{p}:control"
        self.ingest_key = f"{p}:ingest"
        self._kinds = ",".join(STATE_KINDS)
        self._scripts = {
            name: _load_script(name)
            for name in (
                "publish",
                "history",
                "snapshot",
                "presence",
                "heartbeat",
                "ratelimit",
                "ingest_skip",
            )
        }
        self._leader = _Script("leader", _LEADER_LUA)
        self._sink: BrokerSink | None = None
        self._tracks: OrderedDict[str, _Track] = OrderedDict()
        self._echo: dict[str, list[tuple[Position, asyncio.Future[None]]]] = {}
        self._markers: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._read_task: asyncio.Task[None] | None = None
        self._subscribed = False
        self._sub_ready = asyncio.Event()
        self._sub_seen = 0.0
        self._connected_before = False
        self._presence_q: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._outgoing: asyncio.Queue[tuple[list[Any], asyncio.Future[Any]]] = asyncio.Queue()
        self._repair_slots = asyncio.Semaphore(REPAIR_CONCURRENCY)
        self._stopping = False
        self.stats = {"repairs": 0, "resets": 0, "reconnects": 0, "ingested": 0}

    @classmethod
    def from_settings(cls, settings: Any) -> RedisBroker:
        return cls(
            settings.broker,
            user_history=settings.user_buffer,
            public_history=settings.public_buffer,
            state_capacity=settings.state_capacity,
            buffer_ttl_s=settings.buffer_ttl_s,
            state_ttl_s=settings.state_ttl_s,
            max_conns_per_user=settings.max_conns_per_user,
        )

    # -- lifecycle ---------------------------------------------------------------

    async def start(self, sink: BrokerSink) -> None:
        self._sink = sink
        self._stopping = False
        self._spawn(self._subscriber(), "tickwire-redis-subscriber")
        self._spawn(self._heartbeat(), "tickwire-redis-heartbeat")
        self._spawn(self._presence_worker(), "tickwire-redis-presence")
        self._spawn(self._writer(), "tickwire-redis-writer")
        if self.ingest_enabled and callable(getattr(sink, "ingest", None)):
            self._spawn(self._ingest_loop(), "tickwire-redis-ingest")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sub_ready.wait(), 3.0)
        if not self._subscribed:
            log.warning("Redis is not reachable yet; the node keeps trying", extra={"redis": self.where})

    async def stop(self) -> None:
        self._stopping = True
        # Every loop also checks `_stopping`: a cancellation that lands inside a Redis call
        # can come out as a timeout error (asyncio.timeout), so one cancel may not be enough.
        for _ in range(10):
            tasks = [task for task in self._tasks if not task.done()]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.5)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(
                self._eval("heartbeat", [self.node_id, self.dead_after_ms, self.buffer_ttl_ms, 1]), 1.0
            )
        while not self._outgoing.empty():
            _, fut = self._outgoing.get_nowait()
            if not fut.done():
                fut.set_exception(BrokerUnavailable("the Redis broker stopped"))
        self._subscribed = False
        self._sink = None
        with contextlib.suppress(RedisError, OSError):
            await self._r.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self._pool.disconnect()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        return BrokerUnavailable(f"Redis at {self.where} is unreachable ({type(exc).__name__}: {exc})")

    async def _eval(self, name: str, args: Sequence[Any], client: Any = None) -> Any:
        script = self._scripts.get(name, self._leader)
        target = client or self._r
        try:
            return await target.evalsha(script.sha, 0, self.prefix, *args)
        except NoScriptError:
            return await target.eval(script.text, 0, self.prefix, *args)

    # -- publishing --------------------------------------------------------------

    async def publish(self, pubs: Sequence[Publication], ms: int) -> list[Event]:
        return await self.submit(pubs, ms)

    def submit(self, pubs: Sequence[Publication], ms: int) -> Awaitable[list[Event]]:
        """Queue the batch now (its place in the order is fixed by this call); the awaitable
        gives the stamped events once this node's subscription delivered them.

        One writer task sends queued batches in order, pipelined (all that queued while the
        previous round trip was in flight go in one), so a node's publishes are ordered
        without holding a lock across the round trip.
        """
        if not pubs:
            return _done([])
        holder = _INGEST.get()
        ingest_id = holder.pop() if holder else ""
        flat: list[str | bytes] = []
        dumps = orjson.dumps
        for pub in pubs:
            kind, key = pub.state if pub.state is not None else ("", "")
            flat += [
                pub.log,
                pub.type,
                "1" if pub.tick else "0",
                kind,
                key,
                pub.strategy or "",
                str(len(pub.data)),
            ]
            for name, value in pub.data.items():
                if type(name) is not str:
                    raise PublishError(f"{pub.type}: data keys must be strings, got {name!r}")
                flat += [dumps(name), dumps(value)]
        args: list[Any] = [
            ms,
            self.user_history,
            self.public_history,
            self.state_capacity,
            self.buffer_ttl_ms,
            self.state_ttl_ms,
            new_epoch(),
            self._kinds,
            ingest_id,
            len(pubs),
            msgpack.packb(flat, use_bin_type=False),
        ]
        if self._stopping:
            return _failed(BrokerUnavailable("the Redis broker is stopped"))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._outgoing.put_nowait((args, fut))
        return self._stamped(pubs, ms, fut)

    async def _stamped(
        self, pubs: Sequence[Publication], ms: int, reply_fut: asyncio.Future[Any]
    ) -> list[Event]:
        reply = await reply_fut
        events = []
        last: dict[str, Position] = {}
        for i, pub in enumerate(pubs):
            pos = Position(int(reply[3 * i]), int(reply[3 * i + 1]), int(reply[3 * i + 2]))
            events.append(Event(pub.type, pub.data, pub.log, pos, ms, key=pub.conflation_key, tick=pub.tick))
            last[pub.log] = pos
        if self._subscribed:  # the publisher sees its own events delivered before it returns
            for log_name, pos in last.items():
                if not await self._delivered(log_name, pos, self.echo_timeout_s):
                    self._request_repair(log_name)
        return events

    async def _writer(self) -> None:
        """Send queued batches in order, pipelined; answer each one's future."""
        sha = self._scripts["publish"].sha
        while not self._stopping:
            batch = [await self._outgoing.get()]
            while not self._outgoing.empty() and len(batch) < 256:
                batch.append(self._outgoing.get_nowait())
            todo = batch
            for _attempt in range(2):
                try:
                    if len(todo) == 1:  # a plain command costs less than a pipeline of one
                        try:
                            results = [await self._r.evalsha(sha, 0, self.prefix, *todo[0][0])]
                        except ResponseError as exc:
                            results = [exc]
                    else:
                        async with self._r.pipeline(transaction=False) as pipe:
                            for args, _ in todo:
                                pipe.evalsha(sha, 0, self.prefix, *args)
                            results = await pipe.execute(raise_on_error=False)
                except asyncio.CancelledError:
                    for _, fut in todo:
                        if not fut.done():
                            fut.set_exception(BrokerUnavailable("the Redis broker stopped"))
                    raise
                except (RedisError, OSError) as exc:
                    if "connecting" in str(exc).lower():  # never reached Redis: certainly not stored
                        error: BrokerUnavailable = self._unavailable(exc)
                    else:
                        error = PublishOutcomeUnknown(str(self._unavailable(exc)))
                    for _, fut in todo:
                        if not fut.done():
                            fut.set_exception(error)
                    break
                retry = []
                for (args, fut), result in zip(todo, results, strict=True):
                    if isinstance(result, NoScriptError):
                        retry.append((args, fut))  # not run: Redis lost its scripts (a restart)
                    elif isinstance(result, ResponseError):
                        if "TICKWIRE_DUPLICATE" in str(result):
                            fut.set_exception(IngestDuplicate(str(result)))
                        else:
                            fut.set_exception(self._unavailable(result))
                    elif not fut.done():
                        fut.set_result(result)
                if not retry:
                    break
                todo = retry
                with contextlib.suppress(RedisError, OSError):
                    await self._r.script_load(self._scripts["publish"].text)
            for _, fut in todo:
                if not fut.done():
                    fut.set_exception(BrokerUnavailable("Redis lost the publish script twice"))

    async def broadcast(self, type_: str, data: dict[str, Any]) -> None:
        await self._control({"t": "broadcast", "type": type_, "data": data})

    async def _control(self, message: dict[str, Any]) -> None:
        """Publish on the control channel and wait until this node's subscription saw it:
        then it has also processed every message Redis sent before it."""
        nonce = secrets.token_hex(8)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._markers[nonce] = fut
        try:
            await self._r.publish(self.control, orjson.dumps({**message, "n": nonce}))
            if self._subscribed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, self.echo_timeout_s)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        finally:
            self._markers.pop(nonce, None)

    # -- reading -----------------------------------------------------------------

    async def _read(self, name: str, args: Sequence[Any]) -> Any:
        """A read-only script call: retried once (a pooled connection may predate a restart)."""
        try:
            try:
                return await self._eval(name, args)
            except RedisConnectionError:
                return await self._eval(name, args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def _history(self, log_name: str, after: Position | None) -> History:
        args: list[Any] = [log_name, new_epoch(), self._kinds, self.state_ttl_ms]
        if after is None:
            args += [0, 0, 0, 0]
        else:
            args += [1, after.epoch, after.offset, after.tick]
        head, reason, entries, ticks = await self._read("history", args)
        end = _position(head)
        if reason:
            return History(end, reset=Reset(_text(reason)))
        events = [self._entry_event(log_name, end.epoch, entry) for entry in entries]
        tick_events = []
        for kind, key, score, meta, value in ticks:
            type_, offset, ms = _text(meta).split("\t")
            kind_s, key_s = _text(kind), _text(key)
            pos = Position(end.epoch, int(offset), int(float(score)))
            tick_events.append(
                Event(
                    type_,
                    orjson.loads(value),
                    log_name,
                    pos,
                    int(ms),
                    key=f"{log_name}|{kind_s}|{key_s}",
                    tick=True,
                )
            )
        return History(end, events=events, ticks=tick_events)

    @staticmethod
    def _entry_event(log_name: str, epoch: int, entry: list[Any]) -> Event:
        entry_id, flat = entry
        offset, _, tick = _text(entry_id).partition("-")
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        kind = fields.get(b"kind")
        key = f"{log_name}|{_text(kind)}|{_text(fields[b'key'])}" if kind is not None else None
        pos = Position(epoch, int(offset), int(tick))
        return Event(
            _text(fields[b"type"]), orjson.loads(fields[b"data"]), log_name, pos, int(fields[b"ms"]), key=key
        )

    async def history(self, log: str, after: Position | None) -> History:
        history = await self._history(log, after)
        await self._catch_up(log, history.end)
        return history

    async def snapshot(self, log: str, kinds: Sequence[str]) -> Snapshot:
        reply = await self._read("snapshot", [log, new_epoch(), self._kinds, self.state_ttl_ms, *kinds])
        end = _position(reply[0])
        states = {kind: orjson.loads(raw) for kind, raw in zip(kinds, reply[1:], strict=True)}
        await self._catch_up(log, end)
        return Snapshot(end, states, empty=end.tick == 0)

    async def get_state(self, log: str, kind: str, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._r.hget(f"{self.prefix}:log:{log}:state:{kind}", key)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        if raw is None:
            return None
        value: dict[str, Any] = orjson.loads(raw)
        return value

    async def strategy_owner(self, strategy_id: str) -> str | None:
        try:
            raw = await self._r.get(f"{self.prefix}:strategy:{strategy_id}")
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return None if raw is None else _text(raw)

    async def forget_history(self, log: str) -> None:
        try:
            await self._r.delete(f"{self.prefix}:log:{log}:events")
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def healthy(self) -> bool:
        if not self._subscribed:
            return False
        try:
            return bool(await asyncio.wait_for(self._r.ping(), 1.0))
        except (RedisError, OSError, TimeoutError):
            return False

    # -- cluster-wide limits -----------------------------------------------------

    def connection_opened(self, user: str, serial: int, evicted: Sequence[int] = ()) -> None:
        self._presence_q.put_nowait(("open", user, serial, tuple(evicted)))

    def connection_closed(self, user: str, serial: int) -> None:
        self._presence_q.put_nowait(("close", user, serial, ()))

    async def connect_attempt(self, key: str, limit: int, window_s: float) -> float | None:
        try:
            wait_ms = await self._eval("ratelimit", [key, limit, int(window_s * 1000), secrets.token_hex(6)])
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return None if int(wait_ms) < 0 else int(wait_ms) / 1000

    def _presence_args(self, op: str, user: str, serial: int, evicted: Sequence[int]) -> list[Any]:
        return [op, user, self.node_id, serial, self.max_conns_per_user, self.buffer_ttl_ms, *evicted]

    async def _presence_worker(self) -> None:
        while not self._stopping:
            ops = [await self._presence_q.get()]
            while not self._presence_q.empty() and len(ops) < 256:
                ops.append(self._presence_q.get_nowait())
            try:
                for op in ops:
                    if op[0] == "resync":
                        await self._resync_presence()
                        continue
                    await self._eval("presence", self._presence_args(*op))
            except (RedisError, OSError) as exc:
                # Redis is away: what it knows of this node is rebuilt when it comes back.
                log.debug("presence update failed", extra={"error": str(exc)})

    async def _resync_presence(self) -> None:
        """Tell Redis again which connections this node holds (after Redis was away)."""
        list_conns = getattr(self._sink, "local_connections", None)
        conns: list[tuple[str, int]] = list_conns() if callable(list_conns) else []
        await self._eval("heartbeat", [self.node_id, self.dead_after_ms, self.buffer_ttl_ms, 1])
        async with self._r.pipeline(transaction=False) as pipe:
            for user, serial in conns:
                pipe.evalsha(
                    self._scripts["presence"].sha,
                    0,
                    self.prefix,
                    *self._presence_args("open", user, serial, ()),
                )
            pipe.evalsha(
                self._scripts["heartbeat"].sha,
                0,
                self.prefix,
                self.node_id,
                self.dead_after_ms,
                self.buffer_ttl_ms,
                0,
            )
            await pipe.execute()

    async def _heartbeat(self) -> None:
        ping = orjson.dumps({"t": "ping", "n": self.node_id})
        while not self._stopping:
            try:
                buried = await self._eval(
                    "heartbeat", [self.node_id, self.dead_after_ms, self.buffer_ttl_ms, 0]
                )
                if buried:
                    log.info("buried silent nodes", extra={"nodes": buried})
                await self._r.publish(self.control, ping)
                stale = time.monotonic() - self._sub_seen > max(3 * self.heartbeat_s, 2.0)
                if self._subscribed and stale and self._read_task is not None:
                    log.warning("Redis subscription went silent; reconnecting it")
                    self._read_task.cancel()
            except (RedisError, OSError) as exc:
                log.debug("heartbeat failed", extra={"error": str(exc)})
            await asyncio.sleep(self.heartbeat_s)

    # -- the subscription ----------------------------------------------------------

    async def _subscriber(self) -> None:
        backoff = 0.05
        while not self._stopping:
            conn: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                await conn.send_command("SUBSCRIBE", self.channel, self.control)
                for _ in range(2):
                    await conn.read_response(timeout=5.0)
                self._sub_seen = time.monotonic()
                self._subscribed = True
                backoff = 0.05
                if self._connected_before:
                    self.stats["reconnects"] += 1
                    log.warning(
                        "Redis subscription is back; repairing what was missed", extra={"redis": self.where}
                    )
                    self._resync()
                self._connected_before = True
                self._sub_ready.set()
                self._read_task = asyncio.ensure_future(self._read_messages(conn))
                await asyncio.wait({self._read_task})
                if not self._read_task.cancelled():
                    self._read_task.result()
            except asyncio.CancelledError:
                if self._read_task is not None:
                    self._read_task.cancel()
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                if self._subscribed or not self._connected_before:
                    log.warning("Redis subscription lost", extra={"redis": self.where, "error": str(exc)})
            finally:
                self._subscribed = False
                self._read_task = None
                with contextlib.suppress(Exception):
                    await conn.disconnect()
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _read_messages(self, conn: AbstractConnection) -> None:
        while True:
            msg = await conn.read_response(timeout=math.inf)
            self._sub_seen = time.monotonic()
            if not isinstance(msg, list) or len(msg) < 3 or msg[0] != b"message":
                continue
            try:
                if msg[1] == self.channel.encode():
                    self._on_batch(msg[2])
                else:
                    self._on_control(msg[2])
            except Exception:
                log.exception("could not handle a Redis message")

    def _on_batch(self, payload: bytes) -> None:
        batch = orjson.loads(payload)
        for log_name, epoch, offset, tick, ms, type_, is_tick, kind, key, data in batch["events"]:
            ckey = f"{log_name}|{kind}|{key}" if kind is not None else None
            event = Event(
                type_, data, log_name, Position(epoch, offset, tick), ms, key=ckey, tick=bool(is_tick)
            )
            self._accept(event)

    def _on_control(self, payload: bytes) -> None:
        msg = orjson.loads(payload)
        kind = msg.get("t")
        sink = self._sink
        if kind == "broadcast" and sink is not None:
            sink.on_broadcast(msg["type"], msg["data"])
        if kind in ("broadcast", "sync"):
            fut = self._markers.get(msg.get("n", ""))
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif kind == "evict":
            node, _, serial = str(msg.get("m", "")).partition(":")
            on_evict = getattr(sink, "on_evict", None)
            if node == self.node_id and callable(on_evict) and serial.isdigit():
                on_evict(int(serial))

    # -- ordered delivery, gaps and repair ----------------------------------------

    def _accept(self, event: Event) -> None:
        """Deliver an event from the subscription in (log, tick) order, or repair first."""
        pos = event.pos
        assert pos is not None
        track = self._tracks.get(event.log)
        if track is None:
            self._tracks[event.log] = _Track(pos)
            self._bound_tracks()
            self._deliver(event)
            return
        self._tracks.move_to_end(event.log)
        if track.repairing:
            self._hold(track, event)
            return
        last = track.last
        if pos.epoch == last.epoch:
            if pos.tick <= last.tick:
                return  # already delivered (by a repair)
            if pos.tick == last.tick + 1:
                track.last = pos
                self._deliver(event)
                return
        self._hold(track, event)
        self._start_repair(event.log, track)

    @staticmethod
    def _hold(track: _Track, event: Event) -> None:
        if len(track.pending) >= MAX_PENDING:
            track.pending.clear()
            track.overflow = True
        track.pending.append(event)

    def _deliver(self, event: Event) -> None:
        sink = self._sink
        if sink is not None:
            try:
                sink.on_event(event)
            except Exception:
                log.exception("sink failed on an event", extra={"event_id": event.id})
        waiters = self._echo.get(event.log)
        if waiters:
            self._wake(event.log)

    def _wake(self, log_name: str) -> None:
        waiters = self._echo.get(log_name)
        track = self._tracks.get(log_name)
        if not waiters or track is None:
            return
        last = track.last
        keep = []
        for pos, fut in waiters:
            if fut.done():
                continue
            if pos.epoch != last.epoch or pos.tick <= last.tick:
                fut.set_result(None)
            else:
                keep.append((pos, fut))
        if keep:
            self._echo[log_name] = keep
        else:
            self._echo.pop(log_name, None)

    async def _delivered(self, log_name: str, pos: Position, wait_s: float) -> bool:
        """Wait until this node has delivered `log_name` up to `pos`; False on timeout."""
        track = self._tracks.get(log_name)
        if (
            track is not None
            and not track.repairing
            and track.last.epoch == pos.epoch
            and track.last.tick >= pos.tick
        ):
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._echo.setdefault(log_name, []).append((pos, fut))
        try:
            await asyncio.wait_for(fut, wait_s)
            return True
        except TimeoutError:
            return False

    async def _catch_up(self, log_name: str, end: Position) -> None:
        """Make sure everything up to `end` (just read from Redis) went through the sink
        before the caller goes live, so nothing is delivered twice or skipped."""
        track = self._tracks.get(log_name)
        if track is None and self._subscribed:
            # Events stamped before the read may still be on their way through the
            # subscription: a marker published now arrives after all of them.
            with contextlib.suppress(BrokerUnavailable):
                await self._control({"t": "sync"})
            track = self._tracks.get(log_name)
        if track is None:  # nothing of this log is in flight: start following it at `end`
            self._tracks[log_name] = _Track(end)
            self._bound_tracks()
            return
        if not track.repairing and track.last.epoch == end.epoch and track.last.tick >= end.tick:
            return
        if track.last.epoch != end.epoch:
            self._start_repair(log_name, track)
        if not self._subscribed:
            self._start_repair(log_name, track)
        if not await self._delivered(log_name, end, self.echo_timeout_s):
            self._start_repair(log_name, track)
            await self._delivered(log_name, end, self.echo_timeout_s)

    def _bound_tracks(self) -> None:
        """At most MAX_TRACKED_LOGS logs are tracked: when over, the least recently active
        logs that no client of this node reads are forgotten (down to 90%), in one go."""
        if len(self._tracks) <= MAX_TRACKED_LOGS:
            return
        watched_logs = getattr(self._sink, "watched_logs", None)
        watched: set[str] = watched_logs() if callable(watched_logs) else set()
        target = MAX_TRACKED_LOGS * 9 // 10
        for log_name in list(self._tracks):
            if len(self._tracks) <= target:
                break
            if log_name not in watched and not self._tracks[log_name].repairing:
                del self._tracks[log_name]

    def _request_repair(self, log_name: str) -> None:
        track = self._tracks.get(log_name)
        if track is not None:
            self._start_repair(log_name, track)

    def _start_repair(self, log_name: str, track: _Track) -> None:
        if track.repairing or self._stopping:
            return
        track.repairing = True
        self._spawn(self._repair(log_name, track), f"tickwire-repair-{log_name}")

    async def _repair(self, log_name: str, track: _Track) -> None:
        """Fill a hole in a log from Redis, then deliver what was held meanwhile."""
        delay = 0.05
        while not self._stopping:
            try:
                async with self._repair_slots:
                    history = await self._history(log_name, track.last)
            except BrokerUnavailable:
                await asyncio.sleep(delay)  # Redis is away; the subscription comes back first
                delay = min(delay * 2, 1.0)
                continue
            except Exception:  # unreadable history: start this log afresh, and say so
                log.exception("could not repair a log; its clients are reset", extra={"log": log_name})
                if self._tracks.get(log_name) is track:
                    del self._tracks[log_name]
                track.pending.clear()
                track.repairing = False
                self._notify_reset(log_name, "repair_failed")
                return
            self.stats["repairs"] += 1
            if history.reset is not None:
                log.warning(
                    "log cannot be repaired; its clients are reset",
                    extra={"log": log_name, "reason": history.reset.reason},
                )
                track.last = history.end
                self._notify_reset(log_name, history.reset.reason)
            else:
                missed = sorted(
                    (
                        e
                        for e in (*history.events, *history.ticks)
                        if e.pos is not None and e.pos.after(track.last)
                    ),
                    key=lambda e: (e.pos.offset, e.pos.tick),  # type: ignore[union-attr]
                )
                if missed:
                    log.info("repaired a gap from the stream", extra={"log": log_name, "events": len(missed)})
                for event in missed:
                    self._deliver(event)
                if history.end.after(track.last) or history.end.epoch != track.last.epoch:
                    track.last = history.end
            pending, track.pending = track.pending, []
            if track.overflow:
                track.overflow = False
                continue
            hole = False
            for i, event in enumerate(pending):
                pos = event.pos
                assert pos is not None
                last = track.last
                if pos.epoch == last.epoch and pos.tick <= last.tick:
                    continue
                if pos.epoch == last.epoch and pos.tick == last.tick + 1:
                    track.last = pos
                    self._deliver(event)
                    continue
                track.pending = pending[i:] + track.pending
                hole = True
                break
            if hole:
                continue
            track.repairing = False
            self._wake(log_name)
            return

    def _notify_reset(self, log_name: str, reason: str) -> None:
        self.stats["resets"] += 1
        on_reset = getattr(self._sink, "on_reset", None)
        if callable(on_reset):
            try:
                on_reset(log_name, reason)
            except Exception:
                log.exception("sink failed on a reset", extra={"log": log_name})

    def _resync(self) -> None:
        """After the subscription was lost: repair every log a client here reads."""
        watched_logs = getattr(self._sink, "watched_logs", None)
        watched: set[str] = watched_logs() if callable(watched_logs) else set(self._tracks)
        for log_name in list(self._tracks):
            track = self._tracks[log_name]
            if log_name in watched:
                self._start_repair(log_name, track)
            elif not track.repairing:
                del self._tracks[log_name]  # nobody reads it here: start afresh when someone does
        self._presence_q.put_nowait(("resync",))

    # -- ingest: publishing from any Redis client ----------------------------------

    async def _ingest_loop(self) -> None:
        cursor_key = f"{self.prefix}:ingest:cursor"
        lease_key = f"{self.prefix}:ingest:leader"
        delay = 0.1
        while not self._stopping:
            try:
                leader = await self._r.evalsha(self._leader.sha, 1, lease_key, self.node_id, INGEST_LEASE_MS)
            except NoScriptError:
                await self._r.script_load(self._leader.text)
                continue
            except (RedisError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if not leader:
                await asyncio.sleep(INGEST_LEASE_MS / 5000)
                continue
            try:
                cursor = await self._r.get(cursor_key) or b"0-0"
                reply: Any = await self._r.xread({self.ingest_key: cursor}, count=INGEST_BATCH, block=1000)
                last = None
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        await self._ingest_one(_text(entry_id), fields)
                        last = _text(entry_id)
                if last is not None:
                    await self._r.xtrim(self.ingest_key, minid=last)
                delay = 0.1
            except BrokerUnavailable as exc:
                log.warning("ingest paused: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except (RedisError, OSError) as exc:
                log.warning("ingest paused", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _ingest_one(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        ingest: Callable[[Any], Awaitable[list[str | None]]] | None = getattr(self._sink, "ingest", None)
        reply_key = fields.get(b"reply")
        result: dict[str, Any]
        try:
            if ingest is None:
                raise PublishError("this node does not publish")
            raw = fields.get(b"event")
            if raw is None:
                raise PublishError("the entry has no `event` field (a JSON event or array of events)")
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise PublishError(f"`event` is not valid JSON: {exc}") from None
            token = _INGEST.set([entry_id])
            try:
                ids = await ingest(body)
            finally:
                _INGEST.reset(token)
            result = {"ids": ids}
            self.stats["ingested"] += 1
        except IngestDuplicate:
            return
        except BrokerUnavailable:
            raise
        except Exception as exc:
            status = 400 if isinstance(exc, PublishError) else 500
            if status == 500:
                log.exception("ingest entry failed", extra={"entry": entry_id})
            result = {"error": str(exc), "status": status, "entry": entry_id}
            if not await self._eval("ingest_skip", [entry_id]):
                return  # another node got there first
            await self._r.xadd(
                f"{self.ingest_key}:errors",
                {"entry": entry_id, "error": str(exc), "event": fields.get(b"event", b"")},
                maxlen=INGEST_ERRORS_MAXLEN,
                approximate=True,
            )
        if reply_key:
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.lpush(reply_key, orjson.dumps(result))
                pipe.pexpire(reply_key, INGEST_REPLY_TTL_MS)
                await pipe.execute()
