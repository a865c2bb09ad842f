"""`tickwire tail` over each transport, `tickwire record` and `tickwire serve --replay`,
as subprocesses against real servers."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from support.servers import ServerProcess


class Command:
    """A `tickwire` subprocess whose stdout lines are read as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tickwire", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_json(self, timeout: float = 15) -> Any:
        line = self.lines.get(timeout=timeout)
        assert line is not None, self.finish()
        return orjson.loads(line)

    def finish(self, timeout: float = 30) -> tuple[int, list[Any], str]:
        code = self.proc.wait(timeout)
        rest = []
        while (line := self.lines.get(timeout=5)) is not None:
            rest.append(orjson.loads(line))
        assert self.proc.stderr is not None and self.proc.stdout is not None
        stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        self.proc.stdout.close()
        return code, rest, stderr


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
def test_tail_over_each_transport(server: ServerProcess, kit: Any, transport: str) -> None:
    user = kit.uid()
    token = server.token(user)
    env = {"TICKWIRE_TOKEN": token} if transport == "ws" else {}  # the token may come from the env
    args = [
        "tail",
        f"{server.url}/api/stream/alerts",
        "--transport",
        transport,
        "--max-events",
        "4",
        "--json",
    ]
    if transport != "ws":
        args += ["--token", token]
    tail = Command(*args, env=env)
    first = tail.next_json()
    assert first["event"] == "connected" and first["stream"] == "alerts"
    ids = server.publish(*(kit.alert(user, n) for n in range(3)))
    code, rest, stderr = tail.finish()
    assert code == 0, stderr
    assert [(e["event"], e["id"], e["data"]["alertId"]) for e in rest] == [
        ("alert:new", i, f"a{n}") for n, i in enumerate(ids)
    ]
    assert "4 events" in stderr
    assert "[connected]" in stderr  # state changes are reported


def test_tail_refused_stream_fails_with_the_server_message(server: ServerProcess) -> None:
    tail = Command("tail", f"{server.url}/api/stream/orders", "--transport", "ws", "--max-events", "1")
    code, _, stderr = tail.finish()
    assert code == 1
    assert "unauthorized" in stderr


def test_tail_duration_bounds_a_quiet_stream(server: ServerProcess) -> None:
    tail = Command("tail", f"{server.url}/api/stream/agents", "--duration", "0.5", "--json")
    code, lines, stderr = tail.finish()
    assert code == 0, stderr
    assert lines[0]["event"] == "connected"


def test_record_then_replay_round_trip(server: ServerProcess, kit: Any, tmp_path: Path) -> None:
    user = kit.uid()
    symbol = kit.sym()
    server.publish(kit.order(user, "o0", symbol=symbol))  # in the snapshot
    recording = tmp_path / "orders.jsonl"
    record = Command(
        "record",
        f"{server.url}/api/stream/orders",
        "--out",
        str(recording),
        "--token",
        server.token(user),
        "--max-events",
        "4",
    )
    # Wait for the recorder's snapshot to be on disk before publishing.
    deadline_lines: list[bytes] = []
    for _ in range(300):
        deadline_lines = recording.read_bytes().splitlines() if recording.exists() else []
        if deadline_lines or record.proc.poll() is not None:
            break
        threading.Event().wait(0.05)
    if not deadline_lines:
        record.proc.kill()
        raise AssertionError(f"the recorder wrote nothing: {record.finish()}")
    ids = server.publish(*(kit.order(user, f"o{n}", symbol=symbol) for n in (1, 2, 3)))
    code, _, stderr = record.finish()
    assert code == 0, stderr
    recorded = [orjson.loads(line) for line in recording.read_bytes().splitlines()]
    assert len(recorded) == 4
    assert recorded[0]["data"]["snapshot"] is True
    assert [r["id"] for r in recorded[1:]] == ids

    replay = ServerProcess(args=("--replay", str(recording))).start()
    try:
        for transport in ("sse", "ws", "poll"):
            tail = Command(
                "tail",
                f"{replay.url}/api/stream/orders",
                "--transport",
                transport,
                "--max-events",
                "5",
                "--json",
            )
            code, lines, stderr = tail.finish()
            assert code == 0, (transport, stderr)
            assert lines[0]["event"] == "connected"
            assert [{k: e[k] for k in ("stream", "event", "id", "data")} for e in lines[1:]] == recorded, (
                transport
            )
        # Resume after the second event: the rest, with the same ids.
        tail = Command(
            "tail",
            f"{replay.url}/api/stream/orders",
            "--last-event-id",
            ids[0],
            "--max-events",
            "3",
            "--json",
        )
        code, lines, stderr = tail.finish()
        assert code == 0, stderr
        assert [e["id"] for e in lines[1:]] == ids[1:]
    finally:
        replay.stop()


def test_stream_urls_split_into_base_prefix_and_stream() -> None:
    import click

    from tickwire.cli_stream import split_stream_url

    assert split_stream_url("http://h:8080/api/stream/orders") == ("http://h:8080", "/api/stream", "orders")
    assert split_stream_url("https://h/api/stream/prices?symbols=A,B") == (
        "https://h",
        "/api/stream",
        "prices?symbols=A,B",
    )
    assert split_stream_url("http://h:1/x/api/stream/strategies/s1/") == (
        "http://h:1",
        "/x/api/stream",
        "strategies/s1",
    )
    assert split_stream_url("http://h:1/custom/trading?userId=u1") == (
        "http://h:1",
        "/custom",
        "trading?userId=u1",
    )
    with pytest.raises(click.BadParameter):
        split_stream_url("ftp://h/api/stream/orders")
