"""End to end: memory stays bounded however many distinct users a server sees (SPEC 4,
TICKWIRE_BUFFER_TTL_S, TICKWIRE_STATE_TTL_S): two waves of 200,000 users each publish an
order and go idle; the second wave reuses what the first one freed."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.e2e import post_publish, uid
from support.servers import ServerProcess

USERS = 200_000
BATCH = 1000


@pytest.fixture
def short_lived() -> Iterator[ServerProcess]:
    proc = ServerProcess(
        {"TICKWIRE_BUFFER_TTL_S": "1", "TICKWIRE_STATE_TTL_S": "30", "TICKWIRE_THROTTLE_MS": "0"}
    ).start()
    yield proc
    proc.stop()


def rss_kb(server: ServerProcess) -> int:
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def gauge(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} is not on /metrics"
    return float(match.group(1))


def wave(server: ServerProcess, prefix: str) -> None:
    for start in range(0, USERS, BATCH):
        body = [
            {
                "type": "order:update",
                "user": f"{prefix}-{n}",
                "data": {"orderId": "o1", "symbol": "AAPL", "side": "buy", "qty": 1, "status": "new"},
            }
            for n in range(start, start + BATCH)
        ]
        response = post_publish(server, body)
        assert response.status_code == 200, response.text


def wait_forgotten(server: ServerProcess, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while gauge(server, "tickwire_tracked_users") > 0:
        assert time.monotonic() < deadline, "idle users were not forgotten"
        time.sleep(0.5)


@pytest.mark.timeout(360)  # two waves of 200,000 users and two state TTLs: slow on a loaded machine
def test_memory_is_reused_across_waves_of_distinct_users(short_lived: ServerProcess) -> None:
    server = short_lived
    wave(server, uid("first"))
    peak = rss_kb(server)
    assert gauge(server, "tickwire_tracked_users") == USERS
    assert gauge(server, "tickwire_buffered_events") > 0
    wait_forgotten(server)
    assert gauge(server, "tickwire_buffered_events") == 0
    wave(server, uid("second"))
    second = rss_kb(server)
    assert second <= peak * 1.15, f"RSS grew from {peak} kB to {second} kB"
    wait_forgotten(server)
