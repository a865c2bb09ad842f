"""Alerts and scans on Redis, with real `tickwire serve` nodes on a private redis-server:
the alert history outlives the stream buffer's TTL and a node restart; a rule fires once per
crossing across two nodes that both see it; a scan runs on one node at a time and moves to
the other when its node stops."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from support.alerts import call, create_rule
from support.e2e import open_stream, poll, price, publish, read_until_type, sym, uid
from support.redis_server import RedisServer, redis_node
from support.servers import ServerProcess


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {"TICKWIRE_BUFFER_TTL_S": "1"}
    a = redis_node(redis_server.url, env).start()
    b = redis_node(redis_server.url, env).start()
    yield a, b
    a.stop()
    b.stop()


def history(server: ServerProcess, token: str) -> list[dict[str, Any]]:
    response = call(server, "GET", "/api/alerts", token)
    assert response.status_code == 200, response.text
    alerts: list[dict[str, Any]] = response.json()["alerts"]
    return alerts


def test_history_survives_the_buffer_ttl_and_a_node_restart(redis_server: RedisServer) -> None:
    node = redis_node(redis_server.url, {"TICKWIRE_BUFFER_TTL_S": "1"}).start()
    user, symbol = uid("alice"), sym()
    token = node.token(user)
    try:
        rule = create_rule(node, token, kind="price_below", symbol=symbol, threshold=10)
        with open_stream(node, "alerts", token):
            publish(node, price(symbol, 11), price(symbol, 9))
        assert [a["ruleId"] for a in history(node, token)] == [rule["ruleId"]]
        time.sleep(1.5)  # the user's last connection closed over a second ago: their buffer is gone
        assert [e for e in poll(node, "alerts", token).json()["events"] if e["event"] == "alert:new"] == []
        node.stop()
        node = redis_node(redis_server.url).start()
        alerts = history(node, token)
        assert [(a["ruleId"], a["value"], a["acked"]) for a in alerts] == [(rule["ruleId"], 9, False)]
        assert call(node, "POST", f"/api/alerts/{alerts[0]['alertId']}/ack", token).status_code == 200
        assert history(node, token)[0]["acked"] is True
        stored = call(node, "GET", f"/api/alerts/rules/{rule['ruleId']}", token).json()
        assert (stored["fired"], stored["armed"]) == (1, False)  # the rule's state too
    finally:
        node.stop()


def test_a_rule_fires_once_per_crossing_across_two_nodes(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    user, symbol = uid("alice"), sym()
    token = a.token(user)
    create_rule(a, token, kind="price_above", symbol=symbol, threshold=100, throttleS=0)
    rounds = 5
    with open_stream(b, "alerts", token) as stream:
        for r in range(rounds):
            publish(a, price(symbol, 99))  # below: re-arms (whichever node evaluates)
            publish(b, price(symbol, 99))
            threads = [
                threading.Thread(target=publish, args=(node, price(symbol, 101 + r))) for node in (a, b, a, b)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        deadline = time.monotonic() + 20
        while len(stream.of_type("alert:new")) < rounds and time.monotonic() < deadline:
            stream.read_for(0.2)
        stream.read_for(0.5)  # and no more than one per crossing
        fired = [e.json() for e in stream.of_type("alert:new")]
    assert len(fired) == rounds, [f["value"] for f in fired]
    assert len({f["alertId"] for f in fired}) == rounds
    assert len(history(b, token)) == rounds


def test_a_scan_runs_on_one_node_at_a_time(redis_server: RedisServer) -> None:
    x, y = redis_node(redis_server.url).start(), redis_node(redis_server.url).start()
    try:
        admin = x.token("root", "admin")
        scan_id = f"scan-{uuid.uuid4().hex[:8]}"
        symbol = sym()
        publish(x, price(symbol, 5))
        condition = {"kind": "price_above", "threshold": 1}
        body = {"scanId": scan_id, "symbols": [symbol], "condition": condition, "intervalS": 0.3}
        assert call(y, "POST", "/api/scans", admin, body).status_code == 201
        viewer = x.token(uid("viewer"))
        with open_stream(y, f"scans/{scan_id}", viewer) as stream:
            first = read_until_type(stream, "scan:status", lambda d: True, timeout=15).json()["cycle"]
            read_until_type(stream, "scan:status", lambda d: d["cycle"] >= first + 3, timeout=15)
            cycles = [e.json()["cycle"] for e in stream.of_type("scan:status")]
            assert cycles == sorted(set(cycles)), cycles  # no cycle twice
            assert len(stream.of_type("scan:result")) == 1  # deduplicated across cycles and nodes
            # x dies without a word: if it held the scan, y takes it once the lease (5 s) expired.
            x.kill()
            last = cycles[-1]
            read_until_type(stream, "scan:status", lambda d: d["cycle"] > last + 3, timeout=30)
            later = [e.json()["cycle"] for e in stream.of_type("scan:status")]
        assert later == sorted(set(later)), later
        assert call(y, "DELETE", f"/api/scans/{scan_id}", admin).status_code == 204
    finally:
        x.stop()
        y.stop()
