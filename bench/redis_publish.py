"""Publish throughput of the brokers, in process (no HTTP): how many events per second
`Broker.publish` stamps, keeps and fans out, memory vs Redis, by batch size and concurrency.

    .venv/bin/python bench/redis_publish.py              # starts a private redis-server
    .venv/bin/python bench/redis_publish.py --seconds 5  # longer runs

Each case publishes `order:update` events (keyed state merged in Lua, kept in history) to
100 user logs round-robin for --seconds, after a 1 s warm-up, with a sink that counts what
the broker delivers back. For Redis, `publish` returns only once the node's own subscription
delivered the batch (as a node uses it), so one publisher is one round trip plus the echo.
The redis-server is pinned to CPU 1 and this process to CPU 0 when `taskset` exists.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from tickwire.brokers.base import Broker, Publication  # noqa: E402
from tickwire.brokers.memory import MemoryBroker  # noqa: E402
from tickwire.brokers.redis import RedisBroker  # noqa: E402
from tickwire.core.event import Event  # noqa: E402


class CountingSink:
    def __init__(self) -> None:
        self.delivered = 0

    def on_event(self, event: Event) -> None:
        self.delivered += 1

    def on_broadcast(self, type_: str, data: dict[str, Any]) -> None:
        pass

    def on_reset(self, log: str, reason: str) -> None:
        pass

    def on_evict(self, serial: int) -> None:
        pass

    def watched_logs(self) -> set[str]:
        return set()

    def local_connections(self) -> list[tuple[str, int]]:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def batch(n: int, i: int) -> list[Publication]:
    out = []
    for k in range(n):
        user = f"u{(i + k) % 100}"
        data = {
            "orderId": f"o{(i + k) % 1000}",
            "symbol": "AAPL",
            "side": "buy",
            "qty": 10,
            "status": "new",
            "timestamp": "2026-01-01T00:00:00.000Z",
        }
        out.append(Publication("order:update", data, f"user:{user}", state=("orders", data["orderId"])))
    return out


async def measure(broker: Broker, size: int, publishers: int, seconds: float) -> tuple[float, int]:
    sink = CountingSink()
    await broker.start(sink)
    counter = [0]
    stop = [False]

    async def publisher(offset: int) -> None:
        i = offset
        while not stop[0]:
            await broker.publish(batch(size, i), 1_767_000_000_000)
            counter[0] += size
            i += size * publishers
            await asyncio.sleep(0)  # the memory broker never waits: let the clock task run

    tasks = [asyncio.create_task(publisher(p * size)) for p in range(publishers)]
    await asyncio.sleep(1.0)  # warm-up
    start_count, start = counter[0], time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (counter[0] - start_count) / (time.perf_counter() - start)
    stop[0] = True
    await asyncio.gather(*tasks)
    await broker.stop()
    return rate, sink.delivered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed", file=sys.stderr)
        return 1
    pin = shutil.which("taskset") is not None and {0, 1} <= os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {0})
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", workdir]
        redis = subprocess.Popen(
            (["taskset", "-c", "1"] if pin else []) + argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            url = f"redis://127.0.0.1:{port}/0"
            print("| broker | events per batch | concurrent publishers | events/s | batches/s |")
            print("|---|--:|--:|--:|--:|")
            cases = [(1, 1), (1, 8), (10, 1), (100, 1), (100, 4)]
            for name in ("memory", "redis"):
                for size, publishers in cases:
                    broker: Broker = (
                        MemoryBroker()
                        if name == "memory"
                        else RedisBroker(url, prefix=f"bench{size}x{publishers}")
                    )
                    rate, _ = asyncio.run(measure(broker, size, publishers, args.seconds))
                    print(
                        f"| {name} | {size} | {publishers} | {rate:,.0f} | {rate / size:,.0f} |", flush=True
                    )
        finally:
            redis.kill()
            redis.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
