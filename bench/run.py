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
    python bench/run.py --src ../baseline/src  # the bar, run from another checkout's src/

The server runs from a snapshot of src/ (or of --src DIR) taken when the command starts, so every
scenario of one command measures the same code even while the sources are being edited.

This file parses the command line and runs the selected scenarios in order; the rest is in its
sibling modules (imported as top-level modules: the script's directory is first on sys.path):
scenarios.py (the scenario tables), runner.py (one scenario), cluster.py (the Redis ones),
procs.py (pinned server processes, the profiler), accounting.py (CPU use from /proc), wireload.py
(the client's command line and report), source.py (the snapshot of the sources) and report.py
(the table and BENCHMARKS.md).

Standard library only; needs Linux, `taskset` and two CPUs (0 and 1).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from accounting import wait_quiet
from procs import venv_python
from report import HEADER, RULE, progress, record, table_row
from runner import preflight, run_scenario
from scenarios import LADDER, REFERENCE, SCENARIOS, BenchError, Result, Scenario, Setup, select
from source import DEFAULT_SRC, snapshot_src, source_id, src_digest

DEFAULT_DURATION_S = 10
DISTURBED_PCT = 15.0  # a run in which other processes used more CPU than this is run again


def _selection_options(parser: argparse.ArgumentParser) -> None:
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


def _run_options(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--src",
        type=Path,
        metavar="DIR",
        help="run the tickwire server from a snapshot of DIR, the src/ folder of another checkout "
        "(e.g. ../baseline/src), instead of this checkout's src/",
    )


def _output_options(parser: argparse.ArgumentParser) -> None:
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="tickwire fan-out benchmarks with wireload (server on CPU 0, wireload on CPU 1).",
    )
    _selection_options(parser)
    _run_options(parser)
    _output_options(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 3600:
        parser.error("--duration must be 1..3600")
    if not 1 <= args.repeat <= 100:
        parser.error("--repeat must be 1..100")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    if args.src is not None and not (args.src / "tickwire" / "__init__.py").is_file():
        parser.error(f"--src {args.src}: no tickwire package there (give the src/ folder of a checkout)")
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
    src_dir = args.src if args.src is not None else DEFAULT_SRC
    with tempfile.TemporaryDirectory(prefix="tickwire-bench-") as tmp:
        src = snapshot_src(src_dir, Path(tmp))
        source = source_id(src_dir, src_digest(src))
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
