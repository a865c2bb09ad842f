"""End to end: one grep of a publish's correlation id follows its events from the publisher
to the connections they trouble (the "published" line with the ids, then the slow consumer
that could not take them: closed, or its unsent ticks dropped), and names the test broadcast."""

from __future__ import annotations

import json
import socket
from typing import Any

from support.e2e import alert, http, post_publish, price, sym, uid, wait_until
from support.servers import ServerProcess


def _lines_with(proc: ServerProcess, text: str) -> list[dict[str, Any]]:
    out = []
    for line in proc.output().splitlines():
        if text in line and line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_a_publish_correlation_id_names_its_events_and_the_slow_consumer_they_closed() -> None:
    proc = ServerProcess({"TICKWIRE_LOG_LEVEL": "info", "TICKWIRE_OUTBOX_BYTES": "4096"})
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    trace = uid("order-trace")
    try:
        proc.start()
        user = uid("traced")
        admin = proc.token(uid("root"), "admin")
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stuck.connect(("127.0.0.1", proc.port))
        stuck.sendall(
            f"GET /api/stream/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {proc.token(user)}\r\n\r\n".encode()
        )

        def clients() -> int:
            body = http.get(
                f"{proc.url}/api/stream/metrics", headers={"Authorization": f"Bearer {admin}"}, timeout=5
            ).json()
            return next((c["clientCount"] for c in body["clientsPerUser"] if c["userId"] == user), 0)

        assert wait_until(lambda: clients() == 1), "the stuck client did not connect"
        ids: list[str] = []
        for start in range(0, 3000, 250):  # ~6 MB for a client that reads nothing
            batch = [alert(user, n, note="x" * 2000) for n in range(start, start + 250)]
            response = post_publish(proc, batch, headers={"X-Correlation-ID": trace})
            assert response.status_code == 200, response.text
            ids += response.json()["ids"]
            if clients() == 0:
                break
        assert wait_until(lambda: clients() == 0, timeout=20), "the slow consumer was not closed"
        assert wait_until(
            lambda: any("slow consumer" in r["msg"] for r in _lines_with(proc, trace)), timeout=5
        )
        lines = _lines_with(proc, trace)
        published = [r for r in lines if r["msg"] == "published"]
        assert published and published[0]["publish_correlation_id"] == trace
        assert published[0]["ids"] == ids[: len(published[0]["ids"])]
        closed = [r for r in lines if r["msg"] == "slow consumer: connection closed"]
        assert closed and closed[0]["level"] == "warning" and closed[0]["user"] == user
    finally:
        stuck.close()
        proc.stop()


def test_the_ticks_a_slow_consumer_dropped_name_the_publish_they_came_from() -> None:
    """Ticks only (prices, conflation off): the outbox drops them rather than closing the
    connection, and the warning names the publish and the connection."""
    proc = ServerProcess(
        {"TICKWIRE_LOG_LEVEL": "info", "TICKWIRE_OUTBOX_BYTES": "4096", "TICKWIRE_THROTTLE_MS": "0"}
    )
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    trace, conn_trace, symbol = uid("price-trace"), uid("stuck-conn"), sym()
    try:
        proc.start()
        user = uid("ticks")
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stuck.connect(("127.0.0.1", proc.port))
        stuck.sendall(
            (
                f"GET /api/stream/prices?symbols={symbol} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {proc.token(user)}\r\nX-Correlation-ID: {conn_trace}\r\n\r\n"
            ).encode()
        )

        def dropped() -> list[dict[str, Any]]:
            return [r for r in _lines_with(proc, trace) if r["msg"] == "slow consumer: dropped unsent ticks"]

        for batch in range(40):  # up to ~8 MB of ticks for a client that reads nothing
            ticks = [
                {**price(symbol, 100 + n), "data": {**price(symbol, 100 + n)["data"], "source": "x" * 2000}}
                for n in range(100)
            ]
            response = post_publish(proc, ticks, headers={"X-Correlation-ID": trace})
            assert response.status_code == 200, response.text
            if batch and dropped():
                break
        assert wait_until(lambda: bool(dropped()), timeout=5), "no ticks were dropped"
        line = dropped()[0]
        assert line["level"] == "warning" and line["dropped"] >= 1
        assert (line["publish_correlation_id"], line["correlation_id"], line["user"]) == (
            trace,
            conn_trace,
            user,
        )
        assert not any(r["msg"] == "slow consumer: connection closed" for r in _lines_with(proc, conn_trace))
    finally:
        stuck.close()
        proc.stop()


def test_the_test_broadcast_names_its_request() -> None:
    proc = ServerProcess({"TICKWIRE_LOG_LEVEL": "debug"})
    trace = uid("broadcast-trace")
    try:
        proc.start()
        response = http.post(
            f"{proc.url}/api/stream/test",
            json={"message": "hello"},
            headers={
                "Authorization": f"Bearer {proc.token(uid('root'), 'admin')}",
                "X-Correlation-ID": trace,
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert wait_until(lambda: any(r["msg"] == "test broadcast" for r in _lines_with(proc, trace)))
        line = next(r for r in _lines_with(proc, trace) if r["msg"] == "test broadcast")
        assert (line["level"], line["publish_correlation_id"]) == ("debug", trace)
    finally:
        proc.stop()
