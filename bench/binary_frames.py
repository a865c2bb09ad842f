"""Binary vs JSON efficiency: MessagePack against JSON WebSocket frames (and SSE for reference).

    .venv/bin/python bench/binary_frames.py                  # 20,000 events end to end per format
    .venv/bin/python bench/binary_frames.py --events 50000 --batch 500 --json

The events are a trading mix in the demo's and SPEC 3's shapes, per 20 events: 12 `price:update`
(symbol, price, bid, ask, open, timestamp) over 8 symbols, 3 `order:update`, 2 `order:fill` and
3 `position:update` of one user. Four measurements:

1. Bytes per event on the wire: each event's frame as the server's own codecs build it
   (src/tickwire/wire/: `FramedCodec` of `JSONCodec` / `MsgpackCodec`, the WebSocket header
   included; `ChunkedSSECodec` for SSE, the HTTP chunk framing included), per type and for the mix.
2. The server's encode cost per event: the codec's `event_frame` on fresh events (no cached wire
   form), which the server runs once per event and stream and shares among the subscribers. JSON
   includes the payload's own `orjson.dumps` (shared with SSE in the server), MessagePack its
   `packb`. Best of `--rounds` passes over the mix, in this process pinned to CPU 1.
3. The client's decode cost per event: `orjson.loads` of a JSON frame's payload vs
   `msgpack.unpackb` of a MessagePack one, best of `--rounds` passes.
4. End to end, per format, on a fresh `tickwire serve` (CPU 0; TICKWIRE_OUTBOX_BYTES 64 MB so a
   client that falls behind is not closed): one WebSocket client process (CPU 1, `websockets`,
   subprotocol `tickwire.json` or `tickwire.msgpack`, decoding every frame) subscribed to the
   user's `orders` and `positions` and to `prices`, while this process (CPU 1 too) POSTs `--events`
   events of the mix in batches of `--batch` to /api/publish as fast as they are accepted, then an
   `order:update` END. The client counts the live events from the first to END, its wall time, its
   CPU time (`getrusage`) and the bytes of its frames (header included). Ticks may be dropped
   for a client that falls behind (slow-consumer policy), so `received` can be below `published`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgpack
import orjson
from churn import pin_self
from ping_latency import Served, serving
from procs import CLIENT_CPU, ROOT, pinned, venv_python
from scenarios import BenchError
from source import DEFAULT_SRC
from websockets.asyncio.client import connect

SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "META", "JPM")
CYCLE = ("price",) * 12 + ("order",) * 3 + ("fill",) * 2 + ("position",) * 3
STREAM = {
    "price:update": "prices",
    "order:update": "orders",
    "order:fill": "orders",
    "position:update": "positions",
}
USER = "bench-trader"
FORMATS = ("ws-json", "ws-msgpack", "sse")
SUBPROTOCOL = {"ws-json": "tickwire.json", "ws-msgpack": "tickwire.msgpack"}
Published = tuple[str, dict[str, Any]]  # (type, data)


# -- the mix -----------------------------------------------------------------------------------------


def mix(count: int) -> list[Published]:
    """`count` events of the mix, deterministic; fill j of a cycle fills its order j, once."""
    out: list[Published] = []
    orders: list[dict[str, Any]] = []
    for n in range(count):
        kind, symbol = CYCLE[n % len(CYCLE)], SYMBOLS[n % len(SYMBOLS)]
        price = round(100.0 + SYMBOLS.index(symbol) * 37.5 + (n % 97) * 0.01, 2)
        if n % len(CYCLE) == 0:
            orders = []
        if kind == "price":
            data: dict[str, Any] = {"symbol": symbol, "price": price, "bid": round(price - 0.01, 2)}
            data.update({"ask": round(price + 0.01, 2), "open": round(price - 1.25, 2)})
            out.append(("price:update", data))
        elif kind == "order":
            side, qty = ("buy", 10 + n % 90) if n % 2 else ("sell", 5 + n % 45)
            order_id = f"ord-{n // len(CYCLE):06d}-{len(orders)}"
            data = {"orderId": order_id, "symbol": symbol, "side": side, "qty": qty, "type": "limit"}
            data.update({"limitPrice": price, "timeInForce": "day", "status": "new"})
            orders.append(data)
            out.append(("order:update", data))
        elif kind == "fill":
            order = orders[(n % len(CYCLE) - 15) % len(orders)]
            filled = order["qty"] if n % 2 else order["qty"] // 2
            status = "filled" if filled == order["qty"] else "partially_filled"
            data = {"orderId": order["orderId"], "filledQty": filled, "filledAvgPrice": order["limitPrice"]}
            out.append(("order:fill", {**data, "status": status}))
        else:
            quantity = 10 * (1 + n % 9)
            entry = round(price - 2.5, 2)
            data = {"symbol": symbol, "quantity": quantity, "entryPrice": entry, "currentPrice": price}
            data.update(
                {"value": round(quantity * price, 2), "unrealizedPnL": round((price - entry) * quantity, 2)}
            )
            out.append(("position:update", data))
    return out


def as_events(published: list[Published]) -> list[tuple[Any, str]]:
    """Stamped `Event`s as the server builds them (id, seq, timestamp), each with its stream."""
    from tickwire.core.event import Event, iso_timestamp
    from tickwire.core.ids import Position

    ms, offset, ticks = 1_767_225_600_000, 0, 0
    out: list[tuple[Any, str]] = []
    for n, (type_, data) in enumerate(published):
        payload = {**data, "timestamp": iso_timestamp(ms + n)}
        if type_ == "price:update":
            ticks += 1
            event = Event(
                type_, payload, "prices", Position(1, offset, ticks), ms + n, key=data["symbol"], tick=True
            )
        else:
            offset += 1
            event = Event(type_, payload, f"user:{USER}", Position(1, offset, 0), ms + n)
            event.seq = offset
        out.append((event, STREAM[type_]))
    return out


def encoders() -> dict[str, Callable[[Any, str], bytes]]:
    """The server's frame builders per format (wire/codecs.py, wire/sse.py)."""
    from tickwire.wire.codecs import JSON_CODEC, MSGPACK_CODEC, FramedCodec
    from tickwire.wire.sse import ChunkedSSECodec, SSECodec

    return {
        "ws-json": FramedCodec(JSON_CODEC).event_frame,
        "ws-msgpack": FramedCodec(MSGPACK_CODEC).event_frame,
        "sse": ChunkedSSECodec(SSECodec()).event_frame,
    }


# -- in process: bytes, encode, decode -----------------------------------------------------------------


def wire_bytes(published: list[Published]) -> dict[str, dict[str, float]]:
    """Mean frame bytes per format: per event type and for the whole mix."""
    events = as_events(published)
    out: dict[str, dict[str, float]] = {}
    for name, encode in encoders().items():
        sizes: dict[str, list[int]] = {}
        for event, stream in events:
            sizes.setdefault(event.type, []).append(len(encode(event, stream)))
        row = {type_: sum(s) / len(s) for type_, s in sizes.items()}
        row["mix"] = sum(sum(s) for s in sizes.values()) / len(events)
        out[name] = row
    return out


def encode_cost(published: list[Published], rounds: int) -> dict[str, float]:
    """Best µs per event of each format's frame builder, on fresh events every pass."""
    best: dict[str, float] = {}
    for name, encode in encoders().items():
        for _ in range(rounds):
            events = as_events(published)
            started = time.perf_counter()
            for event, stream in events:
                encode(event, stream)
            spent = (time.perf_counter() - started) / len(events) * 1e6
            best[name] = min(best.get(name, spent), spent)
    return best


def decode_cost(published: list[Published], rounds: int) -> dict[str, float]:
    """Best µs per event to turn a WebSocket payload back into a dict: orjson vs msgpack."""
    from tickwire.wire.codecs import JSON_CODEC, MSGPACK_CODEC

    events = as_events(published)
    payloads = {
        "ws-json": [JSON_CODEC.event_frame(e, s) for e, s in events],
        "ws-msgpack": [MSGPACK_CODEC.event_frame(e, s) for e, s in events],
    }
    decoders: dict[str, Callable[[bytes], Any]] = {
        "ws-json": orjson.loads,
        "ws-msgpack": lambda frame: msgpack.unpackb(frame, raw=False),
    }
    best: dict[str, float] = {}
    for name, frames in payloads.items():
        decode = decoders[name]
        for _ in range(rounds):
            started = time.perf_counter()
            for frame in frames:
                decode(frame)
            spent = (time.perf_counter() - started) / len(frames) * 1e6
            best[name] = min(best.get(name, spent), spent)
    return best


# -- end to end: the client process ------------------------------------------------------------------


async def client(url: str, token: str, fmt: str, timeout_s: float) -> dict[str, Any]:
    """Read and decode every frame until the END order; say `ready` once subscribed."""
    binary = fmt == "ws-msgpack"
    decode: Callable[[Any], Any] = (lambda m: msgpack.unpackb(m, raw=False)) if binary else orjson.loads
    subscribe = {"type": "subscribe", "streams": [{"stream": s} for s in ("orders", "positions", "prices")]}
    counted = size = 0
    types: dict[str, int] = {}
    started_wall = started_cpu = 0.0
    async with connect(
        url,
        subprotocols=[SUBPROTOCOL[fmt]],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}"},
        compression=None,
        max_size=1 << 22,
        ping_interval=None,
    ) as ws:
        await ws.send(msgpack.packb(subscribe) if binary else orjson.dumps(subscribe).decode())
        deadline = time.monotonic() + timeout_s
        async for message in ws:
            msg = decode(message)
            if msg.get("type") == "subscribed":
                print("ready", flush=True)
            if msg.get("type") != "event" or "snapshot" in msg["data"] or "initializing" in msg["data"]:
                continue
            if counted == 0:
                started_wall, started_cpu = time.perf_counter(), cpu_s()
            counted += 1
            types[msg["event"]] = types.get(msg["event"], 0) + 1
            size += len(message) + (2 if len(message) < 126 else 4)  # ASCII: characters are bytes
            if msg["data"].get("orderId") == "END" or time.monotonic() > deadline:
                break
    return {
        "received": counted,
        "wall_s": time.perf_counter() - started_wall,
        "cpu_s": cpu_s() - started_cpu,
        "bytes": size,
        "types": types,
    }


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- end to end: the publisher (this process) ----------------------------------------------------------


def bodies(count: int, batch: int) -> list[bytes]:
    """The publish bodies, encoded before the clock starts; the last event is the END order."""
    events = [{"type": t, "user": None if t == "price:update" else USER, "data": d} for t, d in mix(count)]
    end = {"orderId": "END", "symbol": "AAPL", "side": "buy", "qty": 1, "status": "canceled", "reason": "end"}
    events.append({"type": "order:update", "user": USER, "data": end})
    for event in events:
        if event["user"] is None:
            del event["user"]
    return [orjson.dumps(events[i : i + batch]) for i in range(0, len(events), batch)]


def end_to_end(fmt: str, args: argparse.Namespace) -> dict[str, Any]:
    """One format on a fresh server: the client process, the publish, the client's report."""
    with serving(
        {"TICKWIRE_OUTBOX_BYTES": str(64 << 20), "TICKWIRE_PUBLISH_MAX_BATCH": str(args.batch)}
    ) as served:
        argv = [*pinned(CLIENT_CPU, 0), venv_python(), __file__, "--client", fmt, "--url", served.ws]
        env = {**os.environ, "BENCH_TOKEN": served.token(USER)}
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        try:
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise BenchError(f"the {fmt} client did not subscribe")
            posted, post_s = publish(served, bodies(args.events, args.batch))
            out, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    report.update({"format": fmt, "published": posted, "publish_s": post_s})
    return report


def publish(served: Served, batches: list[bytes]) -> tuple[int, float]:
    """POST every batch in turn; how many events were accepted and in how long."""
    headers = {"Authorization": f"Bearer {served.token('bench-feed', ('publisher',))}"}
    headers["Content-Type"] = "application/json"
    accepted, started = 0, time.perf_counter()
    with httpx.Client(base_url=served.http, headers=headers, timeout=30) as http:
        for body in batches:
            response = http.post("/api/publish", content=body)
            if response.status_code != 200:
                raise BenchError(f"publish answered {response.status_code}: {response.text[:300]}")
            accepted += len(response.json()["ids"])
    return accepted - 1, time.perf_counter() - started  # the END order is not counted


# -- the command ---------------------------------------------------------------------------------------


def tables(result: dict[str, Any]) -> str:
    size, enc, dec = result["bytes"], result["encode_us"], result["decode_us"]
    types = ("mix", "price:update", "order:update", "order:fill", "position:update")
    lines = [
        "| format | "
        + " | ".join(f"bytes/event {t}" for t in types)
        + " | server encode µs/event | client decode µs/event |",
        "|---|" + "---:|" * (len(types) + 2),
    ]
    for fmt in FORMATS:
        cells = " | ".join(f"{size[fmt][t]:.0f}" for t in types)
        decode = f"{dec[fmt]:.2f}" if fmt in dec else "-"
        lines.append(f"| {fmt} | {cells} | {enc[fmt]:.2f} | {decode} |")
    lines += [
        "",
        "| end to end | published | received | events/s | client CPU µs/event | client CPU % | wire bytes/event | publish s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["end_to_end"]:
        n = max(1, run["received"])
        lines.append(
            f"| {run['format']} | {run['published']:,} | {run['received']:,} | {run['received'] / run['wall_s']:,.0f} | "
            f"{run['cpu_s'] / n * 1e6:.1f} | {100 * run['cpu_s'] / run['wall_s']:.0f} | {run['bytes'] / n:.0f} | "
            f"{run['publish_s']:.2f} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=20_000, help="events published end to end per format [20000]"
    )
    parser.add_argument("--batch", type=int, default=500, help="events per POST /api/publish [500]")
    parser.add_argument("--sample", type=int, default=2000, help="events of the mix timed in process [2000]")
    parser.add_argument("--rounds", type=int, default=7, help="in-process passes; the best counts [7]")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--client", choices=tuple(SUBPROTOCOL), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.client:  # the end-to-end client process
        report = asyncio.run(client(args.url, os.environ["BENCH_TOKEN"], args.client, 60.0))
        print(json.dumps(report), flush=True)
        return 0
    sys.path.insert(0, str(DEFAULT_SRC))  # the codecs measured in process: this tree's
    placement = pin_self(0)
    published = mix(args.sample)
    result: dict[str, Any] = {
        "bytes": wire_bytes(published),
        "encode_us": encode_cost(published, args.rounds),
        "decode_us": decode_cost(published, args.rounds),
        "placement": placement,
    }
    try:
        result["end_to_end"] = [end_to_end(fmt, args) for fmt in SUBPROTOCOL]
    except BenchError as exc:
        print(f"binary_frames: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.events:,} events end to end per format in batches of {args.batch}; {args.sample} in process\n"
        )
        print(tables(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
