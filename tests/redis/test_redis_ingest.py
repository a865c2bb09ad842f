"""Publishing from outside Python, with nothing but a plain Redis client (docs/redis.md):
XADD a POST /api/publish body to `<prefix>:ingest`; one node validates and publishes each
entry exactly once, in order, and answers on the optional `reply` list."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis

from support.e2e import open_stream, read_until_match, uid
from support.redis_server import RedisServer, redis_node
from support.servers import ServerProcess
from tickwire.core.ids import parse_id


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
        stream.read_until(31, timeout=10)
        stream.read_for(0.5)
        alerts = stream.of_type("alert:new")
        assert [e.json()["message"] for e in alerts] == [f"m{i}" for i in range(30)]
        assert [parse_id(e.id or "").offset for e in alerts] == list(range(1, 31))


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
