"""How many price events per second one Python client process consumes, and at what CPU cost.

    .venv/bin/python bench/client_throughput.py                       # every reader, 3 rounds
    .venv/bin/python bench/client_throughput.py --readers client-sse,bare-sse --events 100000
    .venv/bin/python bench/client_throughput.py --client-src /tmp/old/src   # the client of another tree
    .venv/bin/python bench/client_throughput.py --profile /tmp/prof   # + cProfile of each client reader

What one measurement does:

1. A real `tickwire serve` (this tree's src/, TICKWIRE_THROTTLE_MS=0 so the server conflates
   nothing while it keeps up, connect rate off) on a free port.
2. One reader process subscribes to `/api/stream/prices` and says when it is ready:
   - `client-sse` / `client-ws`: `tickwire.client.Client` (from `--client-src`, default this
     tree), `async for event in client.events()` counting `price:update` events;
   - `bare-sse`: httpx streaming GET + the server's own SSE parser (wire/sse.py) + orjson per
     event: the least a Python program does to get the events as dicts;
   - `bare-ws`: `websockets` + one `subscribe` + orjson per frame.
3. A publisher (this process) POSTs `--events` price updates in batches of `--batch` over
   `--symbols` symbols as fast as the server takes them, then one `END` price.
4. The reader counts events from the first to `END` and reports them, the wall time between
   them and its own CPU time (user + system, `resource.getrusage`) over the same window.

Readers run in turn (the machine has 2 CPUs: server, publisher and reader share them), and the
whole set is repeated `--rounds` times; the table shows the median round of each reader. A
reader slower than the server's delivery makes the server drop ticks for it (slow consumer:
ticks go first), so `received` can be below `published`: events/s is what the reader
consumed, CPU us/event is its cost per consumed event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
READERS = ("client-sse", "bare-sse", "client-ws", "bare-ws")
END = "END"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the readers (run in a child process: `client_throughput.py --reader KIND --url URL`) ---------


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.start_wall = 0.0
        self.start_cpu = 0.0

    def tick(self) -> None:
        if self.count == 0:
            self.start_wall = time.perf_counter()
            self.start_cpu = cpu_s()
        self.count += 1

    def report(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.start_wall
        cpu = cpu_s() - self.start_cpu
        return {"received": self.count, "wall_s": wall, "cpu_s": cpu}


def ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


async def read_client(url: str, transport: str) -> dict[str, Any]:
    from tickwire.client import Client, ConnectionState

    counter = Counter()
    async with Client(url, ["prices"], transport=transport) as client:
        await client.wait_for_state(ConnectionState.CONNECTED)
        ready()
        async for event in client.events():
            if event.type != "price:update" or event.is_snapshot:
                continue
            symbol = (event.raw if hasattr(event, "raw") else event.data).get("symbol")
            if symbol == END:
                break
            counter.tick()
        out = counter.report()
        out["client_stats"] = {k: v for k, v in vars(client.stats).items() if isinstance(v, int | float)}
        return out


async def read_bare_sse(url: str) -> dict[str, Any]:
    import httpx
    import orjson

    from tickwire.wire.sse import SSEParser

    counter = Counter()
    parser = SSEParser()
    async with (
        httpx.AsyncClient(timeout=None) as http,
        http.stream("GET", url + "/api/stream/prices", headers={"Accept": "text/event-stream"}) as response,
    ):
        announced = False
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                data = orjson.loads(event.data)
                if event.event == "connected" and not announced:
                    announced = True
                    ready()
                if event.event != "price:update" or "symbol" not in data:
                    continue
                if data["symbol"] == END:
                    return counter.report()
                counter.tick()
    return counter.report()


async def read_bare_ws(url: str) -> dict[str, Any]:
    import orjson
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    counter = Counter()
    ws_url = url.replace("http://", "ws://") + "/api/stream/ws"
    async with connect(ws_url, subprotocols=[Subprotocol("tickwire.json")], max_size=None) as ws:
        await ws.send(
            orjson.dumps({"type": "subscribe", "rid": "1", "streams": [{"stream": "prices"}]}).decode()
        )
        async for frame in ws:
            message = orjson.loads(frame)
            kind = message.get("type")
            if kind == "subscribed":
                ready()
            if kind != "event" or message.get("event") != "price:update":
                continue
            data = message.get("data") or {}
            if "symbol" not in data:
                continue
            if data["symbol"] == END:
                break
            counter.tick()
    return counter.report()


def run_reader(kind: str, url: str, profile: str | None) -> None:
    import uvloop

    if kind == "client-sse":
        coro = read_client(url, "sse")
    elif kind == "client-ws":
        coro = read_client(url, "ws")
    elif kind == "bare-sse":
        coro = read_bare_sse(url)
    else:
        coro = read_bare_ws(url)
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        result = uvloop.run(coro)
        profiler.disable()
        profiler.dump_stats(profile)
    else:
        result = uvloop.run(coro)
    sys.stdout.write("result " + json.dumps(result) + "\n")
    sys.stdout.flush()


# -- the parent: server, publisher, table -------------------------------------------------------------


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="tickwire-bench-", suffix=".log", delete=False)  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
        env.update(
            {
                "PYTHONPATH": str(ROOT / "src"),
                "TICKWIRE_SECRET": SECRET,
                "TICKWIRE_PORT": str(self.port),
                "TICKWIRE_HOST": "127.0.0.1",
                "TICKWIRE_CONNECT_RATE": "0",
                "TICKWIRE_THROTTLE_MS": "0",
                "TICKWIRE_LOG_LEVEL": "warning",
                "TICKWIRE_PUBLISH_MAX_BATCH": "1000",
                # a backlog of every published event fits in the reader's outbox (--mode backlog)
                "TICKWIRE_OUTBOX_BYTES": str(1 << 30),
            }
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tickwire", "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"tickwire exited: {Path(self.log.name).read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit("tickwire did not become ready")

    def token(self) -> str:
        sys.path.insert(0, str(ROOT / "src"))
        from tickwire.server.auth import issue_token

        return issue_token(SECRET, "bench-publisher", ["publisher"], 3600)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        Path(self.log.name).unlink(missing_ok=True)


def batches(total: int, size: int, symbols: int) -> list[bytes]:
    import orjson

    out = []
    for start in range(0, total, size):
        items = [
            {
                "type": "price:update",
                "data": {"symbol": f"S{n % symbols}", "price": 100 + n % 97, "bid": 99.5},
            }
            for n in range(start, min(total, start + size))
        ]
        out.append(orjson.dumps(items))
    return out


def publish(url: str, token: str, bodies: list[bytes], concurrency: int) -> float:
    """POST every body, `concurrency` requests in flight (the server keeps their order per
    connection only, which does not matter here), then the END price."""
    return asyncio.run(_publish(url, token, bodies, concurrency))


async def _publish(url: str, token: str, bodies: list[bytes], concurrency: int) -> float:
    import httpx
    import orjson

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    queue = list(reversed(bodies))
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as http:

        async def worker() -> None:
            while queue:
                response = await http.post(url + "/api/publish", content=queue.pop(), headers=headers)
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        end = orjson.dumps([{"type": "price:update", "data": {"symbol": END, "price": 1}}])
        (await http.post(url + "/api/publish", content=end, headers=headers)).raise_for_status()
    return time.perf_counter() - started


def measure(server: Server, token: str, kind: str, args: argparse.Namespace, n: int) -> dict[str, Any]:
    src = Path(args.client_src).resolve() if args.client_src else ROOT / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--reader", kind, "--url", server.url]
    if args.profile and kind.startswith("client"):
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        cmd += ["--profile-out", str(Path(args.profile) / f"{kind}-{n}.prof")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"{kind}: did not get ready: {line!r}")
    bodies = batches(args.events, args.batch, args.symbols)
    if args.mode == "backlog":
        proc.send_signal(signal.SIGSTOP)  # the server queues everything for it meanwhile
        time.sleep(0.2)
    publish_s = publish(server.url, token, bodies, args.concurrency)
    if args.mode == "backlog":
        time.sleep(0.5)  # the last events reach the outbox
        proc.send_signal(signal.SIGCONT)
    out, _ = proc.communicate(timeout=120)
    result_line = next(x for x in out.splitlines() if x.startswith("result "))
    result: dict[str, Any] = json.loads(result_line[len("result ") :])
    result["publish_s"] = publish_s
    result["events_s"] = result["received"] / result["wall_s"] if result["wall_s"] else 0.0
    result["cpu_us"] = 1e6 * result["cpu_s"] / max(1, result["received"])
    return result


def table(results: dict[str, list[dict[str, Any]]], events: int) -> str:
    lines = [
        "| reader | events/s (median) | runs (events/s) | received of published | CPU us/event | reader CPU % |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for kind, runs in results.items():
        rates = [r["events_s"] for r in runs]
        middle = sorted(runs, key=lambda r: r["events_s"])[len(runs) // 2]
        cpu_pct = 100 * middle["cpu_s"] / middle["wall_s"] if middle["wall_s"] else 0
        lines.append(
            f"| {kind} | {statistics.median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} "
            f"| {middle['received']:,} / {events:,} | {middle['cpu_us']:.1f} | {cpu_pct:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", default=",".join(READERS), help="comma-separated: " + ", ".join(READERS))
    parser.add_argument("--events", type=int, default=100_000, help="price updates published per run")
    parser.add_argument("--batch", type=int, default=500, help="events per POST")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4, help="POSTs in flight")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--mode",
        choices=("backlog", "live"),
        default="backlog",
        help="backlog: the reader is stopped (SIGSTOP) while everything is published, then drains "
        "the server's outbox at its own pace (its capacity); live: it reads while the publisher "
        "publishes (bounded by how fast the server takes the publishes)",
    )
    parser.add_argument("--client-src", help="import tickwire.client from this src/ directory")
    parser.add_argument("--profile", help="directory for cProfile dumps of the client readers")
    parser.add_argument("--reader", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        run_reader(args.reader, args.url, args.profile_out)
        return
    kinds = [k.strip() for k in args.readers.split(",") if k.strip()]
    for kind in kinds:
        if kind not in READERS:
            raise SystemExit(f"unknown reader {kind!r}")
    server = Server()
    try:
        token = server.token()
        results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for n in range(args.rounds):
            for kind in kinds:
                result = measure(server, token, kind, args, n)
                results[kind].append(result)
                print(
                    f"round {n + 1} {kind}: {result['events_s']:,.0f} events/s, "
                    f"{result['received']:,} received, {result['cpu_us']:.1f} us CPU/event",
                    file=sys.stderr,
                    flush=True,
                )
        print(
            f"\nmode {args.mode}: {args.events:,} price updates per run, batches of {args.batch}, "
            f"{args.symbols} symbols, {args.rounds} rounds\n"
        )
        print(table(results, args.events))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
