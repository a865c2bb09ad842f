"""Keys built from values that users (or operators) choose: user ids, strategy ids, symbols
in index names, client addresses, node ids. Each enters its key as one tagged segment
(`{value}`, `%`, `{` and `}` percent-encoded; docs/redis.md, "Keys"), so no value can be a
fixed key of the layout (`<p>:presence:seq`, `<p>:nodes`) or a key of another value or kind.

In-process brokers on a private redis-server (never the machine's own Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import pytest
import redis

from support.redis_server import RedisServer
from support.sinks import RecordingSink as Sink
from tickwire.brokers.base import Batch, IndexChange, Publication, Record, StateWrite
from tickwire.brokers.redis import RedisBroker

# User ids shaped like fixed keys (`seq`: the connection counter `<p>:presence:seq`; `nodes`),
# like tagged segments (`{x}`, `%7Bx%7D`), like several segments (`a:b`) or a log (`user:evil`).
ODD_VALUES = ["seq", "nodes", "{x}", "%7Bx%7D", "x", "a:b", "a", "user:evil", "evil", "}:presence:seq", ""]


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def segment(value: str) -> str:
    """docs/redis.md's rule, written out independently of the broker's `tag`."""
    return "{" + value.replace("%", "%25").replace("{", "%7B").replace("}", "%7D") + "}"


async def settle(*nodes: tuple[RedisBroker, Sink]) -> None:
    """Presence updates applied, and what Redis announced meanwhile (evictions) handled by
    every node: a broadcast published after them came back."""
    for broker, _ in nodes:
        await asyncio.wait_for(broker.presence.settled(), 5.0)
    for broker, sink in nodes:
        marker = {"settle": uuid.uuid4().hex}
        await broker.broadcast("test", marker)
        assert ("test", marker) in sink.broadcasts


def test_python_and_lua_tag_values_alike_and_never_alike_for_two_values(redis_server: RedisServer) -> None:
    from tickwire.brokers.redis.scripts import tag

    values = [*ODD_VALUES, "%", "%25", "{", "}", "{}", "a}b{c", "é✓", "line\nbreak", "tab\there", "::1"]
    common = (resources.files("tickwire.brokers") / "lua" / "common.lua").read_text()
    client = redis.Redis(port=redis_server.port)
    try:
        for value in values:
            assert tag(value) == segment(value)
            assert client.eval(common + "\nreturn tag(ARGV[2])", 0, "tw", value) == tag(value).encode()
    finally:
        client.close()
    tags = [tag(v) for v in values]
    assert len(set(tags)) == len(values)
    assert all(t.startswith("{") and t.index("}") == len(t) - 1 for t in tags)  # one segment each


@pytest.mark.parametrize("user", ["seq", "nodes", "{x}", "a:b", "user:evil", "%7Bx%7D"])
def test_the_cluster_wide_cap_and_history_ttl_hold_for_any_user_id(
    redis_server: RedisServer, user: str
) -> None:
    """Two nodes, at most 2 connections of a user: the third one closes the oldest (on the
    other node), the user's history expires only once nobody is connected, and the other
    users' connections (whose ids look alike) neither count nor get closed."""
    others = [u for u in ODD_VALUES if u != user]

    async def body() -> None:
        prefix = f"k{uuid.uuid4().hex[:10]}"
        sink_a, sink_b = Sink(), Sink()
        a = RedisBroker(redis_server.url, prefix=prefix, max_conns_per_user=2, buffer_ttl_s=60)
        b = RedisBroker(redis_server.url, prefix=prefix, max_conns_per_user=2, buffer_ttl_s=60)
        await a.start(sink_a)
        await b.start(sink_b)
        nodes = (a, sink_a), (b, sink_b)
        client = redis.Redis(port=redis_server.port)
        history = a.link.keys.log_events(f"user:{user}")
        try:
            await a.publish([Publication("alert:new", {"message": "m"}, f"user:{user}")], 1)
            assert 0 < client.pttl(history) <= 60_000  # nobody connected: the countdown runs
            for serial, other in enumerate(others, start=100):
                a.connection_opened(other, serial)
            a.connection_opened(user, 1)  # registered first: the oldest
            await a.presence.settled()
            assert client.pttl(history) == -1
            b.connection_opened(user, 7)
            await settle(*nodes)
            assert sink_a.evicted == [] and sink_b.evicted == []
            b.connection_opened(user, 8)
            await sink_a.wait_until(lambda: sink_a.evicted == [1])
            a.connection_closed(user, 1)  # what the node does with the connection it closed
            await settle(*nodes)
            assert sink_a.evicted == [1] and sink_b.evicted == []
            assert client.zcard(a.link.keys.presence(user)) == 2
            assert client.pttl(history) == -1  # still connected on node b
            b.connection_closed(user, 7)
            b.connection_closed(user, 8)
            await settle(*nodes)
            assert client.zcard(a.link.keys.presence(user)) == 0
            assert 0 < client.pttl(history) <= 60_000
            assert [client.zcard(a.link.keys.presence(o)) for o in others] == [1] * len(others)
            assert client.type(f"{prefix}:presence:seq") == b"string"
            assert client.type(f"{prefix}:nodes") == b"zset"
        finally:
            client.close()
            await a.stop()
            await b.stop()

    run(body)


def test_node_ids_with_colons_and_braces_get_their_evictions_and_are_buried(
    redis_server: RedisServer,
) -> None:
    async def body() -> None:
        prefix = f"k{uuid.uuid4().hex[:10]}"
        sink_a, sink_b = Sink(), Sink()
        common: dict[str, Any] = {"prefix": prefix, "max_conns_per_user": 1, "heartbeat_s": 3600}
        a = RedisBroker(redis_server.url, node_id="node:a", **common)
        b = RedisBroker(redis_server.url, node_id="{node}:b", **common)
        await a.start(sink_a)
        await b.start(sink_b)
        client = redis.Redis(port=redis_server.port)
        try:
            a.connection_opened("u", 1)
            await a.presence.settled()
            b.connection_opened("u", 2)
            await sink_a.wait_until(lambda: sink_a.evicted == [1])
            b.connection_opened("v", 3)
            await settle((a, sink_a), (b, sink_b))
            assert client.smembers(f"{prefix}:node:{segment('node:a')}:conns") == set()
            assert client.smembers(f"{prefix}:node:{segment('{node}:b')}:conns") == {
                b"u\t{node}:b:2",
                b"v\t{node}:b:3",
            }
            seconds, micros = client.time()  # b dies without a word: silent for 11 s
            client.zadd(f"{prefix}:nodes", {b.node_id: seconds * 1000 + micros // 1000 - 11_000})
            assert await a.presence.heartbeat_once() == 1
            assert (
                client.zcard(a.link.keys.presence("u")) == 0 and client.zcard(a.link.keys.presence("v")) == 0
            )
        finally:
            client.close()
            await a.stop()
            await b.stop()

    run(body)


def test_values_that_look_alike_never_share_a_key(redis_server: RedisServer) -> None:
    """Strategy ids, user logs, index names and addresses, each kind with values that would
    meet under a naive layout: every value keeps its own owner, history, members, window."""

    async def body() -> None:
        prefix = f"k{uuid.uuid4().hex[:10]}"
        broker = RedisBroker(redis_server.url, prefix=prefix)
        await broker.start(Sink())
        try:
            owners = {sid: f"owner{i}" for i, sid in enumerate(ODD_VALUES) if sid}  # "": no strategy
            await broker.publish(
                [
                    Publication("strategy:update", {"strategyId": sid}, f"user:{owner}", strategy=sid)
                    for sid, owner in owners.items()
                ],
                1,
            )
            assert {sid: await broker.strategy_owner(sid) for sid in owners} == owners
            for user in ODD_VALUES:
                await broker.publish([Publication("alert:new", {"user": user}, f"user:{user}")], 1)
            for user in ODD_VALUES:
                history = await broker.history(f"user:{user}", None)
                assert [e.data for e in history.events] == [{"user": user}]
            indexes = [f"holders:{v}" for v in ODD_VALUES]
            await broker.submit(Batch([], 1, index=[IndexChange(n, f"user:{n}", True) for n in indexes]))
            assert [await broker.members(n) for n in indexes] == [{f"user:{n}"} for n in indexes]
            for address in ODD_VALUES:
                assert await broker.connect_attempt(address, 1, 60) is None  # each its own window
        finally:
            await broker.stop()

    run(body)


def test_the_keys_are_the_documented_ones(redis_server: RedisServer) -> None:
    """docs/redis.md's key table, for a user id, a strategy id, a symbol, an address and a
    node id that all need their tags."""

    async def body() -> None:
        p = f"k{uuid.uuid4().hex[:10]}"
        broker = RedisBroker(redis_server.url, prefix=p, node_id="n:1")
        await broker.start(Sink())
        client = redis.Redis(port=redis_server.port)
        try:
            log = "user:a:b"
            await broker.submit(
                Batch(
                    [
                        Publication("order:update", {"orderId": "o1"}, log, state=("orders", "o1")),
                        Publication("strategy:update", {"strategyId": "s}1"}, log, strategy="s}1"),
                        Publication("price:update", {"p": 1}, "prices", tick=True, state=("prices", "{X}")),
                    ],
                    1,
                    writes=[StateWrite(log, "portfolio", {"cash": 1}, 0)],
                    index=[IndexChange("holders:{X}", log, True)],
                )
            )
            broker.connection_opened("a:b", 1)
            await broker.presence.settled()
            assert await broker.connect_attempt("::1", 10, 60) is None
            user, prices = f"{p}:log:{{user:a:b}}", f"{p}:log:{{prices}}"
            expected = {
                *(f"{user}:{suffix}" for suffix in ("meta", "events", "state:orders", "recent:orders", "ps")),
                *(
                    f"{prices}:{suffix}"
                    for suffix in ("meta", "state:prices", "recent:prices", "ticks", "tickmeta")
                ),
                f"{p}:strategy:{{s%7D1}}",
                f"{p}:index:{{holders:%7BX%7D}}",
                f"{p}:presence:{{a:b}}",
                f"{p}:presence:seq",
                f"{p}:node:{{n:1}}:conns",
                f"{p}:nodes",
                f"{p}:rate:{{::1}}",
            }
            assert {k.decode() for k in client.scan_iter(f"{p}:*")} == expected
            assert client.zrange(f"{p}:presence:{{a:b}}", 0, -1) == [b"n:1:1"]
            assert client.smembers(f"{p}:node:{{n:1}}:conns") == {b"a:b\tn:1:1"}
            assert client.smembers(f"{p}:index:{{holders:%7BX%7D}}") == {log.encode()}
            assert client.hkeys(f"{prices}:state:prices") == [b"{X}"]  # fields stay as they are
        finally:
            client.close()
            await broker.stop()

    run(body)


def test_a_users_journal_expires_no_later_than_their_state(redis_server: RedisServer) -> None:
    """A user's alert history kept a week goes within the state TTL of its last add, as the
    user's log does (the embedded broker forgets it with the user); a journal of no user
    keeps its retention."""

    async def body() -> None:
        p = f"j{uuid.uuid4().hex[:10]}"
        broker = RedisBroker(redis_server.url, prefix=p, state_ttl_s=60)
        await broker.start(Sink())
        client = redis.Redis(port=redis_server.port)
        week_ms = 7 * 86_400_000
        try:
            record = Record("a1", 1_000, {"message": "m"})
            await broker.journal_add("alerts:{u}", [record], cap=10, retention_ms=week_ms, user="{u}")
            await broker.journal_add("shared", [record], cap=10, retention_ms=week_ms)
            users = [f"{p}:journal:{{alerts:%7Bu%7D}}{suffix}" for suffix in ("", ":r", ":n")]
            assert all(0 < client.pttl(key) <= 60_000 for key in users)
            shared = [f"{p}:journal:{{shared}}{suffix}" for suffix in ("", ":r", ":n")]
            assert all(60_000 < client.pttl(key) <= week_ms for key in shared)
        finally:
            client.close()
            await broker.stop()

    run(body)
