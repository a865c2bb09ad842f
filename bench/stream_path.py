"""The streaming hot path in one process, per driver: N real loopback TCP connections served by
the uvicorn protocols `tickwire serve` runs and the real app, each reading `prices` (an SSE
response, or a WebSocket with `--proto ws`); one `price:update` dispatched by the hub at a time
and flushed to every socket.

    python bench/stream_path.py                            # CPU us per delivery, asgi vs native
    python bench/stream_path.py --proto ws --drivers native --rounds 300 --connections 1000
    valgrind --tool=callgrind python bench/stream_path.py --drivers asgi --rounds 5 --connections 200 --no-read
    valgrind --tool=callgrind python bench/stream_path.py --drivers asgi --rounds 25 --connections 200 --no-read
        # instructions per delivery = (refs at 25 - refs at 5) / (20 x connections): repeatable

The loop is uvloop's, as under `tickwire serve`. What is timed (process CPU time, user + system) is the dispatch and the loop turn that
writes: hub -> subscriptions -> outboxes -> flusher -> writer -> driver -> `write()`, the
kernel's loopback work included. Reading the client ends is not timed. The drivers run
alternately (`--alternate` times each), so a busy machine disturbs both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import time
from typing import Any

import uvloop

SECRET = "b" * 32
REQUESTS = {
    "sse": b"GET /api/stream/prices HTTP/1.1\r\nHost: bench\r\n\r\n",
    "ws": b"GET /api/stream/ws?streams=prices HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
}


async def measure(driver: str, connections: int, rounds: int, read: bool = True, proto: str = "sse") -> float:
    """CPU microseconds per delivery (median over rounds)."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from tickwire.config import load_settings
    from tickwire.core.event import Event
    from tickwire.core.ids import Position
    from tickwire.drivers.uvicorn_http import ConnectionGuard, uvicorn_http_protocol
    from tickwire.drivers.uvicorn_ws import uvicorn_ws_protocol
    from tickwire.server.app import create_app

    settings = load_settings(
        env={
            "TICKWIRE_SECRET": SECRET,
            "TICKWIRE_THROTTLE_MS": "0",
            "TICKWIRE_DRIVER": driver,
            "TICKWIRE_CONNECT_RATE": "0",
            "TICKWIRE_MAX_CONNS_PER_IP": "0",
            "TICKWIRE_LOG_LEVEL": "warning",
        }
    )
    app = create_app(settings)
    guard = ConnectionGuard(max_head_bytes=8192, head_timeout_s=10, max_conns_per_ip=0)
    cls: Any = uvicorn_http_protocol(guard, native=settings.driver == "native")
    ws: Any = uvicorn_ws_protocol(native=settings.driver == "native")
    config = Config(app, http=cls, ws=ws, lifespan="off", access_log=False, log_level="warning")
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: cls(config=config, server_state=state, app_state={}), "127.0.0.1", 0, backlog=4096
    )
    port = server.sockets[0].getsockname()[1]
    clients = []
    for _ in range(connections):
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, REQUESTS[proto])
        clients.append(sock)
    hub = app.state.node.hub
    while sum(len(s.subscriptions) for s in hub.connections.values()) < connections:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # the hub has no event for "subscribed"
    await asyncio.sleep(0.2)
    _read_all(clients)
    pad = "x" * 120
    times = []
    for n in range(rounds):
        data = {
            "symbol": "BENCH",
            "price": 1.5,
            "seq": n,
            "pad": pad,
            "timestamp": "2026-12-06T00:00:00.000Z",
        }
        event = Event("price:update", data, "prices", Position(1, n + 1, 0), 1_796_000_000_000 + n)
        event.key, event.tick = "BENCH", True
        started = time.process_time()
        delivered = hub.dispatch(event)
        await asyncio.sleep(0)  # the flusher's turn: every ready connection is written
        times.append(time.process_time() - started)
        assert delivered == connections, delivered
        if read:
            _read_all(clients)
    await app.state.close_connections()
    server.close()
    for sock in clients:
        sock.close()
    return statistics.median(times) / connections * 1e6


def _read_all(clients: list[socket.socket]) -> None:
    for sock in clients:
        while True:
            try:
                if not sock.recv(1 << 16):
                    raise SystemExit("the server closed a connection")
            except BlockingIOError:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proto", choices=sorted(REQUESTS), default="sse")
    parser.add_argument("--drivers", default="asgi,native", help="comma-separated [asgi,native]")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--alternate", type=int, default=3, help="runs per driver, alternating [3]")
    parser.add_argument(
        "--no-read",
        action="store_true",
        help="leave the client ends unread (a few rounds fit in the socket buffers): under callgrind, "
        "only the server's side is counted",
    )
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    for _ in range(args.alternate):
        for driver in args.drivers.split(","):
            us = uvloop.run(measure(driver, args.connections, args.rounds, not args.no_read, args.proto))
            results.setdefault(driver, []).append(us)
            print(f"{args.proto} {driver}: {us:.2f} us CPU per delivery", flush=True)
    for driver, values in results.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(
            f"{driver}: median {statistics.median(values):.2f} us per delivery ({shown}; {args.connections} conns)"
        )


if __name__ == "__main__":
    main()
