"""One scenario end to end: a fresh server pinned to CPU 0 (tickwire, or wireload's reference server),
`wireload fanout` pinned to CPU 1 against it, its report and the CPU other processes used meanwhile.
The Redis scenarios are handed to cluster.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

from accounting import OtherCpu
from cluster import run_cluster, run_workers
from procs import (
    CLIENT_CPU,
    ROOT,
    SERVER_CPU,
    Server,
    finish_profiler,
    free_port,
    mint_token,
    start_profiler,
    tickwire_env,
    tickwire_server,
)
from scenarios import BenchError, Result, Scenario, Setup
from wireload import WARMUP_S, WIRELOAD, check_exit, parse_report, time_limit, wireload_argv


def preflight() -> None:
    """Exit with a message unless wireload is built, `taskset` exists and CPUs 0 and 1 may be used."""
    if not WIRELOAD.exists():
        raise SystemExit(f"{WIRELOAD.relative_to(ROOT)} is missing: run `make wireload` first")
    if shutil.which("taskset") is None:
        raise SystemExit("taskset is missing (util-linux)")
    cpus = os.sched_getaffinity(0)
    if not {int(SERVER_CPU), int(CLIENT_CPU)} <= cpus:
        raise SystemExit(f"needs CPUs {SERVER_CPU} and {CLIENT_CPU}; this process may use {sorted(cpus)}")


@contextlib.contextmanager
def started(scenario: Scenario, setup: Setup) -> Iterator[tuple[Server, list[str], str, str]]:
    """The running server, the extra wireload arguments and the sub/pub URLs."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if scenario.server == "tickwire":
        secret = secrets.token_hex(32)
        env = tickwire_env(setup.src, port, secret)
        server = tickwire_server(setup, env, port)
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


def run_scenario(scenario: Scenario, setup: Setup) -> Result:
    if scenario.server == "redis":
        return run_cluster(scenario, setup)
    if scenario.server == "workers":
        return run_workers(scenario, setup)
    start = time.monotonic()
    with started(scenario, setup) as (server, extra, sub_url, pub_url):
        argv = wireload_argv(scenario, sub_url, pub_url, server.pid, setup.duration, setup.nice) + extra
        if setup.verbose:
            shown = [("Authorization: Bearer ..." if a.startswith("Authorization:") else a) for a in argv]
            print("+ " + shlex.join(shown), file=sys.stderr)
        limit = time_limit(setup.duration)
        profiler = None
        if setup.profile_dir is not None and scenario.server == "tickwire":
            # connect + idle + warm-up + measure
            seconds = 2 + 1 + WARMUP_S + setup.duration
            profiler = start_profiler(server.pid, scenario.name, seconds, setup.profile_dir)
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
        check_exit(done.returncode, done.stderr, setup.verbose)
        server.check_alive()
        report = parse_report(done.stdout)
    return Result(scenario, report, time.monotonic() - start, other_pct)
