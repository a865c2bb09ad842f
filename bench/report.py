"""What a command prints and records: a progress line per scenario (stderr), the markdown table
(stdout) with its notes column, and `--record`'s block appended to BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from procs import ROOT
from scenarios import Result
from wireload import WARMUP_S

BENCHMARKS = ROOT / "BENCHMARKS.md"
OTHER_CPU_NOTE_PCT = 5.0

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
