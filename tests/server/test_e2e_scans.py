"""End to end (a real `tickwire serve`): scans of SPEC 13. An admin defines them; results and
progress stream on `/api/stream/scans/{scanId}` over SSE, WebSocket and poll; the status
endpoint; the on-demand queue's bound (429); visibility (a user scan is its owner's)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from support.alerts import WSSubscriber, call
from support.e2e import assert_error, open_stream, poll, price, publish, read_until_type, sym, uid
from support.servers import ServerProcess


@pytest.fixture
def admin(server: ServerProcess) -> str:
    return server.token(uid("root"), "admin")


@pytest.fixture
def scan_id(server: ServerProcess, admin: str) -> Iterator[str]:
    sid = f"scan-{uuid.uuid4().hex[:8]}"
    yield sid
    call(server, "DELETE", f"/api/scans/{sid}", admin)


def define(server: ServerProcess, admin: str, **body: Any) -> dict[str, Any]:
    response = call(server, "POST", "/api/scans", admin, body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_public_scan_streams_results_over_sse_websocket_and_poll(
    server: ServerProcess, admin: str, scan_id: str
) -> None:
    a, b = sym(), sym()
    publish(server, price(a, 150), price(b, 50))
    user = server.token(uid("viewer"))
    condition = {"kind": "price_above", "threshold": 100}
    created = define(server, admin, scanId=scan_id, symbols=[a, b], condition=condition, intervalS=0.5)
    assert created["condition"] == condition and created["visibility"] == "public"
    ws = WSSubscriber(server, user, [{"stream": f"scans/{scan_id}"}])
    with open_stream(server, f"scans/{scan_id}", user) as stream:
        result = read_until_type(stream, "scan:result", lambda d: d["symbol"] == a, timeout=10)
        data = result.json()
        assert result.seq == 1  # numbered per scan, whatever other scans of the log published
        assert (data["scanId"], data["value"], data["hash"]) == (scan_id, 150, data["hash"]) and data[
            "reason"
        ]
        status = read_until_type(stream, "scan:status", lambda d: d["complete"], timeout=10).json()
        assert status["total"] == 2 and status["cycle"] >= 1 and status["durationMs"] >= 0
        stream.read_for(1.2)  # more cycles, the same values: no new result
        assert [e.json()["symbol"] for e in stream.of_type("scan:result")] == [a]
    message = ws.until(lambda m: m.get("event") == "scan:result")
    assert message["data"]["hash"] == data["hash"]
    ws.close()
    polled = poll(server, f"scans/{scan_id}", user).json()
    assert [e["data"]["symbol"] for e in polled["events"] if e["event"] == "scan:result"] == [a]
    status_body = call(server, "GET", f"/api/scans/{scan_id}/status", user).json()
    assert status_body["state"] == "running" and status_body["cycles"] >= 2 and status_body["results"] == 1
    assert set(status_body) >= {"state", "cycles", "lastCycleMs", "results", "queued"}
    stopped = call(server, "POST", f"/api/scans/{scan_id}/stop", admin)
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"


def test_defining_needs_admin_and_a_valid_body(server: ServerProcess, admin: str, scan_id: str) -> None:
    user = server.token(uid("user"))
    body = {"scanId": scan_id, "symbols": ["A"], "condition": {"kind": "price_above", "threshold": 1}}
    assert_error(call(server, "POST", "/api/scans", user, body), 403)
    error = assert_error(call(server, "POST", "/api/scans", admin, {**body, "condition": {"kind": "x"}}), 400)
    assert "condition.kind" in error["message"]
    define(server, admin, **body)
    assert "exists" in assert_error(call(server, "POST", "/api/scans", admin, body), 400)["message"]
    assert_error(call(server, "POST", f"/api/scans/{scan_id}/stop", user), 403)
    assert_error(call(server, "GET", "/api/scans/nope-nope/status", user), 404, "Scan not found")


def test_a_user_scan_is_its_owners_only(server: ServerProcess, admin: str, scan_id: str) -> None:
    owner, other = uid("owner"), uid("other")
    symbol = sym()
    publish(server, price(symbol, 5))
    condition = {"kind": "price_below", "threshold": 10}
    define(
        server, admin, scanId=scan_id, symbols=[symbol], condition=condition, visibility="user", user=owner
    )
    with open_stream(server, f"scans/{scan_id}", server.token(owner)) as stream:
        read_until_type(stream, "scan:result", lambda d: d["symbol"] == symbol, timeout=10)
    assert_error(call(server, "GET", f"/api/scans/{scan_id}/status", server.token(other)), 403)
    response = call(server, "GET", f"/api/stream/scans/{scan_id}/events", server.token(other))
    assert_error(response, 403)
    listed = call(server, "GET", "/api/scans", server.token(other)).json()["scans"]
    assert scan_id not in [s["scanId"] for s in listed]


def test_on_demand_runs_are_queued_up_to_the_bound(server: ServerProcess, admin: str, scan_id: str) -> None:
    define(server, admin, scanId=scan_id, symbols=[sym()], condition={"kind": "price_above", "threshold": 1})
    call(server, "POST", f"/api/scans/{scan_id}/stop", admin)
    user = server.token(uid("user"))
    answers = [call(server, "POST", f"/api/scans/{scan_id}/run", user) for _ in range(150)]
    codes = [r.status_code for r in answers]
    assert codes[0] == 202 and answers[0].json()["queued"] >= 1
    refused = [r for r in answers if r.status_code == 429]
    assert refused and set(codes) == {202, 429}, codes
    assert_error(refused[0], 429)
    assert int(refused[0].headers["retry-after"]) >= 1
    # The runner works the queue off, one cycle at a time, though the scan is stopped.
    first = call(server, "GET", f"/api/scans/{scan_id}/status", admin).json()
    time.sleep(1.0)
    later = call(server, "GET", f"/api/scans/{scan_id}/status", admin).json()
    assert later["state"] == "stopped" and later["queued"] < first["queued"] <= 100
    assert later["cycles"] > first["cycles"]
