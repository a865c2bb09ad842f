"""Start real `tickwire serve` processes on free ports for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tickwire.server.auth import issue_token

SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One `tickwire serve` subprocess; its stderr is kept for failure messages."""

    def __init__(self, env: Mapping[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "TICKWIRE_SECRET": SECRET,
            "TICKWIRE_PORT": str(self.port),
            "TICKWIRE_HOST": "127.0.0.1",
            "TICKWIRE_CONNECT_RATE": "0",
            "TICKWIRE_MAX_CONNS_PER_IP": "0",  # every test client is 127.0.0.1; some open 1000+
            "TICKWIRE_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.args = args
        self.log = tempfile.NamedTemporaryFile(prefix="tickwire-test-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tickwire", "serve", *self.args],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tickwire exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"tickwire did not become ready:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def token(self, user: str, *roles: str, ttl: int = 3600) -> str:
        return issue_token(SECRET, user, roles, ttl)

    def publish(self, *items: dict[str, object]) -> list[str]:
        body: object = list(items) if len(items) != 1 else items[0]
        response = httpx.post(
            self.url + "/api/publish",
            json=body,
            headers={"Authorization": f"Bearer {self.token('test-publisher', 'publisher')}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        ids: list[str] = response.json()["ids"]
        return ids
