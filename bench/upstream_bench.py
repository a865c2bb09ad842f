"""Market data in (SPEC 12): what one upstream connection ingests, and what its updates cost
to reach many readers.

    .venv/bin/python bench/upstream_bench.py                   # both parts
    .venv/bin/python bench/upstream_bench.py --part ingest     # one connection, one core
    .venv/bin/python bench/upstream_bench.py --part latency    # provider send -> 1,000 SSE readers

`ingest`: a fake provider in a child process (pinned to CPU 1) sends Finnhub-style trade
messages (`{"type":"trade","data":[{"s","p","t","v"}]}`, one trade per message, round robin
over `--symbols` symbols) as fast as the socket takes them; a node in this process (pinned to
CPU 0: one core; memory broker) holds one upstream (`--kind finnhub`, or `json` with a field
mapping) with those symbols pinned. Measured over `--duration` s after a warm-up: provider
messages received, updates normalised, events published (queued ticks of a symbol conflate:
published <= updates), and this process's CPU.

`latency`: `tickwire serve` pinned to CPU 0 with an upstreams YAML (finnhub kind, the fake
in this process), `--readers` SSE connections on `/api/stream/prices?symbols=BENCH` in
`--reader-procs` child processes (CPU 1, with the fake); the fake sends one trade every
1/`--rate` s whose price is its send time (unix seconds, float): each reader records
receive time - price for every `price:update`. TICKWIRE_THROTTLE_MS=0 (every update goes
out). The same machine's clock on both ends, so no skew.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from websockets.asyncio.server import ServerConnection, serve  # noqa: E402

TOKEN = "bench-provider-token"
SECRET = "bench-secret-0123456789abcdef0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


# -- the fake provider ----------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """An unmasked server-to-client WebSocket text frame (what a provider's server sends)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload


def blast(port: int, symbols: list[str], ready: Any) -> None:
    """Child process: accept one client and send it trades as fast as its socket takes them
    (frames built here and written in blocks: the fake must outrun the node it feeds)."""
    pin(1)

    async def handler(ws: ServerConnection) -> None:
        transport = ws.transport
        i = 0
        with contextlib.suppress(Exception):
            while not transport.is_closing():
                now = time.time_ns() // 1_000_000
                block = []
                for _ in range(200):
                    trade = {"s": symbols[i % len(symbols)], "p": 100.0 + (i % 997) / 100, "t": now, "v": 1}
                    block.append(frame(orjson.dumps({"type": "trade", "data": [trade]})))
                    i += 1
                transport.write(b"".join(block))
                while transport.get_write_buffer_size() > 1 << 20:  # noqa: ASYNC110 - a socket's buffer has no event
                    await asyncio.sleep(0.0005)
                await asyncio.sleep(0)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, ping_interval=None, compression=None):
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


async def run_ingest(args: argparse.Namespace) -> dict[str, Any]:
    from tickwire.config import load_settings
    from tickwire.node import Node

    pin(0)
    port = free_port()
    symbols = [f"S{i:04d}" for i in range(args.symbols)]
    ready = mp.Event()
    child = mp.Process(target=blast, args=(port, symbols, ready), daemon=True)
    child.start()
    ready.wait(10)
    entry: dict[str, Any] = {
        "name": "bench",
        "kind": args.kind,
        "url": f"ws://127.0.0.1:{port}/",
        "token_env": "BENCH_TOKEN",
        "symbols": symbols,
        "max_symbols": len(symbols),
        "stale_s": 3600,
    }
    if args.kind == "json":
        entry["options"] = {
            "subscribe": {"type": "subscribe", "symbols": "$symbols"},
            "records": "$.data[*]",
            "fields": {"symbol": "$.s", "price": "$.p", "size": "$.v", "ts": "$.t"},
        }
    os.environ["BENCH_TOKEN"] = TOKEN
    settings = load_settings(
        env={}, overrides={"secret": SECRET, "upstreams": [entry], "log_level": "warning"}
    )
    node = Node(settings)
    await node.start()
    stats = node.upstreams.connections["bench"].stats
    try:
        await asyncio.sleep(args.warmup)
        before = (stats.messages, stats.updates, stats.published, time.process_time(), time.perf_counter())
        await asyncio.sleep(args.duration)
        after = (stats.messages, stats.updates, stats.published, time.process_time(), time.perf_counter())
    finally:
        await node.stop()
        child.terminate()
    elapsed = after[4] - before[4]
    return {
        "part": "ingest",
        "kind": args.kind,
        "symbols": args.symbols,
        "messages_per_s": round((after[0] - before[0]) / elapsed),
        "updates_per_s": round((after[1] - before[1]) / elapsed),
        "published_per_s": round((after[2] - before[2]) / elapsed),
        "cpu": round((after[3] - before[3]) / elapsed, 2),
        "messages_per_cpu_s": round((after[0] - before[0]) / max(1e-9, after[3] - before[3])),
        "dropped": {k: v for k, v in stats.dropped.items() if v},
    }


# -- latency: readers ---------------------------------------------------------------------


async def sse_reader(
    port: int, path: str, out: list[tuple[float, float]], stop: float, connected: Any
) -> bool:
    """One SSE connection: (send time, receive time - send time) of every update (the price
    is the fake's send time)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        return False
    with connected.get_lock():
        connected.value += 1
    buf = b""
    with contextlib.suppress(Exception):
        while time.time() < stop:
            chunk = await asyncio.wait_for(reader.read(65536), max(0.1, stop - time.time()))
            if not chunk:
                break
            now = time.time()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                at = line.find(b'"price":') if line.startswith(b"data: {") else -1
                if at >= 0 and b'"source"' in line:
                    end = line.index(b",", at)
                    sent = float(line[at + 8 : end])
                    out.append((sent, now - sent))
    writer.close()
    return True


def reader_proc(port: int, count: int, stop: float, connected: Any, results: Any, nice: int) -> None:
    pin(1)
    with contextlib.suppress(OSError):
        os.nice(nice)

    async def main() -> None:
        samples: list[tuple[float, float]] = []
        oks = await asyncio.gather(
            *(
                sse_reader(port, "/api/stream/prices?symbols=BENCH", samples, stop, connected)
                for _ in range(count)
            )
        )
        results.put((sum(oks), samples))

    asyncio.run(main())


# -- latency: the fake provider and the server ---------------------------------------------


class Feed:
    """A Finnhub-style fake in this process: sends a trade to every holder of BENCH."""

    def __init__(self) -> None:
        self.clients: set[ServerConnection] = set()
        self.sent = 0

    async def handler(self, ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                if orjson.loads(message).get("symbol") == "BENCH":
                    self.clients.add(ws)
        self.clients.discard(ws)

    async def send(self) -> None:
        now = time.time()
        frame = orjson.dumps(
            {"type": "trade", "data": [{"s": "BENCH", "p": now, "t": int(now * 1000), "v": 1}]}
        )
        for ws in list(self.clients):
            await ws.send(frame.decode())
        self.sent += 1


def start_server(upstreams: str, port: int, nice: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TICKWIRE_SECRET": SECRET,
        "TICKWIRE_PORT": str(port),
        "TICKWIRE_UPSTREAMS": upstreams,
        "TICKWIRE_THROTTLE_MS": "0",
        "TICKWIRE_CONNECT_RATE": "0",
        "TICKWIRE_MAX_CONNS_PER_IP": "0",
        "TICKWIRE_LOG_LEVEL": "warning",
        "BENCH_TOKEN": TOKEN,
    }
    python = str(ROOT / ".venv" / "bin" / "python")
    cmd = ["taskset", "-c", "0", "nice", "-n", str(nice), python, "-m", "tickwire", "serve"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("tickwire serve did not become ready")


async def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    pin(1)
    feed = Feed()
    async with serve(feed.handler, "127.0.0.1", 0, ping_interval=None, compression=None) as ws_server:
        feed_port = next(iter(ws_server.sockets)).getsockname()[1]
        config = {
            "upstreams": [
                {
                    "name": "bench",
                    "kind": "finnhub",
                    "url": f"ws://127.0.0.1:{feed_port}/",
                    "token_env": "BENCH_TOKEN",
                    "linger_s": 60,
                }
            ]
        }
        path = Path(tempfile.mkdtemp()) / "upstreams.yaml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        server = await asyncio.to_thread(start_server, str(path), port, args.nice)
        try:
            return await _measure(args, feed, port)
        finally:
            server.terminate()
            server.wait(10)


async def _measure(args: argparse.Namespace, feed: Feed, port: int) -> dict[str, Any]:
    per_proc = args.readers // args.reader_procs
    readers = per_proc * args.reader_procs
    stop = time.time() + 60 + args.warmup + args.duration
    connected: Any = mp.Value("i", 0)
    results: Any = mp.Queue()
    procs = [
        mp.Process(target=reader_proc, args=(port, per_proc, stop, connected, results, args.nice))
        for _ in range(args.reader_procs)
    ]
    for proc in procs:
        proc.start()
    deadline = time.time() + 60
    while (connected.value < readers or not feed.clients) and time.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # readers in other processes: a shared counter, no event
    interval = 1.0 / args.rate
    begin = time.time()
    window = (begin + args.warmup, begin + args.warmup + args.duration)
    sent_in_window = 0
    next_at = begin
    while next_at < window[1]:
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.time()))
        sent_at = time.time()
        await feed.send()
        sent_in_window += window[0] <= sent_at < window[1]
    await asyncio.sleep(2)  # late deliveries
    stop_at = time.time()
    got: list[tuple[float, float]] = []
    ok = 0
    for _ in procs:
        n, samples = await asyncio.to_thread(results.get, True, max(5.0, stop - stop_at + 30))
        ok += n
        got += samples
    for proc in procs:
        proc.join(10)
    ms = sorted(lat * 1000 for sent, lat in got if window[0] <= sent < window[1]) or [0.0]
    quantile = statistics.quantiles(ms, n=100) if len(ms) > 1 else [ms[0]] * 99
    return {
        "part": "latency",
        "readers": ok,
        "rate": args.rate,
        "sent": sent_in_window,
        "delivered": len(ms),
        "ratio": round(len(ms) / max(1, sent_in_window * ok), 4),
        "p50_ms": round(quantile[49], 1),
        "p90_ms": round(quantile[89], 1),
        "p99_ms": round(quantile[98], 1),
        "max_ms": round(ms[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["ingest", "latency", "both"], default="both")
    parser.add_argument("--kind", choices=["finnhub", "json"], default="finnhub")
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--reader-procs", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--nice", type=int, default=0, help="niceness of the server and readers (negative: root)"
    )
    args = parser.parse_args()
    if args.part in ("ingest", "both"):
        print(orjson.dumps(asyncio.run(run_ingest(args))).decode(), flush=True)
    if args.part in ("latency", "both"):
        print(orjson.dumps(asyncio.run(run_latency(args))).decode(), flush=True)


if __name__ == "__main__":
    main()
