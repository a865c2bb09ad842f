"""Alert rules on the publish path: 10,000 rules (1,000 users x 10) over 500 symbols.

    .venv/bin/python bench/alerts_bench.py                 # both parts
    .venv/bin/python bench/alerts_bench.py --part tick     # in process: the cost of a price tick
    .venv/bin/python bench/alerts_bench.py --part e2e      # a server and 1,000 connected users
    .venv/bin/python bench/alerts_bench.py --part scan     # a scan's on-demand cycles

`tick`: a node in this process (memory broker, system clock) publishes single price ticks
with `node.publish` and times each call: without the alert processors (the baseline), with
10,000 rules on other symbols (an unwatched symbol), and on the watched symbols (20 rules
each: price_above / price_below far away, pct_move, volume_spike; none fires). Then a batch
of 500 ticks (one per symbol).

`e2e`: `tickwire serve` pinned to CPU 0 (this process on CPU 1); the 10,000 rules created over
HTTP; 1,000 users each holding an SSE connection on /api/stream/alerts; a feed of 500
ticks/s over the 500 symbols (no crossing); then probes: one user's probe rule
(`price_above` 100 on a symbol of its own, throttleS 0) is re-armed (99) and crossed (101),
and the time from sending the crossing POST to reading that user's `alert:new` on its
socket is recorded. Also checks that no other connection got an alert.

`scan`: a server with a scan of the 500 symbols run on demand; per cycle, the time from
`POST /api/scans/{id}/run` to reading its first `scan:status` and its new `scan:result`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from tickwire.config import load_settings  # noqa: E402
from tickwire.node import Node  # noqa: E402
from tickwire.pipeline import PublishRequest  # noqa: E402
from tickwire.server.auth import issue_token  # noqa: E402

USERS, RULES_PER_USER, SYMBOLS = 1000, 10, 500


def symbol(i: int) -> str:
    return f"S{i % SYMBOLS:03d}"


def rule_body(user: int, k: int) -> dict[str, Any]:
    """Rule k of a user: 20 per symbol over the 500, of every price kind, none firing."""
    s = symbol(user * RULES_PER_USER + k)
    kind = ("price_above", "price_below", "pct_move", "volume_spike")[k % 4]
    threshold = {"price_above": 1e9, "price_below": 0.001, "pct_move": 50.0, "volume_spike": 1000.0}[kind]
    body: dict[str, Any] = {"kind": kind, "symbol": s, "threshold": threshold}
    if kind in ("pct_move", "volume_spike"):
        body["windowS"] = 60
    return body


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "mean": statistics.fmean(ordered),
        "p50": pick(0.5),
        "p99": pick(0.99),
        "max": ordered[-1],
    }


def row(name: str, stats: dict[str, float], unit: str = "us", scale: float = 1e6, extra: str = "") -> str:
    cells = " | ".join(f"{stats[k] * scale:.1f}" for k in ("mean", "p50", "p99", "max"))
    return f"| {name} | {stats['n']:.0f} | {cells} {unit} | {extra} |"


# -- part 1: in process -----------------------------------------------------------------------------


async def tick_costs(ticks: int) -> list[str]:
    settings = load_settings(env={"TICKWIRE_SECRET": "b" * 32, "TICKWIRE_ALERT_LOG": "0"})
    node = Node(settings)
    await node.start()
    rng = random.Random(7)
    prices = {symbol(i): 100.0 for i in range(SYMBOLS)}
    try:
        for u in range(USERS):
            for k in range(RULES_PER_USER):
                await node.alerting.rules.create(f"u{u}", rule_body(u, k))
        engine = node.alerting.engine
        full = list(node.pipeline.processors)
        gc.collect()
        gc.freeze()  # as `tickwire serve` does (server/gcpolicy.py): the rules are long-lived

        async def measure(names: list[str], with_alerts: bool) -> tuple[dict[str, float], float]:
            node.pipeline.processors = full if with_alerts else [node.positions]
            before = engine.evaluations
            samples = []
            for i in range(ticks):
                s = names[i % len(names)]
                prices[s] = prices.get(s, 100.0) * (1 + rng.uniform(-0.001, 0.001))
                request = PublishRequest(
                    "price:update", {"symbol": s, "price": round(prices[s], 4), "size": 10}
                )
                t0 = time.perf_counter()
                await node.publish([request])
                samples.append(time.perf_counter() - t0)
            return percentiles(samples), (engine.evaluations - before) / ticks

        watched = [symbol(i) for i in range(SYMBOLS)]
        unwatched = [f"U{i:03d}" for i in range(SYMBOLS)]
        await measure(watched, True)  # warm-up: caches, windows
        lines = []
        for name, names, on in (
            ("no alert processors (baseline)", watched, False),
            ("10,000 rules, tick of an unwatched symbol", unwatched, True),
            ("10,000 rules, tick of a watched symbol (20 rules)", watched, True),
        ):
            stats, evaluations = await measure(names, on)
            lines.append(row(name, stats, extra=f"{evaluations:.1f} evaluations/tick"))
        batch = [
            PublishRequest("price:update", {"symbol": s, "price": prices[s], "size": 10}) for s in watched
        ]
        for name, on in (("no alert processors", False), ("10,000 rules", True)):
            node.pipeline.processors = full if on else [node.positions]
            samples = []
            for _ in range(50):
                t0 = time.perf_counter()
                await node.publish(batch)
                samples.append((time.perf_counter() - t0) / len(batch))
            lines.append(row(f"{name}, batches of 500 watched ticks, per tick", percentiles(samples)))
        return lines
    finally:
        await node.stop()


# -- part 2: a server and 1,000 users ---------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection (answers have a Content-Length)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        payload = orjson.dumps(body) if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


class Subscriber:
    """One user's SSE connection (on /api/stream/alerts unless told): when each event of
    `types` arrived."""

    def __init__(
        self, user: str, path: str = "/api/stream/alerts", types: tuple[str, ...] = ("alert:new",)
    ) -> None:
        self.user = user
        self.path = path
        self.types = types
        self.alerts: list[tuple[float, dict[str, Any]]] = []
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    async def run(self, port: int, token: str, ready: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        event = ""
        while line := await reader.readline():
            if line.startswith(b"event: "):
                event = line[7:].strip().decode()
                if event == "connected":
                    ready.set()
            elif line.startswith(b"data: ") and event in self.types:
                at, data = time.perf_counter(), orjson.loads(line[6:])
                self.events.append((at, event, data))
                if event == "alert:new":
                    self.alerts.append((at, data))
                self.arrived.set()


def start_server(port: int, nice: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        TICKWIRE_PORT=str(port),
        TICKWIRE_SECRET=SECRET,
        TICKWIRE_CONNECT_RATE="0",
        TICKWIRE_MAX_CONNS_PER_IP="0",
        TICKWIRE_LOG_LEVEL="warning",
        TICKWIRE_ALERT_LOG="0",
    )
    argv = [
        *(["nice", "-n", str(nice)] if nice else []),
        "taskset",
        "-c",
        "0",
        sys.executable,
        "-m",
        "tickwire",
        "serve",
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


SECRET = secrets.token_hex(32)


async def create_rules(port: int, tokens: list[str], probes: int) -> None:
    async def worker(first: int) -> None:
        http = Http(port)
        for u in range(first, USERS, 20):
            for k in range(RULES_PER_USER):
                body = rule_body(u, k)
                if u < probes and k == 0:  # the probe rule replaces one of the ten
                    body = {"kind": "price_above", "symbol": f"P{u:03d}", "threshold": 100, "throttleS": 0}
                status, answer = await http.request("POST", "/api/alerts/rules", tokens[u], body)
                assert status == 201, answer

    await asyncio.gather(*(worker(i) for i in range(20)))


async def feed(port: int, token: str, rate: int, stop: asyncio.Event) -> float:
    """`rate` non-crossing ticks a second over the 500 symbols, in batches of 10; the rate
    achieved."""
    http = Http(port)
    rng = random.Random(3)
    i = 0
    began = time.perf_counter()
    while not stop.is_set():
        batch = [
            {"type": "price:update", "data": {"symbol": symbol(i + j), "price": round(100 + rng.random(), 3)}}
            for j in range(10)
        ]
        i += 10
        await http.request("POST", "/api/publish", token, batch)
        await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
    return i / (time.perf_counter() - began)


async def e2e(probes: int, rounds: int, rate: int, nice: int) -> list[str]:
    os.sched_setaffinity(0, {1})
    port = random.randint(20000, 40000)
    proc = start_server(port, nice)
    try:
        tokens = [issue_token(SECRET, f"u{u}") for u in range(USERS)]
        publisher = issue_token(SECRET, "feed", ("publisher",))
        t0 = time.perf_counter()
        await create_rules(port, tokens, probes)
        created = time.perf_counter() - t0
        subscribers = [Subscriber(f"u{u}") for u in range(USERS)]
        readies = [asyncio.Event() for _ in subscribers]
        tasks = [asyncio.create_task(s.run(port, tokens[i], readies[i])) for i, s in enumerate(subscribers)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        stop = asyncio.Event()
        feeder = asyncio.create_task(feed(port, publisher, rate, stop))
        http = Http(port)
        latencies = []
        for n in range(rounds):
            user = n % probes
            sub = subscribers[user]
            tick = {"type": "price:update", "data": {"symbol": f"P{user:03d}", "price": 99.0}}
            await http.request("POST", "/api/publish", publisher, tick)
            sub.arrived.clear()
            tick["data"] = {"symbol": f"P{user:03d}", "price": 101.0}
            start = time.perf_counter()
            await http.request("POST", "/api/publish", publisher, tick)
            await asyncio.wait_for(sub.arrived.wait(), 5)
            latencies.append(sub.alerts[-1][0] - start)
            await asyncio.sleep(0.02)
        stop.set()
        achieved = await feeder
        strays = sum(len(s.alerts) for s in subscribers[probes:])
        for task in tasks:
            task.cancel()
        stats = percentiles(latencies)
        return [
            row(f"crossing publish -> alert:new read, {USERS} users connected, {achieved:.0f} ticks/s feed",
                stats, unit="ms", scale=1e3, extra=f"alerts on other users' connections: {strays}"),
            f"(10,000 rules created over HTTP in {created:.1f} s; load average {os.getloadavg()[0]:.1f})",
        ]  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)


# -- part 3: a scan's on-demand cycles --------------------------------------------------------------


async def scan_latency(rounds: int, nice: int) -> list[str]:
    """A scan of the 500 symbols (all match; results deduplicated), stopped so that only
    on-demand cycles run. Per round one symbol's price changes, then `POST .../run`: the time
    from sending it to reading the cycle's first `scan:status`, and its one new `scan:result`."""
    os.sched_setaffinity(0, {1})
    port = random.randint(20000, 40000)
    proc = start_server(port, nice)
    try:
        admin = issue_token(SECRET, "ops", ("admin",))
        publisher = issue_token(SECRET, "feed", ("publisher",))
        viewer = issue_token(SECRET, "viewer")
        http = Http(port)
        ticks = [
            {"type": "price:update", "data": {"symbol": symbol(i), "price": 100.0}} for i in range(SYMBOLS)
        ]
        await http.request("POST", "/api/publish", publisher, ticks)
        body = {"scanId": "bench", "symbols": [symbol(i) for i in range(SYMBOLS)],
                "condition": {"kind": "price_above", "threshold": 0}, "intervalS": 3600}  # fmt: skip
        status, answer = await http.request("POST", "/api/scans", admin, body)
        assert status == 201, answer
        await http.request("POST", "/api/scans/bench/stop", admin)
        sub = Subscriber("viewer", "/api/stream/scans/bench", ("scan:status", "scan:result"))
        ready = asyncio.Event()
        task = asyncio.create_task(sub.run(port, viewer, ready))
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(0.5)  # the first cycle (at creation) is over
        to_status, to_result, durations = [], [], []
        for n in range(rounds):
            changed = symbol(n)
            tick = {"type": "price:update", "data": {"symbol": changed, "price": 101.0 + n}}
            await http.request("POST", "/api/publish", publisher, tick)
            seen = len(sub.events)
            start = time.perf_counter()
            status, answer = await http.request("POST", "/api/scans/bench/run", viewer)
            assert status == 202, answer
            while True:
                sub.arrived.clear()
                new = sub.events[seen:]
                done = [e for e in new if e[1] == "scan:status" and e[2].get("complete")]
                if done:
                    break
                await asyncio.wait_for(sub.arrived.wait(), 5)
            first_status = next(e for e in new if e[1] == "scan:status")
            result = next(e for e in new if e[1] == "scan:result" and e[2]["symbol"] == changed)
            to_status.append(first_status[0] - start)
            to_result.append(result[0] - start)
            durations.append(done[0][2]["durationMs"] / 1000)
            # A scan runs one on-demand cycle per 0.25 s (more wait in its queue), and
            # `scan:status` is a tick (one per TICKWIRE_THROTTLE_MS goes at once): apart by more.
            await asyncio.sleep(0.3)
        task.cancel()
        return [
            row(
                f"POST /run -> first scan:status read ({SYMBOLS} symbols)", percentiles(to_status), "ms", 1e3
            ),
            row(
                "POST /run -> the new scan:result read (1 of 500 changed)", percentiles(to_result), "ms", 1e3
            ),
            row("a cycle's durationMs (500 symbols, 2 chunks)", percentiles(durations), "ms", 1e3),
        ]
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("tick", "e2e", "scan", "both"), default="both")
    parser.add_argument("--ticks", type=int, default=20_000, help="ticks per in-process scenario")
    parser.add_argument("--probes", type=int, default=50, help="users with a probe rule (e2e)")
    parser.add_argument("--rounds", type=int, default=300, help="crossings measured (e2e)")
    parser.add_argument("--rate", type=int, default=500, help="background ticks per second (e2e)")
    parser.add_argument("--nice", type=int, default=0, help="niceness of the server and of this process")
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)
    print("| scenario | n | mean | p50 | p99 | max | |")
    print("|---|---|---|---|---|---|---|")
    if args.part in ("tick", "both"):
        for line in asyncio.run(tick_costs(args.ticks)):
            print(line, flush=True)
    if args.part in ("e2e", "both"):
        for line in asyncio.run(e2e(args.probes, args.rounds, args.rate, args.nice)):
            print(line, flush=True)
    if args.part == "scan":
        for line in asyncio.run(scan_latency(args.rounds, args.nice)):
            print(line, flush=True)


if __name__ == "__main__":
    main()
