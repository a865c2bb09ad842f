"""Fan-out benchmarks of tickwire with wireload (see bench/README.md and BENCHMARKS.md).

Each scenario starts a fresh server pinned to core 0 (`tickwire serve`, or wireload's own
reference server for the `ref-*` scenarios), waits until it is ready, runs
`wireload fanout` pinned to core 1 against it, reads wireload's one-line JSON report and
stops the server. Results are printed as a markdown table; `--record` appends them to
BENCHMARKS.md under a heading for the date, with the command line that produced them.

    python bench/run.py                      # the bar: sse-1000x20
    python bench/run.py --ladder             # sse-1000x{10,20,50,100,200}, stops at the first FAIL
    python bench/run.py --only ref-1000x100  # wireload's reference server, for comparison
    python bench/run.py --ladder --record    # ... and append the rows to BENCHMARKS.md

The server runs from a snapshot of src/ taken when the command starts, so every scenario of one
command measures the same code even while src/ is being edited.

Standard library only; needs Linux, `taskset` and two CPUs (0 and 1).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WIRELOAD = ROOT / "build" / "wireload" / "wireload"
BENCHMARKS = ROOT / "BENCHMARKS.md"
SERVER_CPU = "0"
CLIENT_CPU = "1"

BODY_TEMPLATE = (
    '{"type":"price:update","data":{"symbol":"BENCH","price":1.5,"seq":{{seq}},"ts":{{ts}},"pad":"{{pad}}"}}'
)
MESSAGE_SIZE = 200
WARMUP_S = 2
DEFAULT_DURATION_S = 10
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PASS_RATIO = 0.999
PASS_P99_MS = 100.0
OTHER_CPU_NOTE_PCT = 5.0
DISTURBED_PCT = 15.0  # a run in which other processes used more CPU than this is run again


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str  # "tickwire" or "ref"
    conns: int
    rate: int
    proto: str = "sse"  # "sse" or "ws"
    nodes: int = 0  # server "redis": this many tickwire nodes on one private redis-server


BAR = Scenario("sse-1000x20", "tickwire", 1000, 20)
LADDER = tuple(Scenario(f"sse-1000x{rate}", "tickwire", 1000, rate) for rate in (10, 20, 50, 100, 200))
REFERENCE = Scenario("ref-1000x100", "ref", 1000, 100)
REFERENCE_AT_BAR = Scenario("ref-1000x20", "ref", 1000, 20)  # the bar's load, for a like-for-like comparison
WS_BAR = Scenario("ws-1000x20", "tickwire", 1000, 20, "ws")
WS_LADDER = tuple(
    Scenario(f"ws-1000x{rate}", "tickwire", 1000, rate, "ws") for rate in (10, 20, 50, 100, 200)
)
REFERENCE_WS = Scenario("ref-ws-1000x20", "ref", 1000, 20, "ws")
# The Redis broker (see run_cluster): 1 node, or 2 nodes with the subscribers split across them
# and every message published on the other node than the one delivering it.
REDIS_FANOUT = tuple(
    Scenario(f"redis{n}-1000x{rate}", "redis", 1000, rate, nodes=n) for n in (1, 2) for rate in (20, 50, 80)
)
# Publish throughput: one subscriber, the POST rate is what is measured (memory vs Redis).
PUBLISH = tuple(Scenario(f"pub-mem-1x{rate}", "tickwire", 1, rate) for rate in (1000, 2000, 3000)) + tuple(
    Scenario(f"pub-redis-1x{rate}", "redis", 1, rate, nodes=1) for rate in (1000, 2000, 3000)
)
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (BAR, *LADDER, REFERENCE, REFERENCE_AT_BAR, *WS_LADDER, REFERENCE_WS, *REDIS_FANOUT, *PUBLISH)
}


@dataclass
class Result:
    scenario: Scenario
    report: dict[str, Any]
    elapsed_s: float
    other_cpu_pct: float  # CPU used by processes other than the server and wireload, % of one core

    @property
    def passed(self) -> bool:
        return bool(self.report.get("pass"))


@dataclass(frozen=True)
class Setup:
    """How every scenario of one command runs."""

    python: str  # the interpreter with tickwire's dependencies (the project's venv)
    src: Path  # the snapshot of src/ the server runs from
    duration: int
    nice: int = 0
    verbose: bool = False
    profile_dir: Path | None = None


class BenchError(Exception):
    """A scenario could not be run at all (not a FAIL verdict: a broken setup)."""


# -- servers ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def venv_python() -> str:
    candidate = ROOT / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def tickwire_env(src: Path, port: int, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    env.update(
        {
            "PYTHONPATH": str(src),
            "TICKWIRE_HOST": "127.0.0.1",
            "TICKWIRE_PORT": str(port),
            "TICKWIRE_SECRET": secret,
            "TICKWIRE_CONNECT_RATE": "0",
            "TICKWIRE_THROTTLE_MS": "0",
            "TICKWIRE_LOG_LEVEL": "warning",
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


@contextlib.contextmanager
def started(scenario: Scenario, setup: Setup) -> Iterator[tuple[Server, list[str], str, str]]:
    """The running server, the extra wireload arguments and the sub/pub URLs."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if scenario.server == "tickwire":
        secret = secrets.token_hex(32)
        env = tickwire_env(setup.src, port, secret)
        server = Server([setup.python, "-m", "tickwire", "serve"], env, port, setup.nice, setup.src)
        try:
            server.wait_http_ready("/readyz")
            token = mint_token(setup, env)
            extra = ["--pub-header", f"Authorization: Bearer {token}"]
            sub = f"{base}/api/stream/prices"
            if scenario.proto == "ws":  # one socket subscribed to `prices` by its URL
                sub = f"ws://127.0.0.1:{port}/api/stream/ws?streams=prices"
            yield server, extra, sub, f"{base}/api/publish"
        finally:
            server.stop()
    elif scenario.server == "ref":
        argv = [str(WIRELOAD), "serve", "--port", str(port), "--proto", scenario.proto]
        server = Server(argv, None, port, setup.nice, ROOT)
        try:
            server.wait_tcp_ready()
            sub = f"ws://127.0.0.1:{port}/sub" if scenario.proto == "ws" else f"{base}/sub"
            yield server, [], sub, f"{base}/pub"
        finally:
            server.stop()
    else:
        raise BenchError(f"unknown server kind {scenario.server!r}")


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


# -- machine load -------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int, int]:
    """(user+nice+system, all non-idle, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    procs = user + nice + system
    return procs, procs + irq + softirq + steal, sum(fields)


def process_jiffies(pid: int) -> int:
    """utime+stime of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def machine_busy_pct(seconds: float = 1.0) -> float:
    """Share of all CPUs that is not idle over `seconds`, in percent."""
    _, busy0, total0 = machine_jiffies()
    time.sleep(seconds)
    _, busy1, total1 = machine_jiffies()
    return 100.0 * (busy1 - busy0) / max(1, total1 - total0)


def wait_quiet(max_busy_pct: float, max_wait_s: float) -> float:
    """Wait until the machine is quiet (before starting a server); returns the last busy share."""
    deadline = time.monotonic() + max_wait_s
    busy = machine_busy_pct()
    warned = False
    while busy > max_busy_pct and time.monotonic() < deadline:
        if not warned:
            print(
                f"  the machine is busy ({busy:.0f}% of all CPUs used by other processes); "
                f"waiting up to {max_wait_s:.0f} s for it to drop below {max_busy_pct:.0f}% ...",
                file=sys.stderr,
                flush=True,
            )
            warned = True
        time.sleep(2)
        busy = machine_busy_pct()
    if busy > max_busy_pct:
        print(f"  still busy ({busy:.0f}%): running anyway, see the notes column", file=sys.stderr)
    return busy


class OtherCpu:
    """CPU time of every process except the ones we know about, over a window."""

    def __init__(self, known_pids: list[int]) -> None:
        self.known_pids = known_pids
        self.t0 = time.monotonic()
        self.machine0 = machine_jiffies()[0]
        self.known0 = sum(process_jiffies(pid) for pid in known_pids)
        self.children0 = _children_jiffies()

    def pct(self) -> float:
        """% of one core used by the others since the start (wireload counts once it is reaped)."""
        elapsed = time.monotonic() - self.t0
        machine = machine_jiffies()[0] - self.machine0
        known = sum(process_jiffies(pid) for pid in self.known_pids) - self.known0
        children = _children_jiffies() - self.children0
        other = machine - known - children
        return max(0.0, 100.0 * other / CLK_TCK / max(elapsed, 1e-3))


def _children_jiffies() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * CLK_TCK


# -- one scenario -------------------------------------------------------------------------------------


def wireload_argv(
    scenario: Scenario,
    sub_url: str,
    pub_url: str,
    pid: int,
    duration: int,
    nice: int,
    cpu: str = CLIENT_CPU,
    body: str = BODY_TEMPLATE,
) -> list[str]:
    return [
        *pinned(cpu, nice), str(WIRELOAD), "fanout", "--json", "--proto", scenario.proto,
        "--sub-url", sub_url, "--pub-url", pub_url, "--server-pid", str(pid),
        "--body-template", body,
        "--conns", str(scenario.conns), "--rate", str(scenario.rate), "--size", str(MESSAGE_SIZE),
        "--duration", str(duration), "--warmup", str(WARMUP_S),
        "--pass-ratio", str(PASS_RATIO), "--pass-p99-ms", str(PASS_P99_MS),
        "--label", scenario.name,
    ]  # fmt: skip


def parse_report(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            report = json.loads(line)
            if isinstance(report, dict):
                return report
    raise BenchError("wireload printed no JSON report")


def run_scenario(scenario: Scenario, setup: Setup) -> Result:
    if scenario.server == "redis":
        return run_cluster(scenario, setup)
    start = time.monotonic()
    with started(scenario, setup) as (server, extra, sub_url, pub_url):
        argv = wireload_argv(scenario, sub_url, pub_url, server.pid, setup.duration, setup.nice) + extra
        if setup.verbose:
            shown = [("Authorization: Bearer ..." if a.startswith("Authorization:") else a) for a in argv]
            print("+ " + shlex.join(shown), file=sys.stderr)
        # wireload bounds every phase itself (and has a watchdog); this is only a backstop.
        limit = 60 + 1 + WARMUP_S + setup.duration + 5 + 60
        profiler = None
        if setup.profile_dir is not None and scenario.server == "tickwire":
            profiler = start_profiler(server.pid, scenario, setup.duration, setup.profile_dir)
        known = [server.pid] + ([profiler.pid] if profiler is not None else [])
        others = OtherCpu(known)
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=limit, check=False)
            other_pct = others.pct()
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"wireload did not finish within {limit} s") from exc
        finally:
            if profiler is not None:
                finish_profiler(profiler)
        if setup.verbose or done.returncode != 0:
            sys.stderr.write(done.stderr)
        if done.returncode != 0:
            raise BenchError(f"wireload exited with status {done.returncode}")
        server.check_alive()
        report = parse_report(done.stdout)
    return Result(scenario, report, time.monotonic() - start, other_pct)


def start_profiler(pid: int, scenario: Scenario, duration: int, out_dir: Path) -> subprocess.Popen[bytes]:
    """`py-spy record` attached to the server for connect + idle + warm-up + measure."""
    pyspy = shutil.which("py-spy") or str(Path(venv_python()).parent / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{scenario.name}.txt"
    n = 1
    while output.exists():  # --repeat: keep every run's stacks
        n += 1
        output = out_dir / f"{scenario.name}-{n}.txt"
    seconds = 2 + 1 + WARMUP_S + duration
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


# -- the Redis broker: 1 or 2 nodes on one private redis-server --------------------------------------


def redis_server(port: int, nice: int, workdir: Path) -> Server:
    """A private redis-server (no persistence) pinned to CLIENT_CPU: the node(s) keep CPU 0."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed: the redis* scenarios need it")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return Server([*argv, "--dir", str(workdir)], None, port, nice, workdir, cpu=CLIENT_CPU)


def _merge_reports(reports: list[dict[str, Any]], node_cpu: list[float], redis_cpu: float) -> dict[str, Any]:
    """One row for several wireload instances that ran at the same time."""
    if len(reports) == 1:
        merged = dict(reports[0])
    else:
        lat = [r.get("lat_ms", {}) for r in reports]
        expected = sum(r.get("expected", 0) for r in reports)
        delivered = sum(r.get("delivered", 0) for r in reports)
        merged = {
            "conns_ok": sum(r.get("conns_ok", 0) for r in reports),
            "conns_failed": sum(r.get("conns_failed", 0) for r in reports),
            "conns_dropped": sum(r.get("conns_dropped", 0) for r in reports),
            "expected": expected,
            "delivered": delivered,
            "delivery_ratio": delivered / expected if expected else 0.0,
            "deliveries_per_s": sum(r.get("deliveries_per_s", 0) for r in reports),
            "lat_ms": {k: max(x.get(k, 0) for x in lat) for k in ("p50", "p90", "p99", "max")},
            "server_cpu_pct": sum(node_cpu),
            "client_cpu_pct": sum(r.get("client_cpu_pct", 0) for r in reports),
            "rss_per_conn_kb": sum(r.get("rss_per_conn_kb", 0) for r in reports) / len(reports),
            "published": sum(r.get("published", 0) for r in reports),
            "pub_target": sum(r.get("pub_target", 0) for r in reports),
            "publish_errors": sum(r.get("publish_errors", 0) for r in reports),
            "pub_rtt_p99_ms": max(r.get("pub_rtt_p99_ms", 0) for r in reports),
            "pub_lag_p99_ms": max(r.get("pub_lag_p99_ms", 0) for r in reports),
            "gaps": sum(r.get("gaps", 0) for r in reports),
            "conns_with_gaps": sum(r.get("conns_with_gaps", 0) for r in reports),
            "dups": sum(r.get("dups", 0) for r in reports),
            "pass": all(r.get("pass") for r in reports),
            "instances": reports,
        }
    per_node = " / ".join(f"{c:.0f}%" for c in node_cpu)
    merged["cluster_note"] = (
        f"{len(node_cpu)} node(s), CPU per node {per_node}; redis-server {redis_cpu:.0f}%; "
        f"publish rate {sum(r.get('publish_rate', 0) for r in reports):.0f}/s"
    )
    merged["node_cpu_pct"] = node_cpu
    merged["redis_cpu_pct"] = redis_cpu
    return merged


def run_cluster(scenario: Scenario, setup: Setup) -> Result:
    """`nodes` tickwire nodes on one redis-server. With 1 node it is the bar's setup with the
    Redis broker (node on CPU 0; wireload and redis-server on CPU 1). With 2 nodes (node i on
    CPU i), wireload instance i holds conns/2 subscribers on node i, filtered to its own symbol,
    and publishes that symbol to the OTHER node, so every delivery crossed Redis; the instances
    run at the same time, pinned to the other CPU than their subscribers' node."""
    start = time.monotonic()
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="tickwire-bench-redis-") as workdir:
        redis = redis_server(free_port(), setup.nice, Path(workdir))
        nodes: list[Server] = []
        try:
            redis.wait_tcp_ready()
            broker = f"redis://127.0.0.1:{redis.port}/0"
            for i in range(scenario.nodes):
                port = free_port()
                env = {**tickwire_env(setup.src, port, secret), "TICKWIRE_BROKER": broker}
                argv = [setup.python, "-m", "tickwire", "serve"]
                nodes.append(Server(argv, env, port, setup.nice, setup.src, cpu=str(i % 2)))
            for node in nodes:
                node.wait_http_ready("/readyz")
            token = mint_token(setup, tickwire_env(setup.src, nodes[0].port, secret))
            runs = []
            count = scenario.nodes
            for i in range(count):
                sub_node, pub_node = nodes[i], nodes[(i + 1) % count]
                symbol = f"BENCH{i}"
                part = Scenario(scenario.name, "tickwire", scenario.conns // count, scenario.rate)
                argv = wireload_argv(
                    part,
                    f"http://127.0.0.1:{sub_node.port}/api/stream/prices?symbols={symbol}",
                    f"http://127.0.0.1:{pub_node.port}/api/publish",
                    sub_node.pid,
                    setup.duration,
                    setup.nice,
                    cpu=str((i + 1) % 2) if count > 1 else CLIENT_CPU,
                    body=BODY_TEMPLATE.replace('"BENCH"', f'"{symbol}"'),
                )
                runs.append([*argv, "--pub-header", f"Authorization: Bearer {token}"])
            others = OtherCpu([n.pid for n in nodes] + [redis.pid])
            redis0 = process_jiffies(redis.pid)
            t0 = time.monotonic()
            limit = 60 + 1 + WARMUP_S + setup.duration + 5 + 60
            procs = [
                subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for argv in runs
            ]
            outputs = []
            try:
                for proc in procs:
                    outputs.append(proc.communicate(timeout=limit))
            except subprocess.TimeoutExpired as exc:
                for proc in procs:
                    proc.kill()
                raise BenchError(f"wireload did not finish within {limit} s") from exc
            redis_pct = 100.0 * (process_jiffies(redis.pid) - redis0) / CLK_TCK / (time.monotonic() - t0)
            other_pct = others.pct()
            for proc, (_, err) in zip(procs, outputs, strict=True):
                if setup.verbose or proc.returncode != 0:
                    sys.stderr.write(err)
                if proc.returncode != 0:
                    raise BenchError(f"wireload exited with status {proc.returncode}")
            for node in nodes:
                node.check_alive()
            reports = [parse_report(out) for out, _ in outputs]
            node_cpu = [float(r.get("server_cpu_pct", 0)) for r in reports]
            report = _merge_reports(reports, node_cpu, redis_pct)
        finally:
            for node in nodes:
                node.stop()
            redis.stop()
    return Result(scenario, report, time.monotonic() - start, other_pct)


# -- output -------------------------------------------------------------------------------------------

HEADER = (
    "| scenario | conns | msg/s | delivered ratio | deliveries/s | p50 ms | p99 ms | max ms "
    "| server CPU % | wireload CPU % | RSS/conn kB | verdict | notes |"
)
RULE = "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"


def _num(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "?"


def notes(result: Result) -> str:
    report = result.report
    out: list[str] = []
    if result.other_cpu_pct >= OTHER_CPU_NOTE_PCT:
        out.append(f"other processes used {result.other_cpu_pct:.0f}% of a core during the run")
    if report.get("conns_failed"):
        out.append(f"{report['conns_failed']} conns failed {json.dumps(report.get('fail_reasons', {}))}")
    if report.get("conns_dropped"):
        out.append(f"{report['conns_dropped']} conns dropped {json.dumps(report.get('drop_reasons', {}))}")
    published, target = report.get("published", 0), report.get("pub_target", 0)
    if published < target:
        out.append(f"published {published}/{target}")
    if report.get("publish_errors"):
        out.append(f"{report['publish_errors']} publish errors {json.dumps(report.get('pub_reasons', {}))}")
    lag = report.get("pub_lag_p99_ms")
    if isinstance(lag, int | float) and lag >= 10:
        out.append(f"send lag p99 {lag:.0f} ms")
    rtt = report.get("pub_rtt_p99_ms")
    if isinstance(rtt, int | float) and rtt >= 50:
        out.append(f"POST rtt p99 {rtt:.0f} ms")
    if report.get("gaps"):
        out.append(f"gaps {report['gaps']} in {report.get('conns_with_gaps')} conns")
    if report.get("dups"):
        out.append(f"dups {report['dups']}")
    cpu = report.get("client_cpu_pct")
    if isinstance(cpu, int | float) and cpu > 90:
        out.append("wireload CPU-bound: server numbers are a lower bound")
    steal = report.get("steal_pct")
    if isinstance(steal, int | float) and steal > 5:
        out.append(f"steal {steal:.0f}%")
    if report.get("interrupted"):
        out.append("interrupted")
    if report.get("cluster_note"):
        out.append(str(report["cluster_note"]))
    return "; ".join(out).replace("|", "/")


def table_row(result: Result) -> str:
    r, s = result.report, result.scenario
    lat = r.get("lat_ms", {})
    cells = [
        s.name,
        str(r.get("conns_ok", "?")) + ("" if r.get("conns_ok") == s.conns else f" of {s.conns}"),
        str(s.rate),
        _num(r.get("delivery_ratio"), 6),
        _num(r.get("deliveries_per_s"), 0),
        _num(lat.get("p50"), 1),
        _num(lat.get("p99"), 1),
        _num(lat.get("max"), 1),
        _num(r.get("server_cpu_pct"), 0),
        _num(r.get("client_cpu_pct"), 0),
        _num(r.get("rss_per_conn_kb"), 1),
        "PASS" if result.passed else "**FAIL**",
        notes(result),
    ]
    return "| " + " | ".join(cells) + " |"


def progress(index: int, total: int, result: Result) -> str:
    r = result.report
    lat = r.get("lat_ms", {})
    return (
        f"[{index}/{total}] {result.scenario.name}: {'PASS' if result.passed else 'FAIL'}  "
        f"ratio {_num(r.get('delivery_ratio'), 6)}  {_num(r.get('deliveries_per_s'), 0)} deliveries/s  "
        f"p50 {_num(lat.get('p50'), 1)} p99 {_num(lat.get('p99'), 1)} max {_num(lat.get('max'), 1)} ms  "
        f"server {_num(r.get('server_cpu_pct'), 0)}% wireload {_num(r.get('client_cpu_pct'), 0)}%  "
        f"({result.elapsed_s:.0f} s)"
    )


def machine_line() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()} (bench driver)"
    )


def snapshot_src(dest: Path) -> Path:
    """Copy src/ to `dest`/src (without caches) and return the copy."""
    target = dest / "src"
    shutil.copytree(ROOT / "src", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def src_digest(src: Path) -> str:
    """A digest of the Python sources under `src` (what a run measures, committed or not)."""
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        digest.update(str(path.relative_to(src)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def source_id(digest: str) -> str:
    """`git describe --dirty` (when there is a commit) and the digest of src/."""
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    described = done.stdout.strip() if done.returncode == 0 else ""
    return f"git {described}, src/ sha256 {digest}" if described else f"src/ sha256 {digest} (no commit)"


def record(rows: Sequence[str], command: str, duration: int, source: str) -> None:
    """Append the rows to BENCHMARKS.md under a `### <date>` heading (added unless it is the last one)."""
    now = dt.datetime.now(dt.UTC)
    heading = f"### {now:%Y-%m-%d}"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    last = [line for line in text.splitlines() if line.startswith("### ")][-1:]
    block: list[str] = []
    if last != [heading]:
        block += [heading, ""]
    block += [
        f"`{command}` at {now:%H:%M} UTC ({duration} s measured per scenario after {WARMUP_S} s warm-up; "
        f"{machine_line()}; {source})",
        "",
        HEADER,
        RULE,
        *rows,
        "",
    ]
    BENCHMARKS.write_text(text.rstrip("\n") + "\n\n" + "\n".join(block))
    print(f"appended {len(rows)} row(s) to {BENCHMARKS.relative_to(ROOT)}", file=sys.stderr)


# -- main ---------------------------------------------------------------------------------------------


def select(args: argparse.Namespace) -> list[Scenario]:
    chosen: list[Scenario] = []
    for name in args.only or []:
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        chosen.append(SCENARIOS[name])
    if args.ladder:
        chosen += [s for s in LADDER if s not in chosen]
    if args.ref and REFERENCE not in chosen:
        chosen.append(REFERENCE)
    return chosen or [BAR]


def preflight() -> None:
    if not WIRELOAD.exists():
        raise SystemExit(f"{WIRELOAD.relative_to(ROOT)} is missing: run `make wireload` first")
    if shutil.which("taskset") is None:
        raise SystemExit("taskset is missing (util-linux)")
    cpus = os.sched_getaffinity(0)
    if not {int(SERVER_CPU), int(CLIENT_CPU)} <= cpus:
        raise SystemExit(f"needs CPUs {SERVER_CPU} and {CLIENT_CPU}; this process may use {sorted(cpus)}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="tickwire fan-out benchmarks with wireload (server on CPU 0, wireload on CPU 1).",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--ladder", action="store_true", help="run the rate ladder sse-1000x{10,20,50,100,200}"
    )
    parser.add_argument(
        "--ref", action="store_true", help=f"also run {REFERENCE.name} (wireload's own server)"
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="with --ladder, do not stop at the first failing rate"
    )
    parser.add_argument(
        "--duration", type=int, default=DEFAULT_DURATION_S, metavar="S", help="measured seconds per scenario"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="run every selected scenario N times in a row [1]"
    )
    parser.add_argument(
        "--max-busy",
        type=float,
        default=10.0,
        metavar="PCT",
        help="before each scenario, wait until other processes use less than PCT%% of all CPUs [10]",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=300.0,
        metavar="S",
        help="wait at most S seconds for that (0 = do not check) [300]",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        metavar="N",
        help=f"run a scenario again, up to N times, when other processes used more than "
        f"{DISTURBED_PCT:.0f}%% of a core during it; the least disturbed run is reported [2]",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        metavar="N",
        help="run the server and wireload under `nice -n N` (negative needs root) so that other "
        "processes on a shared machine disturb them less [0]",
    )
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    parser.add_argument("--raw", type=Path, metavar="FILE", help="append wireload's JSON reports to FILE")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="attach `py-spy record` to the server, raw stacks into DIR",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the wireload command and summary")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 3600:
        parser.error("--duration must be 1..3600")
    if not 1 <= args.repeat <= 100:
        parser.error("--repeat must be 1..100")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    return args


def run_with_retries(scenario: Scenario, args: argparse.Namespace, setup: Setup) -> Result:
    """Run a scenario; run it again (up to --retries times) when other processes disturbed it.

    Returns the least disturbed run.
    """
    best: Result | None = None
    for attempt in range(1 + args.retries):
        if args.wait_quiet > 0:
            wait_quiet(args.max_busy, args.wait_quiet)
        result = run_scenario(scenario, setup)
        if best is None or result.other_cpu_pct < best.other_cpu_pct:
            best = result
        if result.other_cpu_pct < DISTURBED_PCT:
            break
        if attempt < args.retries:
            print(
                f"  disturbed: other processes used {result.other_cpu_pct:.0f}% of a core during the run "
                f"({'PASS' if result.passed else 'FAIL'}); running it again",
                file=sys.stderr,
                flush=True,
            )
    assert best is not None
    return best


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.name:14} {s.server:9} {s.conns} conns x {s.rate} msg/s")
        return 0
    preflight()
    command = shlex.join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    with tempfile.TemporaryDirectory(prefix="tickwire-bench-") as tmp:
        src = snapshot_src(Path(tmp))
        source = source_id(src_digest(src))
        setup = Setup(venv_python(), src, args.duration, args.nice, args.verbose, args.profile)
        print(f"measuring {source}", file=sys.stderr)
        results, ok = run_all([s for s in select(args) for _ in range(args.repeat)], args, setup)
    rows = [table_row(r) for r in results]
    if rows:
        print(HEADER)
        print(RULE)
        print("\n".join(rows))
    if args.record and rows:
        record(rows, command, args.duration, source)
    return 0 if ok else 1


def run_all(scenarios: list[Scenario], args: argparse.Namespace, setup: Setup) -> tuple[list[Result], bool]:
    """Run the scenarios in order; a failing ladder rate skips the higher ladder rates."""
    results: list[Result] = []
    queue = list(scenarios)
    total = len(queue)
    index = 0
    while queue:
        scenario = queue.pop(0)
        index += 1
        print(f"[{index}/{total}] {scenario.name}: running ...", file=sys.stderr, flush=True)
        try:
            result = run_with_retries(scenario, args, setup)
        except BenchError as exc:
            print(f"[{index}/{total}] {scenario.name}: ERROR {exc}", file=sys.stderr)
            return results, False
        results.append(result)
        print(progress(index, total, result), file=sys.stderr, flush=True)
        if args.raw:
            with args.raw.open("a") as raw:
                raw.write(json.dumps(result.report) + "\n")
        if args.ladder and not args.keep_going and scenario in LADDER and not result.passed:
            skipped = [s for s in queue if s in LADDER and s.rate > scenario.rate]
            if skipped:
                print(
                    f"the ladder stops at its first failing rate; skipped: {', '.join(s.name for s in skipped)}",
                    file=sys.stderr,
                )
                queue = [s for s in queue if s not in skipped]
                total -= len(skipped)
    return results, True


if __name__ == "__main__":
    sys.exit(main())
