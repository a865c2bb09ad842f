"""The wireload client: its command line for one scenario, the verdict thresholds it applies, its
one-line JSON report and its exit status.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from procs import CLIENT_CPU, ROOT, pinned
from scenarios import BenchError, Scenario

WIRELOAD = ROOT / "build" / "wireload" / "wireload"
BODY_TEMPLATE = (
    '{"type":"price:update","data":{"symbol":"BENCH","price":1.5,"seq":{{seq}},"ts":{{ts}},"pad":"{{pad}}"}}'
)
MESSAGE_SIZE = 200
WARMUP_S = 2
PASS_RATIO = 0.999
PASS_P99_MS = 100.0


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


def time_limit(duration: int) -> int:
    """Seconds one wireload run may take: wireload bounds every phase itself (and has a watchdog);
    this is only a backstop."""
    return 60 + 1 + WARMUP_S + duration + 5 + 60


def check_exit(returncode: int, stderr: str, verbose: bool) -> None:
    """Show wireload's stderr (its human summary) with -v or when it failed; a failure is an error."""
    if verbose or returncode != 0:
        sys.stderr.write(stderr)
    if returncode != 0:
        raise BenchError(f"wireload exited with status {returncode}")


def parse_report(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            report = json.loads(line)
            if isinstance(report, dict):
                return report
    raise BenchError("wireload printed no JSON report")
