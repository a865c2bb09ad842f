"""`tickwire serve --workers N`: processes sharing one port (SO_REUSEPORT) and, through a
real Redis, their events; and the clear refusal of several workers on the memory broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from support.e2e_client import SSEClient
from support.redis_server import RedisServer, redis_node, require_redis_server
from support.servers import SECRET, ServerProcess
from tickwire.config import Settings
from tickwire.workers import Supervisor

PUBLISH_TOKEN_ROLES = ("publisher",)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server()).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def workers(redis: RedisServer) -> Iterator[ServerProcess]:
    node = redis_node(redis.url)
    node.args = ("--workers", "2")
    node.start()
    yield node
    node.stop()


# -- which worker holds a connection (Linux /proc) --------------------------------------------


def worker_pids(supervisor: int) -> list[int]:
    with open(f"/proc/{supervisor}/task/{supervisor}/children") as f:
        return [int(pid) for pid in f.read().split()]


def socket_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
                if (local, remote) == (server_port, client_port):
                    return fields[9]
    return None


def owner(pids: list[int], server_port: int, sock: socket.socket) -> int | None:
    """The worker process that accepted the server side of `sock`."""
    inode = socket_inode(server_port, sock.getsockname()[1])
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def http(sock: socket.socket, request: bytes) -> bytes:
    """One keep-alive request on `sock`; the response (head and body, Content-Length)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def connection_on(node: ServerProcess, pid: int, pids: list[int]) -> socket.socket:
    """A keep-alive connection that worker `pid` accepted (SO_REUSEPORT picks by hash)."""
    for _ in range(64):
        sock = socket.create_connection(("127.0.0.1", node.port), timeout=5)
        http(sock, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")  # accepted by now
        if owner(pids, node.port, sock) == pid:
            return sock
        sock.close()
    raise AssertionError(f"no connection reached worker {pid} in 64 tries")


def test_an_event_published_to_one_worker_reaches_a_client_of_the_other(workers: ServerProcess) -> None:
    assert workers.proc is not None
    pids = worker_pids(workers.proc.pid)
    user = "alice-workers"
    clients = []
    for _ in range(64):  # a stream on each worker
        client = SSEClient(workers.url, "/api/stream/orders", token=workers.token(user))
        clients.append((owner(pids, workers.port, client.sock), client))
        if len({pid for pid, _ in clients} - {None}) == 2:
            break
    by_worker = {pid: client for pid, client in clients}
    assert len(by_worker) == 2, "SO_REUSEPORT should spread connections over both workers"
    for pid in by_worker:
        other = next(p for p in by_worker if p != pid)
        body = orjson.dumps(
            {
                "type": "order:update",
                "user": user,
                "data": {"orderId": f"o-{pid}", "symbol": "AAPL", "side": "buy", "qty": 1, "status": "new"},
            }
        )
        token = workers.token("feed", *PUBLISH_TOKEN_ROLES)
        with connection_on(workers, pid, pids) as sock:
            response = http(
                sock,
                b"POST /api/publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body,
            )
        assert response.startswith(b"HTTP/1.1 200"), response
        received = by_worker[other]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(
                orjson.loads(e.data).get("orderId") == f"o-{pid}" for e in received.of_type("order:update")
            ):
                break
            received.read_for(0.2)
        else:
            raise AssertionError(f"the order published on {pid} never reached the client of {other}")
    for _, client in clients:
        client.close()


def test_several_workers_on_the_memory_broker_exit_with_a_clear_error() -> None:
    env = {**os.environ, "TICKWIRE_SECRET": SECRET, "TICKWIRE_BROKER": "memory"}
    done = subprocess.run(
        [sys.executable, "-m", "tickwire", "serve", "--workers", "2", "--port", "0"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"workers=2 needs a shared broker" in done.stderr
    assert b"redis://" in done.stderr


def _crash(settings: Settings, sockets: list[socket.socket]) -> None:
    raise SystemExit(3)


def test_a_worker_that_dies_at_start_stops_the_supervisor_with_an_error() -> None:
    settings = Settings(secret=SECRET, broker="redis://127.0.0.1:1/0", workers=2, port=0)
    assert Supervisor(settings, _crash).serve() == 1


def test_workers_of_a_killed_supervisor_stop_by_themselves(redis: RedisServer) -> None:
    node = redis_node(redis.url)
    node.args = ("--workers", "2")
    node.start()
    try:
        assert node.proc is not None
        pids = [pid for pid in worker_pids(node.proc.pid) if Path(f"/proc/{pid}/fd").exists()]
        node.kill()  # SIGKILL: the supervisor cannot tell its workers
        deadline = time.monotonic() + 15
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in pids if _running(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, "a worker outlived its supervisor"
    finally:
        node.stop()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_whose_supervisor_died_while_it_started_stops_at_once() -> None:
    """The supervisor's pid is handed down, not read at start: a worker whose supervisor was
    killed before it looked sees a parent that is no longer its supervisor, and stops."""
    code = "from tickwire.workers import _stop_when_orphaned; _stop_when_orphaned(2**22 + 1)"
    done = subprocess.run([sys.executable, "-c", code], timeout=30, check=False)
    assert done.returncode == -signal.SIGTERM
