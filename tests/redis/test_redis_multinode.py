"""Two (or more) `tickwire serve` processes on one private redis-server, over real sockets:
fan-out across nodes, resume on another node after kill -9, history and ids across node
restarts, an explicit reset when Redis loses its data, readiness and 503 while Redis is
away, one strict order with concurrent publishers, cluster-wide limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from support.e2e import alert, open_stream, order, poll, post_publish, publish, read_until_match, uid
from support.e2e_client import SSEClient
from support.redis_server import RedisServer, redis_node, require_redis_server
from support.servers import ServerProcess
from tickwire.core.ids import parse_id
from tickwire.wire.sse import SSEEvent


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Nodes A and B on the module's Redis, at most 2 connections per user (cluster-wide)."""
    env = {"TICKWIRE_MAX_CONNS_PER_USER": "2"}
    a = redis_node(redis_server.url, env).start()
    b = redis_node(redis_server.url, env).start()
    yield a, b
    a.stop()
    b.stop()


def ids_of(events: list[SSEEvent], type_: str = "alert:new") -> list[str | None]:
    return [e.id for e in events if e.event == type_]


def offsets(ids: list[str | None]) -> list[int]:
    return [parse_id(i).offset for i in ids if i is not None]


def wait_for(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_one_node_delivers_what_another_publishes_and_serves_its_state(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    user = uid("fan")
    token = a.token(user)
    with open_stream(a, "alerts", token) as stream:
        ids = publish(b, *(alert(user, i) for i in range(5)))
        stream.read_until(6)
        assert ids_of(stream.events) == ids
    # Keyed state lives in Redis: node B's snapshot has the order node A took.
    publish(a, order(user, "o-1", symbol="AAPL"))
    with open_stream(b, "orders", b.token(user), initial=2) as snap:
        assert snap.events[1].json()["orders"][0]["orderId"] == "o-1"
    # The strategy registry too: published on A, readable on B, owned by its user only.
    sid = uid("strat")
    assert (
        httpx.get(
            f"{b.url}/api/stream/strategies/{sid}", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 404
    )
    publish(a, {"type": "strategy:update", "user": user, "data": {"strategyId": sid, "status": "running"}})
    with open_stream(b, f"strategies/{sid}", token, initial=2) as strat:
        assert strat.events[1].json()["strategyId"] == sid
    other = b.token(uid("other"))
    assert (
        httpx.get(
            f"{b.url}/api/stream/strategies/{sid}", headers={"Authorization": f"Bearer {other}"}
        ).status_code
        == 403
    )


def test_concurrent_publishers_on_two_nodes_keep_one_strict_order(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    user = uid("order")
    per_node = 40
    published: dict[str, list[str]] = {"a": [], "b": []}

    def publisher(node: ServerProcess, tag: str) -> None:
        token = node.token("pub", "publisher")
        with httpx.Client(
            base_url=node.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as http:
            for i in range(per_node):
                response = http.post("/api/publish", json=alert(user, f"{tag}{i}"))
                assert response.status_code == 200, response.text
                published[tag] += response.json()["ids"]

    with open_stream(a, "alerts", a.token(user)) as on_a, open_stream(b, "alerts", b.token(user)) as on_b:
        threads = [threading.Thread(target=publisher, args=(n, t)) for n, t in ((a, "a"), (b, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for stream in (on_a, on_b):
            stream.read_until(1 + 2 * per_node, timeout=10)
        seen_a, seen_b = ids_of(on_a.events), ids_of(on_b.events)
    assert seen_a == seen_b, "both nodes deliver the same order"
    assert offsets(seen_a) == list(range(1, 2 * per_node + 1)), "no duplicate, no hole, no reordering"
    assert set(seen_a) == set(published["a"]) | set(published["b"])
    for tag in ("a", "b"):  # each publisher's events in the order it published them
        assert [i for i in seen_a if i in set(published[tag])] == published[tag]


def test_the_per_user_cap_holds_across_nodes(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    user = uid("cap")
    token = a.token(user)
    first = open_stream(a, "alerts", token)
    time.sleep(0.3)  # registration order is the age order
    second = open_stream(a, "alerts", token)
    time.sleep(0.3)
    third = open_stream(b, "alerts", token)  # the cluster has 3 > 2: the oldest (on A) goes
    try:
        limit = first.wait_for("connection:limit", timeout=5)
        assert limit is not None and limit.json()["limit"] == 2
        assert first.wait_closed(5)
        time.sleep(0.3)
        fourth = open_stream(b, "alerts", token)  # now the oldest is `second`, on A again
        try:
            assert second.wait_for("connection:limit", timeout=5) is not None
            assert second.wait_closed(5)
            assert not third.of_type("connection:limit") and not third.closed
            assert not fourth.of_type("connection:limit")
        finally:
            fourth.close()
    finally:
        for stream in (first, second, third):
            stream.close()


def test_kill_9_mid_stream_and_resume_on_the_other_node(redis_server: RedisServer) -> None:
    a = redis_node(redis_server.url).start()
    b = redis_node(redis_server.url).start()
    user = uid("crash")
    total = 100
    published: list[str] = []
    try:

        def publisher() -> None:
            token = b.token("pub", "publisher")
            with httpx.Client(
                base_url=b.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
            ) as http:
                for i in range(total):
                    response = http.post("/api/publish", json=alert(user, i))
                    assert response.status_code == 200, response.text
                    published.extend(response.json()["ids"])
                    time.sleep(0.01)

        stream = open_stream(a, "alerts", a.token(user))
        thread = threading.Thread(target=publisher)
        thread.start()
        stream.read_until(31, timeout=10)
        a.kill()  # kill -9 while events are flowing
        stream.wait_closed(5)
        before = ids_of(stream.events)
        stream.close()
        assert 30 <= len(before) < total, "the crash happened mid-stream"
        thread.join()
        missed = total - len(before)
        with SSEClient(
            b.url, "/api/stream/alerts", token=b.token(user), headers={"Last-Event-ID": before[-1] or ""}
        ) as resumed:
            resumed.read_until(1 + missed, timeout=10)
            after = ids_of(resumed.read_for(0.3))
            assert not resumed.of_type("stream:reset")
        assert before + after == published, "exactly the missed events, once, in order"
    finally:
        a.stop()
        b.stop()


def test_restarting_both_nodes_keeps_history_and_ids(redis_server: RedisServer) -> None:
    nodes = [redis_node(redis_server.url).start(), redis_node(redis_server.url).start()]
    user = uid("restart")
    try:
        ids = publish(nodes[0], *(alert(user, i) for i in range(5)), order(user, "o-9", symbol="MSFT"))
        for node in nodes:
            node.stop()
        nodes = [redis_node(redis_server.url).start(), redis_node(redis_server.url).start()]
        a, b = nodes
        token = a.token(user)
        with SSEClient(
            b.url, "/api/stream/alerts", token=token, headers={"Last-Event-ID": ids[2]}
        ) as resumed:
            resumed.read_until(3, timeout=5)
            assert ids_of(resumed.events) == ids[3:5]
            assert not resumed.of_type("stream:reset")
            later = publish(a, alert(user, 5), alert(user, 6))
            resumed.read_until(5, timeout=5)
            assert ids_of(resumed.events) == [*ids[3:5], *later]
        assert [parse_id(i).epoch for i in later] == [parse_id(ids[0]).epoch] * 2, "same epoch"
        assert offsets(later) == [7, 8], "offsets continue"  # 5 alerts + 1 order before
        with open_stream(a, "orders", token, initial=2) as snap:
            assert [o["orderId"] for o in snap.events[1].json()["orders"]] == ["o-9"]
            assert parse_id(snap.events[1].id or "") == parse_id(later[-1]), (
                "the snapshot is at the log's end"
            )
    finally:
        for node in nodes:
            node.stop()


def test_redis_away_then_back_empty(tmp_path: object) -> None:
    """While Redis is down: /readyz 503, publishing 503 with a clear message, connections
    kept. When it comes back without its data: ready again, and the connected client gets an
    explicit stream:reset and a fresh snapshot, never silence."""
    redis = RedisServer(require_redis_server()).start()
    node = redis_node(redis.url).start()
    user = uid("lost")
    token = node.token(user)
    try:
        stream = open_stream(node, "orders", token, initial=2)
        (first,) = publish(node, order(user, "o-1"))
        read_until_match(stream, lambda e: e.id == first)

        redis.stop()
        wait_for(lambda: httpx.get(node.url + "/readyz").status_code == 503)
        ready = httpx.get(node.url + "/readyz")
        assert ready.json()["status"] == "unavailable" and ready.json()["broker"] == "redis"
        refused = post_publish(node, order(user, "o-2"))
        assert refused.status_code == 503
        assert "Broker unavailable, nothing was published" in refused.json()["message"]
        assert "Redis" in refused.json()["message"]
        polled = httpx.get(
            node.url + "/api/stream/alerts/events", headers={"Authorization": f"Bearer {token}"}
        )
        assert polled.status_code == 503 and "Broker unavailable" in polled.json()["message"]
        stream.read_for(1.5)
        assert not stream.closed, "clients keep their connections while Redis is away"

        redis.start()
        wait_for(lambda: httpx.get(node.url + "/readyz").status_code == 200)
        reset = stream.wait_for("stream:reset", timeout=10)
        assert reset is not None, stream.events
        assert reset.json()["recovered"] is False
        snapshot = read_until_match(
            stream,
            lambda e: (
                e.event == "order:update"
                and e.json().get("snapshot") is True
                and stream.events.index(e) > stream.events.index(reset)
            ),
        )
        assert snapshot.json()["orders"] == []
        (again,) = publish(node, order(user, "o-3"))
        read_until_match(stream, lambda e: e.id == again)
        assert parse_id(again).epoch != parse_id(first).epoch
        stream.close()
    finally:
        node.stop()
        redis.close()


def test_the_connect_rate_holds_across_nodes(redis_server: RedisServer) -> None:
    url = redis_server.url + "?prefix=" + uid("rate")
    env = {"TICKWIRE_CONNECT_RATE": "3"}
    a = redis_node(url, env).start()
    b = redis_node(url, env).start()
    try:
        for node in (a, b, a):
            assert httpx.get(node.url + "/api/stream/prices/events").status_code == 200
        refused = httpx.get(b.url + "/api/stream/prices/events")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    finally:
        a.stop()
        b.stop()


def test_clients_attaching_while_events_flow_get_each_event_exactly_once(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    """Attaching (read the history, then go live) races the subscription on both nodes: every
    client must still see every event of the log once, in order. The public `agent` log is
    used (anonymous clients, no per-user cap); its buffer holds every event published here."""
    a, b = pair
    total = 80
    published: list[str] = []
    run = uid("run")

    def publisher() -> None:
        token = a.token("pub", "publisher")
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            for i in range(total):
                node = (a, b)[i % 2]
                body = {"type": "agent:status", "data": {"agentId": run, "seq": i}}
                response = http.post(node.url + "/api/publish", json=body)
                assert response.status_code == 200, response.text
                published.extend(response.json()["ids"])
                time.sleep(0.004)

    thread = threading.Thread(target=publisher)
    streams: list[SSEClient] = []
    try:
        thread.start()
        for i in range(16):
            streams.append(SSEClient((a, b)[i % 2].url, "/api/stream/agents"))
            time.sleep(0.02)
        thread.join()
        for stream in streams:
            stream.read_until(1 + total, timeout=5)
            mine = [
                e.id for e in stream.events if e.event == "agent:status" and e.json().get("agentId") == run
            ]
            assert mine == published, "every event once, in order, on every client"
    finally:
        thread.join()
        for stream in streams:
            stream.close()


def _fill(user: str, oid: str, qty: float, avg: float) -> dict[str, object]:
    return {
        "type": "order:fill",
        "user": user,
        "data": {"orderId": oid, "filledQty": qty, "filledAvgPrice": avg},
    }


def test_positions_derived_on_two_nodes_agree_and_survive_restarts(redis_server: RedisServer) -> None:
    """Fills of one user published alternately on node A and node B build one position
    sequence; after both nodes restart, the next fill continues from the stored position."""
    nodes = [redis_node(redis_server.url).start(), redis_node(redis_server.url).start()]
    user = uid("pos")
    try:
        a, b = nodes
        (start,) = publish(a, order(user, "o1", symbol="AAPL", side="buy", qty=10))
        publish(b, _fill(user, "o1", 4, 100.0))
        publish(a, _fill(user, "o1", 10, 101.0))  # 6 more at (1010 - 400) / 6: entry 101
        publish(b, order(user, "o2", symbol="AAPL", side="sell", qty=15))
        for node in nodes:
            node.stop()
        nodes = [redis_node(redis_server.url).start(), redis_node(redis_server.url).start()]
        a, b = nodes
        publish(b, _fill(user, "o2", 15, 110.0))  # closes the long (realizes 90), opens 5 short
        body = poll(a, "trading", a.token(user), after=start).json()
        assert body["recovered"] is True
        positions = [e["data"] for e in body["events"] if e["event"] == "position:update"]
        assert [(p["quantity"], p["entryPrice"], p["realizedPnL"], p["change"]) for p in positions] == [
            (4, 100.0, 0.0, "opened"),
            (10, 101.0, 0.0, "increased"),
            (-5, 110.0, 90.0, "flipped"),
        ]
    finally:
        for node in nodes:
            node.stop()
