"""End to end: JSON metrics (SPEC section 8), Prometheus text, health and readiness."""

from __future__ import annotations

import re
from typing import Any

from support.e2e import ISO_RE, alert, get, http, open_stream, poll, publish, read_until_type, uid, wait_until
from support.servers import ServerProcess

PROMETHEUS_NAMES = [
    "tickwire_connections",
    "tickwire_events_published_total",
    "tickwire_events_delivered_total",
    "tickwire_events_dropped_total",
    "tickwire_replays_total",
    "tickwire_resets_total",
    "tickwire_outbox_bytes",
    "tickwire_delivery_latency_seconds_bucket",
    "tickwire_delivery_latency_seconds_count",
    "tickwire_delivery_latency_seconds_sum",
]


def _metrics(server: ServerProcess, token: str | None = None) -> dict[str, Any]:
    response = get(server, "/api/stream/metrics", token)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert ISO_RE.match(body["timestamp"]), body
    assert isinstance(body["totalClients"], int)
    assert isinstance(body["totalUsers"], int)
    return body


def test_metrics_json_shape_and_per_user_detail_only_for_admins(server: ServerProcess) -> None:
    user = uid("met")
    token = server.token(user)
    with (
        open_stream(server, "alerts", token),
        open_stream(server, "orders", token, initial=2),
        open_stream(server, "prices", initial=2),
    ):
        anonymous = _metrics(server)
        assert "clientsPerUser" not in anonymous
        assert anonymous["totalClients"] >= 3
        assert anonymous["totalUsers"] >= 1
        assert "clientsPerUser" not in _metrics(server, token)
        assert "clientsPerUser" not in _metrics(server, server.token(uid("p"), "publisher"))
        admin = _metrics(server, server.token(uid("root"), "admin"))
        per_user = admin["clientsPerUser"]
        assert isinstance(per_user, list)
        for entry in per_user:
            assert set(entry) == {"userId", "clientCount"}
        assert {"userId": user, "clientCount": 2} in per_user
        assert admin["totalUsers"] == len(per_user)
        assert admin["totalClients"] >= sum(e["clientCount"] for e in per_user) + 1  # + the anonymous one
    admin_token = server.token(uid("root"), "admin")
    assert wait_until(
        lambda: user not in [e["userId"] for e in _metrics(server, admin_token)["clientsPerUser"]]
    ), "closed connections are still counted"


def _value(text: str, name: str, labels: str = "") -> float:
    pattern = (
        re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(\{[^}]*\})?") + r" ([0-9.e+-]+)"
    )
    match = re.search(r"^" + pattern + r"$", text, re.M)
    assert match is not None, (name, labels)
    return float(match.group(match.lastindex or 1))


def test_prometheus_text_has_the_spec_metric_names(server: ServerProcess) -> None:
    user = uid("prom")
    token = server.token(user)
    before = http.get(server.url + "/metrics").text
    published_before = (
        _value(before, "tickwire_events_published_total", 'type="alert:new"')
        if ('tickwire_events_published_total{type="alert:new"}' in before)
        else 0.0
    )
    with open_stream(server, "alerts", token) as stream:
        publish(server, alert(user, 1), alert(user, 2))
        read_until_type(stream, "alert:new", lambda d: d.get("alertId") == "a-2")
        poll(server, "alerts", token, after="garbage")  # a reset
        response = http.get(server.url + "/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        for name in PROMETHEUS_NAMES:
            assert re.search(r"^" + re.escape(name) + r"[{ ]", text, re.M), name
        assert _value(text, "tickwire_connections", 'transport="sse"') >= 1
        assert _value(text, "tickwire_events_published_total", 'type="alert:new"') >= published_before + 2
        assert _value(text, "tickwire_events_delivered_total", 'transport="sse"') >= 2
        assert re.search(r'^tickwire_events_dropped_total\{reason="[a-z_]+"\} ', text, re.M)
        assert re.search(r'^tickwire_delivery_latency_seconds_bucket\{.*le="\+Inf".*\} ', text, re.M)
        assert re.search(r"^# TYPE tickwire_delivery_latency_seconds histogram$", text, re.M)


def test_health_and_readiness(server: ServerProcess) -> None:
    health = http.get(server.url + "/healthz")
    assert health.status_code == 200
    assert health.headers.get("x-correlation-id")
    ready = http.get(server.url + "/readyz")
    assert ready.status_code == 200
