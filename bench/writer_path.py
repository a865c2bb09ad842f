"""The writer path alone, without sockets: a frame queued on N connections, then written
by the flusher through the ASGI driver to a `send` that never has to wait.

    python bench/writer_path.py                       # µs per delivery (noisy on a shared machine)
    valgrind --tool=callgrind python bench/writer_path.py --rounds 5
    valgrind --tool=callgrind python bench/writer_path.py --rounds 45
        # instructions per delivery = (refs at 45 - refs at 5) / (40 x connections): repeatable

`--src DIR` measures another checkout's `src/` (it must have `server/writer.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

FRAME = b"event: price:update\ndata: " + b"x" * 200 + b"\nid: 1767350400000-abc\nretry: 5000\n\n"


async def _send(message: Any) -> None:  # an ASGI server's send with room in the socket
    return None


async def measure(connections: int, rounds: int) -> float:
    from tickwire.core.clock import SystemClock
    from tickwire.core.connection import Connection
    from tickwire.drivers.asgi import ASGIStreamDriver
    from tickwire.metrics import FastHistogram
    from tickwire.server.streaming import Flusher
    from tickwire.server.writer import Writer
    from tickwire.wire.sse import SSECodec

    clock, flusher, latency = SystemClock(), Flusher(), FastHistogram((0.1,))
    outboxes = []
    for i in range(connections):
        writer = Writer(ASGIStreamDriver(_send, _send, "p"), flusher, clock, latency, frames=False)  # type: ignore[arg-type]
        conn = Connection(
            client_id=str(i),
            user=None,
            transport="sse",
            codec=SSECodec(),
            clock=clock,
            outbox_limit=1 << 20,
            notify=writer.notify,
        )
        writer.attach(conn)
        outboxes.append(conn.outbox)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for outbox in outboxes:
            outbox.put(FRAME, ms=1)
        await asyncio.sleep(0)  # the flusher writes every ready connection
        await asyncio.sleep(0)
        times.append(time.perf_counter() - started)
    return statistics.median(times) / connections * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parent.parent / "src")
    args = parser.parse_args()
    sys.path.insert(0, str(args.src))
    us = asyncio.run(measure(args.connections, args.rounds))
    print(f"{us:.3f} us per delivery (median of {args.rounds} rounds, {args.connections} connections)")


if __name__ == "__main__":
    main()
