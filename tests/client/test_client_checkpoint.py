"""Checkpoints (client/checkpoint.py): consumed positions saved atomically to a file or Redis
and restored at the start; a consumer killed with SIGKILL in the middle of a stream goes on
after a restart with every event exactly once across both runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from support.redis_server import RedisServer, require_redis_server
from support.servers import ServerProcess
from tickwire.client import Client, ClientEvent, FileCheckpoint, MemoryCheckpoint, RedisCheckpoint
from tickwire.client.checkpoint import Checkpointer

TOTAL = 300
BLOCK_AT = 120


@pytest.fixture(scope="module")
def deep_server() -> Iterator[ServerProcess]:
    """History deep enough that a restarted consumer resumes instead of being reset."""
    proc = ServerProcess({"TICKWIRE_USER_BUFFER": "5000", "TICKWIRE_KEEPALIVE_S": "1"}).start()
    yield proc
    proc.stop()


# -- stores ---------------------------------------------------------------------------------------


def test_a_file_checkpoint_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "bot.ckpt"
    store = FileCheckpoint(path)

    async def main() -> None:
        assert await store.load("bot") == {}
        await store.save("bot", {"orders": "1700000000000-a", "alerts": "1700000000000-b"})
        await store.save("bot", {"orders": "1700000000001-c"})
        assert await store.load("bot") == {"orders": "1700000000001-c"}
        with pytest.raises(ValueError, match="client 'bot', not 'other'"):
            await store.load("other")

    asyncio.run(main())
    document = orjson.loads(path.read_bytes())
    assert document["version"] == 1 and document["client"] == "bot"
    assert [p.name for p in path.parent.iterdir()] == ["bot.ckpt"]  # no temporary file left


def test_a_redis_checkpoint_is_one_key_per_client() -> None:
    redis = RedisServer(require_redis_server()).start()
    try:

        async def main() -> None:
            store = RedisCheckpoint(redis.url, key_prefix="t:ckpt:")
            try:
                assert await store.load("bot") == {}
                await store.save("bot", {"alerts": "1700000000000-x"})
                await store.save("bot2", {"alerts": "1700000000000-y"})
                assert await store.load("bot") == {"alerts": "1700000000000-x"}
                raw = await store.redis.get("t:ckpt:bot2")
                assert orjson.loads(raw)["positions"] == {"alerts": "1700000000000-y"}
            finally:
                await store.aclose()

        asyncio.run(main())
    finally:
        redis.close()


def test_saves_come_every_n_events_or_after_t_seconds() -> None:
    positions = {"alerts": "1700000000000-a"}
    store = MemoryCheckpoint(every=3, interval_s=0.2)

    async def main() -> None:
        saver = Checkpointer(store, "bot", lambda: positions)
        saver.start()
        saver.consumed()
        saver.consumed()
        await asyncio.sleep(0.05)
        assert store.saves == 0  # 2 of 3, before the interval
        await asyncio.sleep(0.3)
        assert store.saves == 1  # the interval passed
        positions["alerts"] = "1700000000000-b"
        for _ in range(3):
            saver.consumed()
        await asyncio.sleep(0.02)
        assert store.saves == 2 and store.saved["bot"] == {"alerts": "1700000000000-b"}
        await saver.close()
        assert store.saves == 2  # nothing changed since

    asyncio.run(main())


# -- a client with a checkpoint ---------------------------------------------------------------------


def test_a_client_restores_saves_on_close_and_marks_replays(server: ServerProcess, kit: Any) -> None:
    user = kit.uid("ckpt")
    store = MemoryCheckpoint(every=1000, interval_s=60)  # only the save at close

    async def consume(count: int) -> list[ClientEvent]:
        out: list[ClientEvent] = []
        client = Client(
            server.url, ["alerts"], token=server.token(user), checkpoint=store, name="bot", **kit.FAST
        )
        async with client, asyncio.timeout(15):
            async for event in client.events():
                if event.type == "alert:new":
                    out.append(event)
                    if len(out) == count:
                        break
        return out

    async def main() -> None:
        async with kit.Publisher(server) as publish:
            await publish(*(kit.alert(user, n) for n in range(10)))
            first = await consume(4)
            assert [e.data.alert_id for e in first] == ["a0", "a1", "a2", "a3"]
            assert store.saved["bot"]["alerts"] == first[-1].id  # saved when it closed
            second = await consume(6)
            assert [e.data.alert_id for e in second] == [f"a{n}" for n in range(4, 10)]
            assert all(e.replayed for e in second)  # a resume's replay

    asyncio.run(main())


CONSUMER = textwrap.dedent(
    """
    import asyncio, os, sys
    import orjson
    from tickwire.client import Client, FileCheckpoint

    url, token, path, out, block_at = sys.argv[1:]

    async def main():
        done = open(out, "ab")

        async def handle(event):
            if event.type != "alert:new":
                return
            if event.data.alert_id == f"a{block_at}" and os.environ.get("BLOCK"):
                print("blocked", flush=True)
                await asyncio.sleep(3600)  # killed in here: this handler never returns
            await asyncio.sleep(0.001)  # some work
            done.write(orjson.dumps({"id": event.data.alert_id, "replayed": event.replayed}) + b"\\n")
            done.flush()

        store = FileCheckpoint(path, every=25, interval_s=0.2)
        client = Client(url, token=token, checkpoint=store, name="killed-consumer")
        client.subscribe("alerts", handler=handle)
        async with client:
            await client.ready()
            print("ready", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)


def start_consumer(tmp_path: Path, server: ServerProcess, token: str, block: bool) -> subprocess.Popen[str]:
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    env = {**os.environ, "BLOCK": "1" if block else ""}
    args = [str(tmp_path / "ckpt.json"), str(tmp_path / "done.jsonl"), str(BLOCK_AT)]
    return subprocess.Popen(
        [sys.executable, str(script), server.url, token, *args], stdout=subprocess.PIPE, text=True, env=env
    )


def wait_line(proc: subprocess.Popen[str], expected: str, timeout: float = 20) -> None:
    assert proc.stdout is not None
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(proc.stdout.readline() if proc.stdout else ""))
    reader.start()
    reader.join(timeout)
    assert found and found[0].strip() == expected, f"expected {expected!r}, got {found}"


def test_a_consumer_killed_mid_stream_resumes_exactly_once(
    deep_server: ServerProcess, kit: Any, tmp_path: Path
) -> None:
    """SIGKILL lands while a handler is running (its event never returned) after the
    checkpoint caught up with what had returned; the publisher keeps publishing meanwhile.
    Counting what the first run's handler returned plus the second run, every alert is
    there exactly once, in order, and the second run starts with the replay."""
    user = kit.uid("killed")
    token = deep_server.token(user)
    first = start_consumer(tmp_path, deep_server, token, block=True)
    second: subprocess.Popen[str] | None = None
    try:
        wait_line(first, "ready")
        items = [kit.alert(user, n) for n in range(TOTAL)]
        deep_server.publish(*items[: BLOCK_AT + 30])  # past the blocking one: mid-stream
        wait_line(first, "blocked")
        time.sleep(0.6)  # > interval_s: the checkpoint holds everything that returned
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        deep_server.publish(*items[BLOCK_AT + 30 :])  # published while nobody consumes
        returned = (tmp_path / "done.jsonl").read_bytes().count(b"\n")
        assert returned == BLOCK_AT
        second = start_consumer(tmp_path, deep_server, token, block=False)
        wait_line(second, "ready")
        deadline = time.monotonic() + 30
        while (tmp_path / "done.jsonl").read_bytes().count(b"\n") < TOTAL and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # anything extra (a duplicate) would come now
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc is not None and proc.stdout is not None:
                proc.stdout.close()
    lines = [orjson.loads(line) for line in (tmp_path / "done.jsonl").read_bytes().splitlines()]
    assert [x["id"] for x in lines] == [f"a{n}" for n in range(TOTAL)]  # each once, in order
    assert not any(x["replayed"] for x in lines[:BLOCK_AT])
    assert lines[BLOCK_AT]["replayed"]  # the restart resumed from the checkpoint: a replay
    saved = orjson.loads((tmp_path / "ckpt.json").read_bytes())
    assert saved["client"] == "killed-consumer" and saved["positions"]["alerts"]
