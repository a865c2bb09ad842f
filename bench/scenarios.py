"""The benchmark scenarios: what one scenario runs (Scenario), the tables `--only`, `--ladder` and
`--ref` select from, how every scenario of one command runs (Setup) and what a run produced (Result).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str  # "tickwire" or "ref"
    conns: int
    rate: int
    proto: str = "sse"  # "sse" or "ws"
    nodes: int = 0  # server "redis": this many tickwire nodes ("workers": worker processes)


BAR = Scenario("sse-1000x20", "tickwire", 1000, 20)
LADDER = tuple(Scenario(f"sse-1000x{rate}", "tickwire", 1000, rate) for rate in (10, 20, 50, 100, 200))
REFERENCE = Scenario("ref-1000x100", "ref", 1000, 100)
REFERENCE_AT_BAR = Scenario("ref-1000x20", "ref", 1000, 20)  # the bar's load, for a like-for-like comparison
WS_BAR = Scenario("ws-1000x20", "tickwire", 1000, 20, "ws")
WS_LADDER = tuple(
    Scenario(f"ws-1000x{rate}", "tickwire", 1000, rate, "ws") for rate in (10, 20, 50, 100, 200)
)
REFERENCE_WS = Scenario("ref-ws-1000x20", "ref", 1000, 20, "ws")
# The Redis broker (see cluster.run_cluster): 1 node, or 2 nodes with the subscribers split across
# them and every message published on the other node than the one delivering it.
REDIS_FANOUT = tuple(
    Scenario(f"redis{n}-1000x{rate}", "redis", 1000, rate, nodes=n) for n in (1, 2) for rate in (20, 50, 80)
)
# `tickwire serve --workers N` on the Redis broker: one port, N processes, all pinned to CPU 0
# (wireload keeps CPU 1), so what they show is the CPU per delivery of N workers, not N cores.
WORKERS = tuple(
    Scenario(f"workers{n}-{proto}-1000x{rate}", "workers", 1000, rate, proto, nodes=n)
    for n in (1, 2)
    for proto in ("sse", "ws")
    for rate in (20, 50)
)
# Publish throughput: one subscriber, the POST rate is what is measured (memory vs Redis).
PUBLISH = tuple(Scenario(f"pub-mem-1x{rate}", "tickwire", 1, rate) for rate in (1000, 2000, 3000)) + tuple(
    Scenario(f"pub-redis-1x{rate}", "redis", 1, rate, nodes=1) for rate in (1000, 2000, 3000)
)
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        BAR,
        *LADDER,
        REFERENCE,
        REFERENCE_AT_BAR,
        *WS_LADDER,
        REFERENCE_WS,
        *REDIS_FANOUT,
        *WORKERS,
        *PUBLISH,
    )
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
    src: Path  # the snapshot of src/ (or of --src DIR) the server runs from
    duration: int
    nice: int = 0
    verbose: bool = False
    profile_dir: Path | None = None


class BenchError(Exception):
    """A scenario could not be run at all (not a FAIL verdict: a broken setup)."""


def select(args: argparse.Namespace) -> list[Scenario]:
    """`--only` ones first (in the order given), then the ladder in rate order, then `--ref`."""
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
