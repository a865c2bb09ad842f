"""The Redis broker beyond the shared contract: what only a shared, restartable broker has
(epochs that outlive nodes, gap repair, presence, cluster-wide limits, exact numbers in
state merged by Lua). In-process brokers on a private redis-server.

No test sleeps for time to pass: they wait on what the broker reports (a sink's
deliveries, presence updates applied, a control marker come back), drive the heartbeat one
step at a time, and move an injected `FakeClock`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from support.redis_server import RedisServer
from support.sinks import RecordingSink as Sink
from tickwire.brokers.base import Batch, Publication
from tickwire.brokers.redis import RedisBroker
from tickwire.core.clock import FakeClock
from tickwire.core.ids import Position
from tickwire.core.log import UNKNOWN_EPOCH
from tickwire.errors import IngestDuplicate


def alert(user: str, i: int) -> Publication:
    return Publication("alert:new", {"message": f"m{i}", "i": i}, f"user:{user}")


def make(server: RedisServer, prefix: str, **kwargs: Any) -> RedisBroker:
    return RedisBroker(server.url, prefix=prefix, **kwargs)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


async def wait_for(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for a condition only a Redis round trip (or a reconnect) can make true."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def settle(*nodes: tuple[RedisBroker, Sink]) -> None:
    """Every presence update queued so far is applied, and every node's subscription has
    handled what Redis announced meanwhile (evictions): a broadcast published after them
    came back to each node."""
    for broker, _ in nodes:
        await asyncio.wait_for(broker.presence.settled(), 5.0)
    for broker, sink in nodes:
        marker = {"settle": uuid.uuid4().hex}
        await broker.broadcast("test", marker)
        assert ("test", marker) in sink.broadcasts, "the subscription did not see its own marker"


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_epochs_and_history_outlive_the_nodes(redis_server: RedisServer, prefix: str) -> None:
    async def body() -> None:
        first = make(redis_server, prefix)
        await first.start(Sink())
        stamped = await first.publish([alert("a", i) for i in range(3)], 1)
        await first.stop()

        second = make(redis_server, prefix)  # a restarted node
        await second.start(Sink())
        try:
            assert stamped[0].pos is not None and stamped[-1].pos is not None
            history = await second.history("user:a", stamped[0].pos)
            assert history.reset is None
            assert [e.id for e in history.events] == [e.id for e in stamped[1:]]
            (later,) = await second.publish([alert("a", 3)], 2)
            assert later.pos == Position(stamped[0].pos.epoch, 4, 4)
        finally:
            await second.stop()

    run(body)


def test_lost_data_means_a_new_epoch_and_an_explicit_reset(redis_server: RedisServer, prefix: str) -> None:
    async def body() -> None:
        broker = make(redis_server, prefix)
        await broker.start(Sink())
        try:
            (old,) = await broker.publish([alert("a", 1)], 1)
            assert old.pos is not None
            client = redis.Redis(port=redis_server.port)
            for key in client.scan_iter(f"{prefix}:*"):  # what a restart without persistence does
                client.delete(key)
            client.close()
            assert (await broker.history("user:a", old.pos)).reset == UNKNOWN_EPOCH
            (new,) = await broker.publish([alert("a", 2)], 2)
            assert new.pos is not None and new.pos.epoch != old.pos.epoch and new.pos.offset == 1
        finally:
            await broker.stop()

    run(body)


def test_two_nodes_deliver_every_event_in_one_order(redis_server: RedisServer, prefix: str) -> None:
    async def body() -> None:
        sinks = [Sink(), Sink()]
        nodes = [make(redis_server, prefix), make(redis_server, prefix)]
        for node, sink in zip(nodes, sinks, strict=True):
            await node.start(sink)
        try:

            async def publisher(node: RedisBroker, tag: str) -> list[str | None]:
                ids = []
                for i in range(40):
                    stamped = await node.publish([alert("a", i), alert("a", i)], 1)
                    ids += [e.id for e in stamped]
                return ids

            a_ids, b_ids = await asyncio.gather(publisher(nodes[0], "a"), publisher(nodes[1], "b"))
            await asyncio.gather(*(s.wait_until(lambda s=s: len(s.ids("user:a")) == 160) for s in sinks))
            for sink in sinks:
                offsets = [e.pos.offset for e in sink.events if e.pos is not None]
                assert offsets == list(range(1, 161))
            assert sinks[0].ids("user:a") == sinks[1].ids("user:a")
            assert set(sinks[0].ids("user:a")) == set(a_ids) | set(b_ids)
        finally:
            for node in nodes:
                await node.stop()

    run(body)


def test_a_node_that_lost_its_subscription_repairs_the_gap_in_order(
    redis_server: RedisServer, prefix: str
) -> None:
    async def body() -> None:
        watcher = Sink(watched={"user:a"})
        # History holds every event published here, however many pass while node a is away.
        a = make(redis_server, prefix, user_history=1000)
        b = make(redis_server, prefix, user_history=1000)
        await a.start(watcher)
        await b.start(Sink())
        try:
            published: list[str | None] = []
            killed = asyncio.Event()

            async def publish() -> None:
                for i in range(150):
                    if i == 100:  # the last 50 are published after the subscriptions were killed
                        await killed.wait()
                    published.extend(e.id for e in await b.publish([alert("a", i)], 1))

            task = asyncio.create_task(publish())
            await watcher.wait_until(lambda: len(watcher.events) >= 20)
            admin = redis.Redis(port=redis_server.port)
            kills = admin.client_kill_filter(_type="pubsub")  # both nodes lose their subscription
            admin.close()
            killed.set()
            assert kills >= 2
            await asyncio.wait_for(task, 10)
            await watcher.wait_until(lambda: watcher.ids("user:a") == published, within=10)
            assert watcher.resets == []
            assert a.stats["reconnects"] >= 1 and a.stats["repairs"] >= 1
        finally:
            await a.stop()
            await b.stop()

    run(body)


def test_a_hole_in_the_sequence_is_filled_from_the_stream_before_later_events(
    redis_server: RedisServer, prefix: str
) -> None:
    async def body() -> None:
        sink = Sink(watched={"user:a"})
        a = make(redis_server, prefix)
        b = make(redis_server, prefix)
        await a.start(sink)
        await b.start(Sink())
        try:
            stamped = await b.publish([alert("a", i) for i in range(5)], 1)
            await sink.wait_until(lambda: len(sink.events) == 5)
            # Pretend node a never saw events 3..5 (a dropped message): the next one shows the hole.
            assert stamped[1].pos is not None
            track = a.delivery.track("user:a")
            assert track is not None
            track.last = stamped[1].pos
            sink.events.clear()
            later = await b.publish([alert("a", 5)], 2)
            await sink.wait_until(lambda: len(sink.events) == 4)
            assert sink.ids("user:a") == [e.id for e in (*stamped[2:], *later)]
            assert a.stats["repairs"] >= 1
        finally:
            await a.stop()
            await b.stop()

    run(body)


def test_numbers_survive_the_lua_merge_exactly(redis_server: RedisServer, prefix: str) -> None:
    async def body() -> None:
        broker = make(redis_server, prefix)
        await broker.start(Sink())
        try:
            first = {
                "orderId": "o1",
                "price": 0.1 + 0.2,
                "big": 2**60 + 1,
                "nested": {"a": [1, {"b": 'x,}]"{'}], "e": {}},
                "text": 'quote " backslash \\ unicode é ✓',
            }
            await broker.publish([Publication("order:update", first, "user:a", state=("orders", "o1"))], 1)
            delta = {"orderId": "o1", "status": "filled", "price": 1e-7, "tiny": 5e-324}
            await broker.publish([Publication("order:fill", delta, "user:a", state=("orders", "o1"))], 2)
            expected = {**first, **delta}
            assert await broker.get_state("user:a", "orders", "o1") == expected
            snap = await broker.snapshot("user:a", ["orders"])
            assert snap.states["orders"] == [expected]
            assert list(snap.states["orders"][0]) == list(expected)  # field order kept
        finally:
            await broker.stop()

    run(body)


def test_state_is_bounded_finished_entries_first(redis_server: RedisServer, prefix: str) -> None:
    async def body() -> None:
        broker = make(redis_server, prefix, state_capacity=10)
        await broker.start(Sink())
        try:
            pubs = [
                Publication(
                    "order:update",
                    {"orderId": f"o{i}", "status": "filled" if i in (3, 5) else "new"},
                    "user:a",
                    state=("orders", f"o{i}"),
                )
                for i in range(12)
            ]
            await broker.publish(pubs, 1)
            snap = await broker.snapshot("user:a", ["orders"])
            assert [o["orderId"] for o in snap.states["orders"]] == [
                f"o{i}" for i in range(12) if i not in (3, 5)
            ]
        finally:
            await broker.stop()

    run(body)


def test_cluster_wide_cap_closes_the_oldest_connection_on_its_node(
    redis_server: RedisServer, prefix: str
) -> None:
    async def body() -> None:
        sink_a, sink_b = Sink(), Sink()
        a = make(redis_server, prefix, max_conns_per_user=2)
        b = make(redis_server, prefix, max_conns_per_user=2)
        await a.start(sink_a)
        await b.start(sink_b)
        nodes = (a, sink_a), (b, sink_b)
        try:
            a.connection_opened("u", 1)
            await a.presence.settled()  # registered first: the oldest
            b.connection_opened("u", 7)
            await settle(*nodes)
            assert sink_a.evicted == [] and sink_b.evicted == []
            b.connection_opened("u", 8)
            await sink_a.wait_until(lambda: sink_a.evicted == [1])
            a.connection_closed("u", 1)
            b.connection_closed("u", 7)
            a.connection_opened("u", 2)
            await settle(*nodes)
            assert sink_a.evicted == [1] and sink_b.evicted == []
        finally:
            await a.stop()
            await b.stop()

    run(body)


def test_history_expires_only_when_no_node_holds_a_connection(redis_server: RedisServer, prefix: str) -> None:
    async def body() -> None:
        a = make(redis_server, prefix, buffer_ttl_s=60)
        b = make(redis_server, prefix, buffer_ttl_s=60)
        await a.start(Sink())
        await b.start(Sink())
        client = redis.Redis(port=redis_server.port)
        key = f"{prefix}:log:{{user:u}}:events"
        try:
            await a.publish([alert("u", 0)], 1)  # nobody connected: the countdown starts
            assert 0 < client.pttl(key) <= 60_000
            a.connection_opened("u", 1)
            b.connection_opened("u", 2)
            await a.presence.settled()
            await b.presence.settled()
            assert client.pttl(key) == -1
            a.connection_closed("u", 1)
            await a.presence.settled()
            assert client.pttl(key) == -1  # still connected on node b
            b.connection_closed("u", 2)
            await b.presence.settled()
            assert 0 < client.pttl(key) <= 60_000
        finally:
            client.close()
            await a.stop()
            await b.stop()

    run(body)


def test_a_silent_node_is_buried_and_its_connections_stop_counting(
    redis_server: RedisServer, prefix: str
) -> None:
    async def body() -> None:
        # The heartbeat loops beat once at start, then not for an hour: the test beats.
        a = make(redis_server, prefix, heartbeat_s=3600, dead_after_s=10, buffer_ttl_s=60)
        b = make(redis_server, prefix, heartbeat_s=3600, dead_after_s=10, buffer_ttl_s=60)
        await a.start(Sink())
        await b.start(Sink())
        client = redis.Redis(port=redis_server.port)
        nodes, presence = f"{prefix}:nodes", f"{prefix}:presence:{{u}}"
        try:
            await wait_for(lambda: a.presence.beats >= 1 and b.presence.beats >= 1)
            b.connection_opened("u", 1)
            await b.presence.settled()
            assert client.zcard(presence) == 1

            def silent_for(node: RedisBroker, ms: int) -> None:
                """The node's last heartbeat was `ms` ago, by Redis's clock (which the scripts read)."""
                seconds, micros = client.time()
                client.zadd(nodes, {node.node_id: seconds * 1000 + micros // 1000 - ms})

            # b dies without a word (kill -9): its heartbeat loop never beats again.
            silent_for(b, 9_000)  # not long enough yet
            assert await a.presence.heartbeat_once() == 0
            assert client.zcard(presence) == 1 and client.zscore(nodes, b.node_id) is not None
            silent_for(b, 11_000)  # silent for longer than dead_after: buried
            assert await a.presence.heartbeat_once() == 1
            assert client.zcard(presence) == 0
            assert client.zscore(nodes, b.node_id) is None
            assert client.zscore(nodes, a.node_id) is not None  # the live node is not
        finally:
            client.close()
            await a.stop()
            await b.stop()

    run(body)


def test_the_heartbeat_reconnects_a_subscription_that_went_silent(
    redis_server: RedisServer, prefix: str
) -> None:
    async def body() -> None:
        clock = FakeClock()
        broker = make(redis_server, prefix, heartbeat_s=3600, clock=clock)
        sink = Sink()
        await broker.start(sink)
        try:
            await wait_for(lambda: broker.presence.beats >= 1)
            await broker.broadcast("test", {})  # the start beat's ping went through
            limit = 3 * 3600  # three heartbeats without a message, at least 2 s
            clock.advance(limit - 1)
            assert not broker.subscription.restart_if_silent(limit)
            assert broker.stats["reconnects"] == 0
            clock.advance(2)
            assert broker.subscription.restart_if_silent(limit)
            await wait_for(lambda: broker.stats["reconnects"] == 1 and broker.subscription.subscribed)
            # Back: it hears the node's own pings again, and delivers.
            (event,) = await broker.publish([alert("a", 1)], 1)
            assert sink.ids("user:a") == [event.id]
            assert not broker.subscription.restart_if_silent(limit)
        finally:
            await broker.stop()

    run(body)


def test_connect_rate_is_shared_by_the_nodes(redis_server: RedisServer, prefix: str) -> None:
    async def body() -> None:
        a, b = make(redis_server, prefix), make(redis_server, prefix)
        await a.start(Sink())
        await b.start(Sink())
        try:
            assert await a.connect_attempt("10.0.0.1", 3, 60) is None
            assert await b.connect_attempt("10.0.0.1", 3, 60) is None
            assert await a.connect_attempt("10.0.0.1", 3, 60) is None
            wait = await b.connect_attempt("10.0.0.1", 3, 60)
            assert wait is not None and 59 <= wait <= 60
            assert await b.connect_attempt("10.0.0.2", 3, 60) is None
        finally:
            await a.stop()
            await b.stop()

    run(body)


def test_publishing_survives_redis_forgetting_its_scripts(redis_server: RedisServer, prefix: str) -> None:
    async def body() -> None:
        sink = Sink()
        broker = make(redis_server, prefix)
        await broker.start(sink)
        client = redis.Redis(port=redis_server.port)
        try:
            (first,) = await broker.publish([alert("a", 0)], 1)
            client.script_flush()  # what a restarted Redis knows of them
            (single,) = await broker.publish([alert("a", 1)], 1)  # one command
            client.script_flush()
            batches = await asyncio.gather(
                *(broker.publish([alert("a", i)], 1) for i in range(2, 12))
            )  # a pipeline
            client.script_flush()
            assert first.pos is not None
            history = await broker.history("user:a", first.pos)
            assert [e.data["i"] for e in history.events] == list(range(1, 12))
            assert [e.id for e in history.events] == [single.id, *(b[0].id for b in batches)]
            assert sink.ids("user:a") == [first.id, single.id, *(b[0].id for b in batches)]
        finally:
            client.close()
            await broker.stop()

    run(body)


def test_a_publisher_that_gives_up_does_not_stop_the_writer(redis_server: RedisServer, prefix: str) -> None:
    async def body() -> None:
        broker = make(redis_server, prefix)
        await broker.start(Sink())
        try:
            await broker.submit(Batch([alert("a", 0)], 1, ingest_id="5-0"))
            # A batch Redis refuses (its ingest entry was published), whose publisher is
            # cancelled while it waits for the answer:
            waiter = asyncio.ensure_future(broker.submit(Batch([alert("a", 1)], 1, ingest_id="5-0")))
            asyncio.get_running_loop().call_soon(waiter.cancel)  # once it waits for its reply
            with pytest.raises(asyncio.CancelledError):
                await waiter
            (later,) = await asyncio.wait_for(broker.publish([alert("a", 2)], 1), 5)
            assert later.pos is not None and later.pos.offset == 2
            with pytest.raises(IngestDuplicate):
                await asyncio.wait_for(broker.submit(Batch([alert("a", 3)], 1, ingest_id="4-0")), 5)
        finally:
            await broker.stop()

    run(body)


def test_publishing_while_redis_is_unreachable_fails_loudly() -> None:
    async def body() -> None:
        from support.servers import free_port
        from tickwire.errors import BrokerUnavailable

        broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
        await broker.start(Sink())
        try:
            assert not await broker.healthy()
            with pytest.raises(BrokerUnavailable, match="unreachable"):
                await broker.publish([alert("a", 1)], 1)
        finally:
            await broker.stop()

    run(body)
