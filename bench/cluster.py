"""The Redis broker scenarios (`redis*-*`, `pub-redis-*`): 1 or 2 tickwire nodes on one private
redis-server, one wireload instance per node, their reports merged into one row; and the
`workers*` scenarios: one `tickwire serve --workers N` on a private redis-server.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from accounting import CLK_TCK, OtherCpu, process_jiffies
from procs import (
    CLIENT_CPU,
    ROOT,
    Server,
    free_port,
    mint_token,
    tickwire_env,
    tickwire_server,
    worker_pids,
)
from scenarios import BenchError, Result, Scenario, Setup
from wireload import BODY_TEMPLATE, check_exit, parse_report, time_limit, wireload_argv


def redis_server(port: int, nice: int, workdir: Path) -> Server:
    """A private redis-server (no persistence) pinned to CLIENT_CPU: the node(s) keep CPU 0."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed: the redis* scenarios need it")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return Server([*argv, "--dir", str(workdir)], None, port, nice, workdir, cpu=CLIENT_CPU)


def merge_reports(reports: list[dict[str, Any]], node_cpu: list[float], redis_cpu: float) -> dict[str, Any]:
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
            start_nodes(nodes, scenario.nodes, f"redis://127.0.0.1:{redis.port}/0", secret, setup)
            token = mint_token(setup, tickwire_env(setup.src, nodes[0].port, secret))
            runs = wireload_runs(scenario, nodes, token, setup)
            report, other_pct = run_instances(runs, nodes, redis, setup)
        finally:
            for node in nodes:
                node.stop()
            redis.stop()
    return Result(scenario, report, time.monotonic() - start, other_pct)


def start_nodes(nodes: list[Server], count: int, broker: str, secret: str, setup: Setup) -> None:
    """Start `count` nodes on `broker` (node i on CPU i % 2), appended to `nodes` as they start (so
    that the caller stops every started one), and wait until all are ready."""
    for i in range(count):
        port = free_port()
        env = {**tickwire_env(setup.src, port, secret), "TICKWIRE_BROKER": broker}
        nodes.append(tickwire_server(setup, env, port, cpu=str(i % 2)))
    for node in nodes:
        node.wait_http_ready("/readyz")


def wireload_runs(scenario: Scenario, nodes: list[Server], token: str, setup: Setup) -> list[list[str]]:
    """The command line of wireload instance i: subscribers on node i, publishing on node i + 1."""
    runs = []
    count = len(nodes)
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
    return runs


def run_instances(
    runs: list[list[str]], nodes: list[Server], redis: Server, setup: Setup
) -> tuple[dict[str, Any], float]:
    """Run the wireload instances at the same time: the merged report and the CPU others used."""
    others = OtherCpu([n.pid for n in nodes] + [redis.pid])
    redis0 = process_jiffies(redis.pid)
    t0 = time.monotonic()
    limit = time_limit(setup.duration)
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
        check_exit(proc.returncode, err, setup.verbose)
    for node in nodes:
        node.check_alive()
    reports = [parse_report(out) for out, _ in outputs]
    node_cpu = [float(r.get("server_cpu_pct", 0)) for r in reports]
    return merge_reports(reports, node_cpu, redis_pct), other_pct


def run_workers(scenario: Scenario, setup: Setup) -> Result:
    """`tickwire serve --workers N` on one redis-server: the supervisor and its N workers on
    CPU 0, one wireload on CPU 1 subscribing and publishing through the shared port; the
    server's CPU is the sum over the supervisor and every worker."""
    start = time.monotonic()
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="tickwire-bench-workers-") as workdir:
        redis = redis_server(free_port(), setup.nice, Path(workdir))
        port = free_port()
        env = {
            **tickwire_env(setup.src, port, secret),
            "TICKWIRE_BROKER": f"redis://127.0.0.1:{redis.port}/0",
            "TICKWIRE_WORKERS": str(scenario.nodes),
        }
        server: Server | None = None
        try:
            redis.wait_tcp_ready()
            server = tickwire_server(setup, env, port)
            server.wait_http_ready("/readyz")
            pids = [server.pid, *(worker_pids(server.pid, scenario.nodes) if scenario.nodes > 1 else [])]
            token = mint_token(setup, env)
            base = f"127.0.0.1:{port}"
            sub = (
                f"ws://{base}/api/stream/ws?streams=prices"
                if scenario.proto == "ws"
                else f"http://{base}/api/stream/prices"
            )
            argv = wireload_argv(
                scenario, sub, f"http://{base}/api/publish", pids[0], setup.duration, setup.nice
            )
            for pid in pids[1:]:
                argv += ["--server-pid", str(pid)]
            argv += ["--pub-header", f"Authorization: Bearer {token}"]
            report, other_pct = run_instances([argv], [server], redis, setup)
            report["cluster_note"] = (
                f"{scenario.nodes} worker(s) on CPU 0; redis-server {report['redis_cpu_pct']:.0f}%; "
                f"publish rate {report.get('publish_rate', 0):.0f}/s"
            )
        finally:
            if server is not None:
                server.stop()
            redis.stop()
    return Result(scenario, report, time.monotonic() - start, other_pct)
