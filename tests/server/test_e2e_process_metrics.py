"""End to end: operational metrics on a real server's `/metrics`: the process (memory, CPU,
file descriptors), uptime, and the gauges of what the node holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.e2e import http, open_stream, uid
from support.servers import ServerProcess

NODE_GAUGES = {
    "tickwire_uptime_seconds": "Seconds since this node's metrics were created (with the node)",
    "tickwire_tracked_users": "Users whose history, keyed state or portfolio this node holds",
    "tickwire_buffered_events": "Log events held in history by this node's broker",
    "tickwire_outbox_bytes": "Bytes queued in outboxes",
}


def _scrape(server: ServerProcess) -> tuple[dict[str, float], dict[str, tuple[str, str]]]:
    response = http.get(server.url + "/metrics")
    assert response.status_code == 200
    families = list(text_string_to_metric_families(response.text))
    samples = {s.name: s.value for f in families for s in f.samples if not s.labels}
    return samples, {f.name: (f.type, f.documentation) for f in families}


def test_process_health_is_exported(server: ServerProcess) -> None:
    samples, families = _scrape(server)
    assert families["process_resident_memory_bytes"][0] == "gauge"
    assert families["process_cpu_seconds"][0] == "counter"
    assert families["process_open_fds"][0] == "gauge"
    assert samples["process_resident_memory_bytes"] > 1_000_000  # a Python server holds megabytes
    assert samples["process_cpu_seconds_total"] > 0
    assert 0 < samples["process_open_fds"] <= samples["process_max_fds"]
    assert samples["process_start_time_seconds"] > 1_600_000_000


@pytest.fixture(scope="module")
def own_server() -> Iterator[ServerProcess]:
    """A server no other test talks to, so its descriptor count moves only with this test."""
    proc = ServerProcess()
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


def test_open_connections_show_in_file_descriptors(own_server: ServerProcess) -> None:
    token = own_server.token(uid("fds"))
    before, _ = _scrape(own_server)
    streams = [open_stream(own_server, "alerts", token) for _ in range(8)]
    try:
        during, _ = _scrape(own_server)
    finally:
        for stream in streams:
            stream.close()
    assert during["process_open_fds"] >= before["process_open_fds"] + 8  # one socket each


def test_node_gauges_are_exported(server: ServerProcess) -> None:
    first, families = _scrape(server)
    for name, help_text in NODE_GAUGES.items():
        assert families[name] == ("gauge", help_text), name
        assert first[name] >= 0, name
        assert first[name] == int(first[name]) or name == "tickwire_uptime_seconds", name
    assert first["tickwire_uptime_seconds"] > 0
    second, _ = _scrape(server)
    assert second["tickwire_uptime_seconds"] >= first["tickwire_uptime_seconds"]
