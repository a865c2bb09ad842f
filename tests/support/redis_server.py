"""A private `redis-server` for tests: a free port, a temporary directory, no persistence.

It never touches the machine's own Redis (6379): every instance binds 127.0.0.1 on a port
the kernel just handed out, keeps its files in its own temp dir and writes no RDB/AOF, so a
restart really loses everything (which is what the epoch tests need).

When the binary is absent, `require_redis_server()` skips with a loud reason; the test in
tests/redis/test_redis_ci.py turns that skip into a failure when CI=true.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support.servers import ServerProcess, free_port

REDIS_SERVER = "redis-server"
MISSING = (
    "redis-server is not on PATH: the Redis broker tests did NOT run "
    "(install redis-server >= 6.2, e.g. `apt-get install redis-server`); CI fails on this skip"
)


def redis_server_path() -> str | None:
    return shutil.which(REDIS_SERVER)


def require_redis_server() -> str:
    path = redis_server_path()
    if path is None:
        pytest.skip(MISSING)
    return path


class RedisServer:
    """One redis-server process; `restart()` keeps the port and loses the data."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or require_redis_server()
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="tickwire-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self.dir) / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            "--logfile",
            str(self.log),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{self.output()}")
            if self.ping():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer PING on {self.port}:\n{self.output()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop it for good (SIGKILL: no chance to save anything, not that it would)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self.proc = None

    def restart(self, down_for: float = 0.0) -> RedisServer:
        """Kill it and start an empty one on the same port (persistence is off)."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        return self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_node(redis_url: str, env: dict[str, str] | None = None) -> ServerProcess:
    """A `tickwire serve` process (not started) on the Redis broker at `redis_url`."""
    return ServerProcess(
        {
            "TICKWIRE_BROKER": redis_url,
            "TICKWIRE_KEEPALIVE_S": "1",
            "TICKWIRE_THROTTLE_MS": "0",
            **(env or {}),
        }
    )
