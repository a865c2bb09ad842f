"""Round-trip times over tickwire's WebSocket: protocol ping frames and the `ping` command.

    .venv/bin/python bench/ping_latency.py                    # 100 connections, no publish load
    .venv/bin/python bench/ping_latency.py --rate 20          # + 20 price updates/s read by all
    .venv/bin/python bench/ping_latency.py --conns 500 --samples 2000 --json

A fresh `tickwire serve` (a snapshot of src/, TICKWIRE_THROTTLE_MS=0, connect rate off) runs on
CPU 0 and this process (the connections, the publisher, the probes) on CPU 1. Every connection
subscribes to `prices` (`?streams=prices`) and reads everything it is sent. With `--rate R` a
publisher POSTs R `price:update` per second, each fanned out to every connection. The probe then
takes `--samples` round trips of each kind, one at a time, alternating the kinds and walking
round the connections, `--interval-ms` apart:

- `ws-ping`: a WebSocket ping frame to its pong. The server's protocol layer answers it in the
  event loop without going through the application: the floor of what the loop adds.
- `cmd-ping`: SPEC 6's `{"type":"ping","ts":N}` to its `{"type":"pong","ts":N}`. It goes through
  the session's command parsing, rate limit and the connection's writer (behind any queued
  events): what an application-level heartbeat sees.

Times are from just before the send to the moment the reader task saw the answer; the client's
own scheduling is in them (the same for both kinds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from churn import pin_self
from procs import free_port, tickwire_env, tickwire_server, venv_python
from scenarios import BenchError, Setup
from source import DEFAULT_SRC, snapshot_src, source_id, src_digest
from websockets.asyncio.client import ClientConnection, connect

KINDS = ("ws-ping", "cmd-ping")


# -- the server (shared with binary_frames.py) ---------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """A running server and what a client needs to reach it."""

    port: int
    secret: str
    source: str  # which code runs (source.source_id)
    placement: str  # where the server and the load run

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/stream/ws"

    def token(self, user: str, roles: tuple[str, ...] = ()) -> str:
        from tickwire.server.auth import issue_token  # the snapshot's, on sys.path

        return issue_token(self.secret, user, roles, 3600)


@contextlib.contextmanager
def serving(extra_env: dict[str, str] | None = None) -> Iterator[Served]:
    """A fresh pinned `tickwire serve` of a snapshot of src/, so that edits made during the run
    do not mix into it; this process moves to the client CPU. Stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="tickwire-bench-") as tmp:
        src = snapshot_src(DEFAULT_SRC, Path(tmp))
        sys.path.insert(0, str(src))
        port, secret = free_port(), secrets.token_hex(32)
        env = tickwire_env(src, port, secret)
        env.update(extra_env or {})
        server = tickwire_server(Setup(venv_python(), src, 0), env, port)
        try:
            server.wait_http_ready("/readyz")
            yield Served(port, secret, source_id(DEFAULT_SRC, src_digest(src)), pin_self(0))
            server.check_alive()
        finally:
            server.stop()


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max of `values` (nearest rank), in the values' unit."""
    ordered = sorted(values) or [float("nan")]

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": ordered[-1]}


# -- the connections -------------------------------------------------------------------------------


@dataclass
class Probe:
    """One connection: its reader task counts events and resolves the pongs waited for."""

    ws: ClientConnection
    events: int = 0
    waiting: dict[int, asyncio.Future[float]] = field(default_factory=dict)

    async def read(self) -> None:
        async for message in self.ws:
            msg = orjson.loads(message)
            if msg.get("type") == "event":
                self.events += 1
            elif msg.get("type") == "pong":
                future = self.waiting.pop(msg.get("ts"), None)
                if future is not None and not future.done():
                    future.set_result(time.perf_counter())

    async def ws_ping(self) -> float:
        started = time.perf_counter()
        waiter = await self.ws.ping()
        await waiter
        return time.perf_counter() - started

    async def cmd_ping(self, n: int) -> float:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[n] = future
        started = time.perf_counter()
        await self.ws.send(orjson.dumps({"type": "ping", "ts": n}).decode())
        return await future - started


async def open_probes(served: Served, conns: int) -> list[Probe]:
    """`conns` connections subscribed to `prices`, opened 50 at a time."""
    probes: list[Probe] = []
    url = served.ws + "?streams=prices"
    for start in range(0, conns, 50):
        batch = [
            connect(url, compression=None, ping_interval=None, max_queue=None)
            for _ in range(start, min(conns, start + 50))
        ]
        probes += [Probe(ws) for ws in await asyncio.gather(*batch)]
    return probes


async def publish(served: Served, rate: float, stop: asyncio.Event) -> int:
    """`rate` price updates per second on `prices` until `stop`; how many were accepted."""
    headers = {"Authorization": f"Bearer {served.token('bench-feed', ('publisher',))}"}
    sent = 0
    async with httpx.AsyncClient(base_url=served.http, headers=headers, timeout=10) as http:
        started = time.monotonic()
        while not stop.is_set():
            price = 100.0 + (sent % 200) * 0.01
            body = {"type": "price:update", "data": {"symbol": "BENCH", "price": price, "bid": price - 0.01}}
            response = await http.post("/api/publish", json=body)
            sent += response.status_code == 200
            delay = started + (sent + 1) / rate - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, delay))
    return sent


# -- the measurement -------------------------------------------------------------------------------


async def sample(probes: list[Probe], samples: int, interval_s: float) -> dict[str, list[float]]:
    """`samples` round trips of each kind, alternating, one connection after the other."""
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for n in range(samples):
        probe = probes[n % len(probes)]
        times["ws-ping"].append(await asyncio.wait_for(probe.ws_ping(), 10))
        await asyncio.sleep(interval_s / 2)
        times["cmd-ping"].append(await asyncio.wait_for(probe.cmd_ping(n), 10))
        await asyncio.sleep(interval_s / 2)
    return times


async def measure(served: Served, args: argparse.Namespace) -> dict[str, object]:
    probes = await open_probes(served, args.conns)
    readers = [asyncio.create_task(p.read()) for p in probes]
    stop = asyncio.Event()
    feed = asyncio.create_task(publish(served, args.rate, stop)) if args.rate > 0 else None
    try:
        await asyncio.sleep(args.warmup)
        started = time.monotonic()
        times = await sample(probes, args.samples, args.interval_ms / 1000)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        published = await feed if feed is not None else 0
        for probe in probes:
            await probe.ws.close()
        await asyncio.gather(*readers, return_exceptions=True)
    return {
        "conns": args.conns,
        "rate": args.rate,
        "samples": args.samples,
        "seconds": round(elapsed, 1),
        "published": published,
        "events_received": sum(p.events for p in probes),
        "kinds": {
            kind: {k: round(v * 1000, 3) for k, v in percentiles(times[kind]).items()} for kind in KINDS
        },
    }


def table(result: dict[str, object]) -> str:
    kinds = result["kinds"]
    assert isinstance(kinds, dict)
    lines = ["| kind | samples | p50 ms | p90 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for kind, q in kinds.items():
        lines.append(
            f"| {kind} | {result['samples']} | {q['p50']:.3f} | {q['p90']:.3f} | {q['p99']:.3f} | {q['max']:.3f} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conns", type=int, default=100, help="WebSocket connections [100]")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="price updates/s read by every connection [0]"
    )
    parser.add_argument("--samples", type=int, default=1000, help="round trips of each kind [1000]")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="pause between two samples [10]")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds between connecting and sampling [2]"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.conns < 1 or args.samples < 1:
        parser.error("--conns and --samples must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    try:
        with serving() as served:
            result = asyncio.run(measure(served, args))
    except BenchError as exc:
        print(f"ping_latency: {exc}", file=sys.stderr)
        return 2
    result.update({"source": served.source, "placement": served.placement})
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.conns} WebSocket connections, {args.rate:g} price updates/s to each, "
        f"{result['seconds']} s of sampling ({served.source}; {served.placement})\n"
    )
    print(table(result))
    print(f"\npublished {result['published']}, events received {result['events_received']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
