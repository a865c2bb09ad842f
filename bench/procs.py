"""The processes a benchmark starts: servers pinned to a CPU with `taskset` (tickwire and
wireload's reference server; cluster.py adds redis-server), their readiness waits and shutdown,
free ports, the publisher token and the `py-spy` profiler attached to a server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from scenarios import BenchError, Setup

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU = "0"
CLIENT_CPU = "1"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def venv_python() -> str:
    candidate = ROOT / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def tickwire_env(src: Path, port: int, secret: str) -> dict[str, str]:
    # Only TICKWIRE_DRIVER passes through: `TICKWIRE_DRIVER=asgi bench/run.py ...` measures
    # the ASGI driver.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_") or k == "TICKWIRE_DRIVER"}
    env.update(
        {
            "PYTHONPATH": str(src),
            "TICKWIRE_HOST": "127.0.0.1",
            "TICKWIRE_PORT": str(port),
            "TICKWIRE_SECRET": secret,
            "TICKWIRE_CONNECT_RATE": "0",
            "TICKWIRE_THROTTLE_MS": "0",
            "TICKWIRE_LOG_LEVEL": "warning",
            "TICKWIRE_MAX_CONNS_PER_IP": "0",  # every load generator connection comes from 127.0.0.1
        }
    )
    return env


def pinned(cpu: str, nice: int) -> list[str]:
    """The command prefix that pins to `cpu` (and renices when `nice` is not 0)."""
    return (["nice", "-n", str(nice)] if nice else []) + ["taskset", "-c", cpu]


class Server:
    """A server process pinned to SERVER_CPU; its stderr goes to a temporary log file."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str] | None,
        port: int,
        nice: int,
        cwd: Path,
        cpu: str = SERVER_CPU,
    ) -> None:
        self.port = port
        self.log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [*pinned(cpu, nice), *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        # nice and taskset exec() the command, so this is the server itself.
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the server exited with status {self.proc.returncode}:\n{self.log_tail()}")

    def wait_http_ready(self, path: str) -> None:
        url = f"http://127.0.0.1:{self.port}{path}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise BenchError(f"{url} was not ready within {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def wait_tcp_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)
        raise BenchError(f"port {self.port} did not accept connections within {READY_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def tickwire_server(setup: Setup, env: dict[str, str], port: int, cpu: str = SERVER_CPU) -> Server:
    """`tickwire serve` from the snapshot of the sources (PYTHONPATH in `env` and working directory)."""
    return Server([setup.python, "-m", "tickwire", "serve"], env, port, setup.nice, setup.src, cpu=cpu)


def worker_pids(supervisor: int, count: int) -> list[int]:
    """The pids of the `count` workers of a `tickwire serve --workers` supervisor (its children)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
        if len(children) >= count:
            return [int(pid) for pid in children]
        time.sleep(0.1)
    raise BenchError(f"the supervisor {supervisor} did not start {count} workers")


def mint_token(setup: Setup, env: dict[str, str]) -> str:
    done = subprocess.run(
        [setup.python, "-m", "tickwire", "token", "--user", "bench", "--role", "publisher"],
        cwd=setup.src,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"`tickwire token` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


# -- the profiler -------------------------------------------------------------------------------------


def start_profiler(pid: int, name: str, seconds: int, out_dir: Path) -> subprocess.Popen[bytes]:
    """`py-spy record` attached to the server for `seconds`; raw stacks into `out_dir`/`name`.txt."""
    pyspy = shutil.which("py-spy") or str(Path(venv_python()).parent / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{name}.txt"
    n = 1
    while output.exists():  # --repeat: keep every run's stacks
        n += 1
        output = out_dir / f"{name}-{n}.txt"
    argv = [
        "taskset", "-c", CLIENT_CPU, pyspy, "record", "--pid", str(pid),
        "--rate", "100", "--duration", str(seconds), "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_profiler(proc: subprocess.Popen[bytes]) -> None:
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if proc.returncode != 0:
        print(f"py-spy failed ({proc.returncode}): {err.decode(errors='replace').strip()}", file=sys.stderr)
