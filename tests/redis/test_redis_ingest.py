"""Publishing from outside Python, with nothing but a plain Redis client (docs/redis.md):
XADD a POST /api/publish body to `<prefix>:ingest`; one node validates and publishes each
entry exactly once, in order, and answers on the optional `reply` list.

The first tests run two `tickwire serve` nodes; the others drive the broker's ingest
component in process, one lease and one read at a time, with a handler doing what a node does
(validate, then submit the batch with the entry's id)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest
import redis

from support.e2e import open_stream, read_until_match, uid
from support.redis_server import RedisServer, redis_node
from support.servers import ServerProcess
from support.sinks import RecordingSink
from tickwire.brokers.base import Batch, Publication
from tickwire.brokers.redis import RedisBroker
from tickwire.brokers.redis.ingest import Ingest
from tickwire.core.ids import parse_id
from tickwire.errors import BrokerUnavailable, IngestDuplicate, PublishError


@pytest.fixture(scope="module")
def nodes(redis_server: RedisServer) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    a = redis_node(redis_server.url).start()
    b = redis_node(redis_server.url).start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    r = redis.Redis(port=redis_server.port)
    yield r
    r.close()


def ingest(r: redis.Redis, body: object, *, wait: bool = True) -> dict[str, object] | None:
    """What a service in any language does: XADD, then (optionally) BLPOP the answer."""
    reply = f"tw:reply:{uuid.uuid4().hex}"
    r.xadd("tw:ingest", {"event": orjson.dumps(body), "reply": reply})
    if not wait:
        return None
    answer = r.blpop([reply], timeout=10)
    assert answer is not None, "no node answered the ingest entry"
    result: dict[str, object] = orjson.loads(answer[1])
    return result


def test_a_plain_redis_client_publishes_through_the_ingest_stream(
    nodes: tuple[ServerProcess, ServerProcess], client: redis.Redis
) -> None:
    a, b = nodes
    user = uid("ingest")
    with (
        open_stream(a, "alerts", a.token(user)) as on_a,
        open_stream(b, "orders", b.token(user), initial=2) as on_b,
    ):
        result = ingest(
            client,
            [
                {
                    "type": "alert:new",
                    "user": user,
                    "data": {"message": "from redis-cli", "apiKey": "s3cret"},
                },
                {
                    "type": "order:update",
                    "user": user,
                    "data": {"orderId": "o-1", "symbol": "AAPL", "status": "new"},
                },
            ],
        )
        assert result is not None and "ids" in result, result
        ids = result["ids"]
        assert isinstance(ids, list) and len(ids) == 2
        got = on_a.wait_for("alert:new", timeout=5)
        assert got is not None and got.id == ids[0]
        data = got.json()
        assert data["message"] == "from redis-cli"
        assert data["apiKey"] == "[REDACTED]", "ingest goes through the same sanitizer"
        assert "timestamp" in data
        update = read_until_match(on_b, lambda e: e.event == "order:update" and e.id is not None)
        assert update.id == ids[1]


def test_ingest_entries_are_published_exactly_once_in_order(
    nodes: tuple[ServerProcess, ServerProcess], client: redis.Redis
) -> None:
    a, _ = nodes
    user = uid("ingest-order")
    with open_stream(a, "alerts", a.token(user)) as stream:
        for i in range(30):
            ingest(client, {"type": "alert:new", "user": user, "data": {"message": f"m{i}"}}, wait=False)
        # A last entry: once it is delivered, every entry before it was published (in order),
        # and a second publication of one of them could only have come before it.
        ingest(client, {"type": "alert:new", "user": user, "data": {"message": "end"}}, wait=False)
        read_until_match(
            stream, lambda e: e.event == "alert:new" and e.json()["message"] == "end", timeout=10
        )
        alerts = stream.of_type("alert:new")
        assert [e.json()["message"] for e in alerts] == [*(f"m{i}" for i in range(30)), "end"]
        assert [parse_id(e.id or "").offset for e in alerts] == list(range(1, 32))


def test_an_invalid_entry_is_answered_and_recorded_not_published(
    nodes: tuple[ServerProcess, ServerProcess], client: redis.Redis
) -> None:
    result = ingest(client, {"type": "alert:new", "data": {"message": "no user"}})
    assert result is not None and result.get("status") == 400, result
    assert "user" in str(result["error"])
    errors = client.xrevrange("tw:ingest:errors", count=1)
    assert errors and b"no user" in errors[0][1][b"event"]
    # The stream moves on: the next valid entry is published.
    user = uid("after-error")
    ok = ingest(client, {"type": "alert:new", "user": user, "data": {"message": "fine"}})
    assert ok is not None and "ids" in ok


# -- in process: the ingest component ---------------------------------------------------


class Sink(RecordingSink):
    def on_reset(self, log: str, reason: str) -> None:
        raise AssertionError(f"{log} was reset ({reason})")

    def messages(self) -> list[str]:
        return [e.data["message"] for e in self.events]


Handler = Callable[[Any, str], Awaitable[list[str | None]]]


def publisher(broker: RedisBroker) -> Handler:
    """What a node's ingest handler does: validate, then publish with the entry's id."""

    async def handle(body: Any, entry_id: str) -> list[str | None]:
        items = body if isinstance(body, list) else [body]
        pubs = []
        for item in items:
            if "user" not in item:
                raise PublishError("`user` is required")
            pubs.append(Publication(item["type"], item["data"], f"user:{item['user']}"))
        stamped = await broker.submit(Batch(pubs, 1, ingest_id=entry_id))
        return [e.id for e in stamped]

    return handle


def entry(message: str, user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {"type": "alert:new", "user": user, "data": {"message": message, **extra}}


def run_with_broker(
    redis_server: RedisServer, body: Callable[[RedisBroker, Sink, redis.Redis, str], Awaitable[None]]
) -> None:
    """A broker on its own prefix whose ingest loop does not run: the test drives it."""
    prefix = f"i{uuid.uuid4().hex[:10]}"

    async def main() -> None:
        broker = RedisBroker(redis_server.url, prefix=prefix)
        sink = Sink()
        await broker.start(sink)  # no IngestHandler: no ingest loop
        client = redis.Redis(port=redis_server.port)
        try:
            assert broker.ingest is None
            await body(broker, sink, client, prefix)
        finally:
            client.close()
            await broker.stop()

    asyncio.run(main())


def add(client: redis.Redis, prefix: str, body: object, reply: str | None = None) -> str:
    fields: dict[str, Any] = {"event": orjson.dumps(body)}
    if reply is not None:
        fields["reply"] = reply
    return client.xadd(f"{prefix}:ingest", fields).decode()


def answers(client: redis.Redis, reply: str) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in client.lrange(reply, 0, -1)]


def test_the_leader_publishes_each_entry_once_in_order_and_answers(redis_server: RedisServer) -> None:
    async def body(broker: RedisBroker, sink: Sink, client: redis.Redis, prefix: str) -> None:
        ingest = Ingest(broker.link, broker.tasks, publisher(broker), node_id=broker.node_id)
        other = Ingest(broker.link, broker.tasks, publisher(broker), node_id="another-node")
        reply = f"{prefix}:reply:1"
        add(client, prefix, entry("m0"))
        add(client, prefix, [entry("m1"), entry("m2")], reply)
        last = add(client, prefix, entry("m3"))
        assert await ingest.lease_once()
        assert not await other.lease_once()  # one leader at a time
        assert await ingest.lease_once()  # renewed by its holder
        assert await ingest.read_once(block_ms=None) == 3
        assert sink.messages() == ["m0", "m1", "m2", "m3"]
        (answer,) = answers(client, reply)
        assert answer == {"ids": [e.id for e in sink.events[1:3]]}
        assert 0 < client.pttl(reply) <= 60_000
        assert client.get(f"{prefix}:ingest:cursor") == last.encode()
        assert await ingest.read_once(block_ms=None) == 0  # nothing is read twice
        assert ingest.ingested == 3

    run_with_broker(redis_server, body)


def test_two_nodes_that_both_think_they_lead_publish_each_entry_once(redis_server: RedisServer) -> None:
    async def body(broker: RedisBroker, sink: Sink, client: redis.Redis, prefix: str) -> None:
        nodes = [Ingest(broker.link, broker.tasks, publisher(broker), node_id=f"n{i}") for i in range(2)]
        replies = [f"{prefix}:reply:{i}" for i in range(20)]
        for i, reply in enumerate(replies):
            add(client, prefix, entry(f"m{i}"), reply)
        await asyncio.gather(*(node.read_once(block_ms=None) for node in nodes))
        assert sink.messages() == [f"m{i}" for i in range(20)]
        assert [len(answers(client, reply)) for reply in replies] == [1] * 20
        assert sum(node.ingested for node in nodes) == 20

    run_with_broker(redis_server, body)


def test_a_batch_publishes_its_ingest_entry_at_most_once(redis_server: RedisServer) -> None:
    async def body(broker: RedisBroker, sink: Sink, client: redis.Redis, prefix: str) -> None:
        alert = Publication("alert:new", {"message": "m"}, "user:u1")
        await broker.submit(Batch([alert], 1, ingest_id="1700000000000-1"))
        assert client.get(f"{prefix}:ingest:cursor") == b"1700000000000-1"
        for seen in ("1700000000000-1", "1700000000000-0", "1699999999999-5"):
            with pytest.raises(IngestDuplicate, match="already published"):
                await broker.submit(Batch([alert], 1, ingest_id=seen))
        await broker.submit(Batch([alert], 1))  # no entry: not checked, cursor untouched
        assert client.get(f"{prefix}:ingest:cursor") == b"1700000000000-1"
        assert len(sink.events) == 2

    run_with_broker(redis_server, body)


def test_entries_that_cannot_be_published_are_answered_recorded_and_skipped(
    redis_server: RedisServer,
) -> None:
    async def body(broker: RedisBroker, sink: Sink, client: redis.Redis, prefix: str) -> None:
        async def handle(body: Any, entry_id: str) -> list[str | None]:
            if body.get("data", {}).get("boom"):
                raise RuntimeError("the handler broke")
            return await publisher(broker)(body, entry_id)

        ingest = Ingest(broker.link, broker.tasks, handle, node_id=broker.node_id)
        reply = f"{prefix}:reply:r1"
        invalid = add(client, prefix, {"type": "alert:new", "data": {"message": "no user"}}, reply)
        client.xadd(f"{prefix}:ingest", {"event": b"{not json", "reply": reply})
        client.xadd(f"{prefix}:ingest", {"reply": reply})
        broken = add(client, prefix, entry("x", boom=True), reply)
        add(client, prefix, entry("fine"), reply)
        assert await ingest.read_once(block_ms=None) == 5
        got = answers(client, reply)[::-1]  # LPUSH: newest first
        assert [a.get("status") for a in got] == [400, 400, 400, 500, None]
        assert got[0] == {"error": "`user` is required", "status": 400, "entry": invalid}
        assert "not valid JSON" in got[1]["error"] and "no `event` field" in got[2]["error"]
        assert got[3] == {"error": "the handler broke", "status": 500, "entry": broken}
        assert got[4] == {"ids": [sink.events[0].id]}
        assert sink.messages() == ["fine"]
        errors = client.xrange(f"{prefix}:ingest:errors")
        assert len(errors) == 4
        assert errors[0][1][b"entry"].decode() == invalid and b"no user" in errors[0][1][b"event"]

    run_with_broker(redis_server, body)


def test_a_reply_that_is_not_a_reply_list_of_the_deployment_changes_no_key(redis_server: RedisServer) -> None:
    """`reply` cannot touch another key: another application's, another deployment's, one of
    the layout (a strategy's owner), or a reply name already holding something else; the
    entry naming one that is not `<prefix>:reply:<token>` is refused and recorded."""

    async def body(broker: RedisBroker, sink: Sink, client: redis.Redis, prefix: str) -> None:
        ingest = Ingest(broker.link, broker.tasks, publisher(broker), node_id=broker.node_id)
        strategy = Publication("strategy:update", {"strategyId": "s1"}, "user:owner", strategy="s1")
        await broker.submit(Batch([strategy], 1))
        strategy_key = broker.link.keys.strategy("s1")
        other_app, other_deployment, taken = (
            "otherapp:session:42",
            f"x{prefix}:reply:1",
            f"{prefix}:reply:taken",
        )
        client.set(other_app, "keep", px=3_600_000)
        client.rpush(other_deployment, "theirs")
        client.pexpire(other_deployment, 3_600_000)
        client.set(taken, "not a list", px=3_600_000)  # a reply name, but not a list
        protected = (other_app, other_deployment, strategy_key, taken)
        before = {key: (client.dump(key), client.pttl(key)) for key in protected}
        assert all(ttl > 3_000_000 for _, ttl in before.values())
        refused_keys = [
            other_app,
            other_deployment,
            strategy_key,
            f"{prefix}:reply:",
            f"{prefix}:reply:a:b",
            f"{prefix}:reply:{'x' * 65}",
            f"{prefix}:reply:ok\n",
            f"{prefix}:reply:{{x}}",
        ]
        refused = [add(client, prefix, entry(f"refused {i}"), key) for i, key in enumerate(refused_keys)]
        add(client, prefix, entry("published, not answered"), taken)
        add(client, prefix, entry("no answer wanted"), "")  # an empty `reply` is none
        ok = f"{prefix}:reply:Az09._-"
        last = add(client, prefix, entry("answered"), ok)
        assert await ingest.read_once(block_ms=None) == len(refused_keys) + 3
        for key in protected:
            dump, ttl = before[key]
            assert client.dump(key) == dump, key
            assert ttl - 60_000 < client.pttl(key) <= ttl, key  # not the reply TTL (60 s)
        assert client.get(strategy_key) == b"owner"
        assert [e.data.get("message") for e in sink.events[1:]] == [
            "published, not answered",
            "no answer wanted",
            "answered",
        ]
        assert answers(client, ok) == [{"ids": [sink.events[-1].id]}]
        errors = client.xrange(f"{prefix}:ingest:errors")
        assert [e[1][b"entry"].decode() for e in errors] == refused
        assert all(b"`reply` must be a key" in e[1][b"error"] for e in errors)
        assert [e[1][b"reply"].decode() for e in errors] == refused_keys
        assert client.get(f"{prefix}:ingest:cursor") == last.encode()  # past all of them
        for key in (*refused_keys, taken):  # the script checks the key on its own too
            assert await broker.link.run("ingest_reply", [key, b"{}", 60_000]) == 0
        for key in protected:
            assert client.dump(key) == before[key][0] and client.pttl(key) > 60_000, key

    run_with_broker(redis_server, body)


def test_an_entry_is_read_again_when_the_broker_was_unavailable(redis_server: RedisServer) -> None:
    async def body(broker: RedisBroker, sink: Sink, client: redis.Redis, prefix: str) -> None:
        calls: list[str] = []

        async def flaky(body: Any, entry_id: str) -> list[str | None]:
            calls.append(entry_id)
            if len(calls) == 1:
                raise BrokerUnavailable("Redis went away")
            return await publisher(broker)(body, entry_id)

        ingest = Ingest(broker.link, broker.tasks, flaky, node_id=broker.node_id)
        reply = f"{prefix}:reply:r1"
        first = add(client, prefix, entry("m0"), reply)
        with pytest.raises(BrokerUnavailable):
            await ingest.read_once(block_ms=None)
        assert client.get(f"{prefix}:ingest:cursor") is None and answers(client, reply) == []
        assert await ingest.read_once(block_ms=None) == 1
        assert calls == [first, first]
        assert sink.messages() == ["m0"] and len(answers(client, reply)) == 1

    run_with_broker(redis_server, body)


def test_a_started_broker_with_a_handler_runs_the_ingest_loop(redis_server: RedisServer) -> None:
    async def main() -> None:
        prefix = f"i{uuid.uuid4().hex[:10]}"
        broker = RedisBroker(redis_server.url, prefix=prefix)
        sink = Sink()
        await broker.start(sink, ingest=publisher(broker))
        client = redis.Redis(port=redis_server.port)
        try:
            reply = f"{prefix}:reply:r1"
            add(client, prefix, entry("hello"), reply)
            answer = await broker.link.client.blpop([reply], timeout=5)  # what a service does
            assert answer is not None
            assert orjson.loads(answer[1]) == {"ids": [sink.events[0].id]}
            assert broker.stats["ingested"] == 1
            assert client.get(f"{prefix}:ingest:leader") == broker.node_id.encode()
        finally:
            client.close()
            await broker.stop()

    asyncio.run(main())
