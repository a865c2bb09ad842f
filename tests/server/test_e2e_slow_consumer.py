"""End to end: a client that never reads cannot grow the server or slow others (SPEC 4)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from support.e2e import alert, http, open_stream, publish, types_of, uid, wait_until
from support.e2e_client import SSEClient
from support.servers import ServerProcess
from tickwire.config import DRIVERS

TOTAL_EVENTS = 2000
PAYLOAD = "x" * 2000  # ~2 KB per event, ~4 MB in all


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _user_clients(proc: ServerProcess, admin: str, user: str) -> int:
    body = http.get(
        proc.url + "/api/stream/metrics", headers={"Authorization": f"Bearer {admin}"}, timeout=5
    ).json()
    return next((c["clientCount"] for c in body["clientsPerUser"] if c["userId"] == user), 0)


def _flood_beside_a_stuck_client(batch_size: int, outbox_bytes: int, driver: str) -> list[str]:
    """Publish ~4 MB of alerts to a user with one connection that never reads and one
    that reads normally; the list of SPEC properties that did not hold."""
    proc = ServerProcess(
        {
            "TICKWIRE_OUTBOX_BYTES": str(outbox_bytes),
            "TICKWIRE_THROTTLE_MS": "0",
            "TICKWIRE_KEEPALIVE_S": "1",
            "TICKWIRE_DRIVER": driver,
        }
    )
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    problems: list[str] = []
    try:
        proc.start()
        assert proc.proc is not None
        pid = proc.proc.pid
        user = uid("slow")
        token = proc.token(user)
        admin = proc.token(uid("root"), "admin")

        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stuck.connect(("127.0.0.1", proc.port))
        stuck.sendall(
            f"GET /api/stream/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        with open_stream(proc, "alerts", token, timeout=10) as reader:
            assert wait_until(lambda: _user_clients(proc, admin, user) == 2), "stuck client not registered"
            rss_before = _rss_mb(pid)
            rss_peak = rss_before
            published: list[str] = []
            errors: list[BaseException] = []
            total = TOTAL_EVENTS

            def publish_all() -> None:
                nonlocal rss_peak
                try:
                    for start in range(0, total, batch_size):
                        items: list[dict[str, Any]] = [
                            alert(user, n, note=PAYLOAD) for n in range(start, start + batch_size)
                        ]
                        published.extend(publish(proc, *items))
                        rss_peak = max(rss_peak, _rss_mb(pid))
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)

            publisher = threading.Thread(target=publish_all, daemon=True)
            publisher.start()
            reader.read_until(1 + total, timeout=60)
            publisher.join(30)
            assert not errors, errors
            assert len(published) == total

            got = [e.id for e in reader.events[1:] if e.event == "alert:new"]
            if got != published:
                problems.append(
                    f"normal reader got {len(got)} of {total} events (closed by server: {reader.closed}; "
                    f"resets: {len(reader.of_type('stream:reset'))}; in order so far: {got == published[: len(got)]})"
                )
            rss_peak = max(rss_peak, _rss_mb(pid))
            if rss_peak - rss_before >= 60:
                problems.append(f"server RSS grew from {rss_before:.1f} MB to {rss_peak:.1f} MB")

            metrics = http.get(proc.url + "/api/stream/metrics", timeout=5).json()
            if metrics["slowConsumerCloses"] < 1:
                problems.append(f"slowConsumerCloses is {metrics['slowConsumerCloses']}")
            text = http.get(proc.url + "/metrics", timeout=5).text
            if "tickwire_slow_consumer_closes_total" not in text:
                problems.append("no tickwire_slow_consumer_closes_total in /metrics")
            # The stuck connection is gone from the server's books while it still has not read a byte.
            expected = 1 if not reader.closed else 0
            if not wait_until(lambda: _user_clients(proc, admin, user) == expected, timeout=5):
                problems.append(
                    f"the server still holds the stuck connection: {_user_clients(proc, admin, user)} "
                    f"connections registered for the user, expected {expected}"
                )
    finally:
        stuck.close()
        proc.stop()
    return problems


@pytest.mark.parametrize("driver", DRIVERS)
def test_stuck_client_is_closed_and_memory_stays_bounded_small_batches(driver: str) -> None:
    """Batches of 20 x 2 KB (40 KB, under the 64 KB outbox bound)."""
    problems = _flood_beside_a_stuck_client(20, 65536, driver)
    assert not problems, problems


@pytest.mark.parametrize("driver", DRIVERS)
def test_normal_reader_keeps_up_with_large_batches_beside_a_stuck_client(driver: str) -> None:
    """Batches of 200 x 2 KB (400 KB at once) with the default 1 MiB outbox bound: a burst
    that fits the bound passes to a reading client; the stuck one still overflows."""
    problems = _flood_beside_a_stuck_client(200, 1_048_576, driver)
    assert not problems, problems


@pytest.mark.parametrize("driver", DRIVERS)
def test_resume_replay_larger_than_the_outbox_bound_is_delivered(driver: str) -> None:
    """A replay (or buffered backlog) bigger than the outbox bound is not a slow consumer:
    the client has not had a chance to read yet."""
    proc = ServerProcess(
        {"TICKWIRE_OUTBOX_BYTES": "65536", "TICKWIRE_THROTTLE_MS": "0", "TICKWIRE_DRIVER": driver}
    )
    try:
        proc.start()
        user = uid("replay")
        token = proc.token(user)
        ids: list[str] = []
        for start in range(0, 60, 20):  # 60 x 2 KB = ~120 KB of history, under the 100-event buffer
            ids += publish(proc, *(alert(user, n, note=PAYLOAD) for n in range(start, start + 20)))
        for headers, expected in (({"Last-Event-ID": ids[0]}, ids[1:]), ({}, ids)):
            with SSEClient(proc.url, "/api/stream/alerts", token=token, headers=headers) as stream:
                assert stream.status == 200
                stream.read_until(1 + len(expected), timeout=10)
                got = [e.id for e in stream.events if e.event == "alert:new"]
                assert types_of(stream.events[:1]) == ["connected"], (
                    headers,
                    stream.events[:1],
                    stream.closed,
                )
                assert got == expected, (
                    headers,
                    len(got),
                    len(expected),
                    "closed" if stream.closed else "open",
                )
    finally:
        proc.stop()
