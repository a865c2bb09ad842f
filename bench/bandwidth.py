"""Bytes per client per second on the demo price feed: JSON vs MessagePack, full vs delta.

    .venv/bin/python bench/bandwidth.py                    # 3 s warm-up, 20 s measured
    .venv/bin/python bench/bandwidth.py --duration 60 --symbols AAPL,MSFT
    .venv/bin/python bench/bandwidth.py --feed wide        # quotes with fields that rarely move

The feed, `--feed`:

- `demo` (default): one `tickwire serve --demo`, its market simulator (`TICKWIRE_DEMO_RATE`
  quotes per second per symbol, conflated by `TICKWIRE_THROTTLE_MS`): every quote moves
  price, bid and ask; only `open` stays;
- `wide`: a plain `tickwire serve` and this script publishing `--rate` quotes per second over
  six symbols, each a 14-field quote of which price, bid, ask, sizes and volume move, the day's
  high and low sometimes, and open, previous close, name, exchange and currency never.

One reader per row, all connected at once to `/api/stream/prices` (every symbol, or
`--symbols`):

- `sse`: a plain HTTP/1.1 GET (no gzip unless the row says so); every byte of the response
  body on the wire is counted (chunk framing included);
- `ws-json` / `ws-msgpack`: a WebSocket with that subprotocol and no permessage-deflate;
  every frame is counted with its header (2 bytes up to 125, 4 up to 65535).

`delta` rows subscribe with `?delta=1` / `"delta":true`. After the warm-up, each reader counts
bytes and `price:update` events for `--duration` seconds; the table shows bytes per second,
events per second, bytes per event, and the saving against `sse` full and `ws-json` full.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgpack
import orjson
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
WIDE_SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA")


@dataclass
class Reader:
    name: str
    transport: str  # sse | ws-json | ws-msgpack
    delta: bool
    gzip: bool = False
    bytes: int = 0
    events: int = 0
    counting: bool = False

    def count(self, size: int, events: int) -> None:
        if self.counting:
            self.bytes += size
            self.events += events


READERS = [
    Reader("sse", "sse", False),
    Reader("sse", "sse", True),
    Reader("sse + gzip", "sse", False, gzip=True),
    Reader("sse + gzip", "sse", True, gzip=True),
    Reader("ws-json", "ws-json", False),
    Reader("ws-json", "ws-json", True),
    Reader("ws-msgpack", "ws-msgpack", False),
    Reader("ws-msgpack", "ws-msgpack", True),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def read_sse(reader: Reader, port: int, symbols: str) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    query = "?delta=1" if reader.delta else "?delta=0"
    if symbols:
        query += f"&symbols={symbols}"
    encoding = "Accept-Encoding: gzip\r\n" if reader.gzip else ""
    w.write(f"GET /api/stream/prices{query} HTTP/1.1\r\nHost: bench\r\n{encoding}\r\n".encode())
    await r.readuntil(b"\r\n\r\n")
    while True:
        chunk = await r.read(65536)
        if not chunk:
            return
        # Compressed bodies hide their events: count events in the plain rows only.
        reader.count(len(chunk), 0 if reader.gzip else chunk.count(b"event: price:update"))


async def read_ws(reader: Reader, port: int, symbols: str) -> None:
    binary = reader.transport == "ws-msgpack"
    stream: dict[str, object] = {"stream": "prices", "delta": reader.delta}
    if symbols:
        stream["symbols"] = symbols.split(",")
    subscribe = {"type": "subscribe", "streams": [stream]}
    async with connect(
        f"ws://127.0.0.1:{port}/api/stream/ws",
        subprotocols=["tickwire.msgpack" if binary else "tickwire.json"],  # type: ignore[list-item]
        compression=None,
        max_size=1 << 22,
        ping_interval=None,
    ) as ws:
        await ws.send(msgpack.packb(subscribe) if binary else orjson.dumps(subscribe).decode())
        async for message in ws:
            raw = message if isinstance(message, bytes) else message.encode()
            header = 2 if len(raw) < 126 else 4
            decoded = msgpack.unpackb(raw) if binary else orjson.loads(raw)
            reader.count(len(raw) + header, int(decoded.get("event") == "price:update"))


def wide_quote(symbol: str, n: int) -> dict[str, object]:
    base = 100.0 + WIDE_SYMBOLS.index(symbol) * 50
    price = round(base + (n % 40) * 0.01 - 0.2, 2)
    return {
        "symbol": symbol,
        "price": price,
        "bid": round(price - 0.01, 2),
        "ask": round(price + 0.01, 2),
        "bidSize": 100 + n % 7 * 100,
        "askSize": 200 + n % 5 * 100,
        "volume": 1_000_000 + n * 37,
        "open": base,
        "high": round(base + 0.2 + (n // 200) * 0.01, 2),
        "low": round(base - 0.2 - (n // 300) * 0.01, 2),
        "prevClose": round(base - 1.25, 2),
        "name": f"{symbol} Inc. Common Stock",
        "exchange": "NASDAQ",
        "currency": "USD",
    }


async def publish_wide(port: int, rate: float) -> None:
    from tickwire.server.auth import issue_token

    token = issue_token(SECRET, "bench-feed", ("publisher",), 3600)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        n = 0
        started = time.monotonic()
        while True:
            symbol = WIDE_SYMBOLS[n % len(WIDE_SYMBOLS)]
            await client.post("/api/publish", json={"type": "price:update", "data": wide_quote(symbol, n)})
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))


async def measure(port: int, symbols: str, warmup: float, duration: float, feed_rate: float | None) -> float:
    tasks = [
        asyncio.create_task(read_sse(r, port, symbols) if r.transport == "sse" else read_ws(r, port, symbols))
        for r in READERS
    ]
    if feed_rate is not None:
        tasks.append(asyncio.create_task(publish_wide(port, feed_rate)))
    await asyncio.sleep(warmup)
    for r in READERS:
        r.counting = True
    started = time.monotonic()
    await asyncio.sleep(duration)
    for r in READERS:
        r.counting = False
    elapsed = time.monotonic() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return elapsed


def start_server(port: int, env: dict[str, str], demo: bool) -> subprocess.Popen[bytes]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (read only if the server fails to start)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickwire", "serve", *(["--demo"] if demo else [])],
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "TICKWIRE_SECRET": SECRET,
            "TICKWIRE_PORT": str(port),
            "TICKWIRE_CONNECT_RATE": "0",
            "TICKWIRE_LOG_LEVEL": "warning",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    log.seek(0)
    raise SystemExit(f"the server did not start:\n{log.read().decode(errors='replace')}")


def table(elapsed: float) -> str:
    base = {r.transport + str(r.gzip): r.bytes for r in READERS if not r.delta}
    json_full = next(r.bytes for r in READERS if r.transport == "ws-json" and not r.delta)
    sse_full = next(r.bytes for r in READERS if r.transport == "sse" and not r.gzip and not r.delta)
    lines = [
        "| reader | mode | bytes/s | events/s | bytes/event | vs its full | vs sse full | vs ws-json full |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in READERS:
        per_s = r.bytes / elapsed
        events = f"{r.events / elapsed:,.1f}" if r.events else "-"
        per_event = f"{r.bytes / r.events:,.0f}" if r.events else "-"
        own = base[r.transport + str(r.gzip)]
        lines.append(
            f"| {r.name} | {'delta' if r.delta else 'full'} | {per_s:,.0f} | {events} | {per_event} | "
            f"{_saving(r.bytes, own)} | {_saving(r.bytes, sse_full)} | {_saving(r.bytes, json_full)} |"
        )
    return "\n".join(lines)


def _saving(value: int, base: int) -> str:
    if not base or value == base:
        return "-"
    return f"{100 * (value - base) / base:+.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--symbols", default="", help="comma-separated; default every demo symbol")
    parser.add_argument("--throttle-ms", default="100", help="TICKWIRE_THROTTLE_MS of the server [100]")
    parser.add_argument("--feed", choices=("demo", "wide"), default="demo")
    parser.add_argument("--rate", type=float, default=30.0, help="wide feed: quotes per second [30]")
    args = parser.parse_args()
    port = free_port()
    demo = args.feed == "demo"
    server = start_server(port, {"TICKWIRE_THROTTLE_MS": args.throttle_ms}, demo)
    try:
        rate = None if demo else args.rate
        elapsed = asyncio.run(measure(port, args.symbols, args.warmup, args.duration, rate))
    finally:
        server.terminate()
        server.wait(10)
    print(f"{args.feed} feed, {elapsed:.1f} s measured, TICKWIRE_THROTTLE_MS={args.throttle_ms}")
    print(table(elapsed))


if __name__ == "__main__":
    main()
