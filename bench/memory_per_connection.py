"""Where the memory of an idle streaming connection goes: the Python heap a server process
holds per open connection, by the package that allocated it (tracemalloc).

    .venv/bin/python bench/memory_per_connection.py                 # 1000 idle SSE connections
    .venv/bin/python bench/memory_per_connection.py --proto ws --conns 2000

A child process serves the tickwire app as `tickwire serve` does (uvicorn, uvloop, the
project's HTTP and WebSocket protocols, the native driver, TICKWIRE_THROTTLE_MS=0) with
tracemalloc on. This process opens `--conns` connections to `prices` (an SSE GET, or a
WebSocket with `?streams=prices`), reads their first bytes and leaves them idle; the server
compares its heap with and without them and reports the difference per connection, grouped
by package. Only the Python heap counts: the kernel's socket buffers and the allocator's
slack are in wireload's RSS figure, not here.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

REQUESTS = {
    "sse": b"GET /api/stream/prices HTTP/1.1\r\nHost: bench\r\n\r\n",
    "ws": b"GET /api/stream/ws?streams=prices HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
    % base64.b64encode(b"tickwire-bench-k"),
}


def group(filename: str) -> str:
    """The package a source file belongs to (`tickwire/server`, `starlette`, `asyncio`...)."""
    parts = Path(filename).parts
    if "tickwire" in parts:
        at = parts.index("tickwire")
        return "/".join(parts[at : at + 2]).removesuffix(".py")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    return "asyncio" if "asyncio" in parts else Path(filename).stem


def serve(port: int, control: str) -> None:
    """The child: the app on `port`; on each line read from `control`, a heap snapshot."""
    tracemalloc.start(1)
    import uvicorn

    from tickwire.cli import uvicorn_config
    from tickwire.config import load_settings
    from tickwire.server.app import create_app

    settings = load_settings(
        env={
            **os.environ,
            "TICKWIRE_SECRET": "b" * 32,
            "TICKWIRE_THROTTLE_MS": "0",
            "TICKWIRE_CONNECT_RATE": "0",
        }
    )
    app = create_app(settings)
    config = uvicorn_config(app, settings)
    config.host, config.port = "127.0.0.1", port
    server = uvicorn.Server(config)

    async def snapshots() -> None:
        loop = asyncio.get_running_loop()
        fifo = await loop.run_in_executor(None, open, control, "rb", 0)  # waits for the writer
        with fifo:
            base: tracemalloc.Snapshot | None = None
            while line := await loop.run_in_executor(None, fifo.readline):
                count = int(line)
                snap = tracemalloc.take_snapshot()
                if base is None:
                    base = snap
                    print("ready", flush=True)
                    continue
                by_group: Counter[str] = Counter()
                for stat in snap.compare_to(base, "filename"):
                    by_group[group(stat.traceback[0].filename)] += stat.size_diff
                total = sum(by_group.values())
                print(f"{total / count / 1000:.1f} kB per connection (Python heap, {count} connections)")
                for name, size in by_group.most_common(12):
                    print(f"  {size / count / 1000:5.1f} kB  {name}")
                print("done", flush=True)
                server.should_exit = True

    async def main() -> None:
        await asyncio.gather(server.serve(), snapshots())

    import uvloop

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--proto", choices=sorted(REQUESTS), default="sse")
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--control", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.control)
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    control = f"/tmp/tickwire-memprobe-{os.getpid()}"
    os.mkfifo(control)
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--control", control],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with open(control, "wb", buffering=0) as fifo:
            for _ in range(100):  # wait for the server to listen
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            fifo.write(b"0\n")  # the heap without connections
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            conns = []
            for _ in range(args.conns):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(REQUESTS[args.proto])
                conns.append(sock)
            for sock in conns:
                assert sock.recv(65536), "closed before answering"
            time.sleep(1)  # every connection reaches its idle state
            fifo.write(b"%d\n" % args.conns)
            for line in child.stdout:
                if line.strip() == "done":
                    break
                print(line, end="")
            for sock in conns:
                sock.close()
        child.wait(timeout=30)
    finally:
        child.kill()
        os.unlink(control)


if __name__ == "__main__":
    main()
