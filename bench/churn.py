"""Churn soak: many SSE and WebSocket clients connect, read, drop and resume with their last id while
many users publish and a few clients never read; afterwards the server's connections, file
descriptors and RSS must be back at the baseline, and every client must have received every alert
of its user exactly once, in order, across all its reconnects.

    .venv/bin/python bench/churn.py                                          # 60 s, 2,000 clients, 10,000 users
    .venv/bin/python bench/churn.py --duration 10 --clients 200 --users 1000 # a quick check

One `tickwire serve` (memory broker) runs from a snapshot of src/ (or --src DIR), pinned to CPU 0;
this process is the load (asyncio: httpx for SSE, `websockets` for WebSocket, raw sockets for the
never-reading clients, the publisher) and pins itself to CPU 1. Progress goes to stderr; at the end
a PASS/FAIL per property and the load, as markdown tables, to stdout. Exit status 0 when every
property passed. How the phases go and what is read of the server: churn_soak.py; the clients:
churn_clients.py; the publisher (a process of its own): churn_publish.py; the verdicts and tables
are here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from accounting import wait_quiet
from procs import CLIENT_CPU, SERVER_CPU, free_port, tickwire_env, tickwire_server, venv_python
from scenarios import BenchError, Setup
from source import DEFAULT_SRC, snapshot_src, source_id, src_digest

if TYPE_CHECKING:
    from churn_soak import Options, Outcome


def _load_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--duration", type=float, default=60.0, metavar="S", help="seconds of churn [60]")
    add(
        "--clients",
        type=int,
        default=2000,
        metavar="N",
        help="reading clients, half SSE, half WebSocket [2000]",
    )
    add("--users", type=int, default=10_000, metavar="N", help="distinct users published to [10000]")
    add("--clients-per-user", type=int, default=4, metavar="N", help="reading clients sharing a user [4]")
    add("--user-rate", type=float, default=1.0, metavar="R", help="alerts per second per user [1]")
    add(
        "--hold",
        type=float,
        nargs=2,
        default=(1.0, 5.0),
        metavar=("MIN", "MAX"),
        help="a client drops its connection after a random hold in this range, seconds [1 5]",
    )
    add("--offline", type=float, default=0.5, metavar="S", help="then waits up to S before resuming [0.5]")
    add(
        "--abrupt",
        type=float,
        default=0.5,
        metavar="F",
        help="share of drops done with a TCP reset instead of a close [0.5]",
    )
    add("--deaf", type=int, default=5, metavar="N", help="never-reading clients on raw sockets [5]")
    add(
        "--deaf-judge-mb",
        type=float,
        default=0.0,
        metavar="MB",
        help="a never-reading connection is judged (closed by the server or not) once this much was "
        "published to its user since it connected [0: 2 x (tcp_wmem's max + the outbox) + 1 MB]",
    )
    add(
        "--flood-kbps",
        type=int,
        default=1000,
        metavar="KB",
        help="KB/s of large alerts to the never-reading clients' user (one user for all) [1000]",
    )
    add("--flood-pad", type=int, default=16384, metavar="B", help="... in alerts padded with B bytes [16384]")
    add("--seed", type=int, default=1, help="seed of the clients' random holds [1]")  # fmt: skip


def _server_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--history", type=int, default=100, metavar="N", help="TICKWIRE_USER_BUFFER [100]")
    add("--outbox-bytes", type=int, default=131_072, metavar="B", help="TICKWIRE_OUTBOX_BYTES [131072]")
    add(
        "--max-conns-per-user",
        type=int,
        default=0,
        metavar="N",
        help="TICKWIRE_MAX_CONNS_PER_USER [0: 4 x --clients-per-user]",
    )
    add("--max-batch", type=int, default=1000, metavar="N", help="events per publish request [1000]")
    add("--src", type=Path, metavar="DIR", help="run the server from a snapshot of DIR instead of src/")
    add("--nice", type=int, default=0, metavar="N", help="run the server and the load under nice N [0]")
    add(
        "--wait-quiet",
        type=float,
        default=60.0,
        metavar="S",
        help="first wait up to S for other processes to use < 10%% of the CPUs (0: do not) [60]",
    )
    add("--catchup", type=float, default=30.0, metavar="S", help="longest wait for clients to catch up [30]")
    add(
        "--settle",
        type=float,
        default=6.0,
        metavar="S",
        help="quiet seconds before reading the baseline and the after values [6]",
    )
    add(
        "--settle-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="longest wait for the server's connections to return to the baseline [30]",
    )
    add("--progress", type=float, default=5.0, metavar="S", help="a progress line every S seconds [5]")
    add(
        "--cold-baseline",
        action="store_true",
        help="take the baseline right after the history fill, without the warm-up's connection round",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    _load_options(parser)
    _server_options(parser)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.users < 1 or args.clients_per_user < 1:
        parser.error("--clients, --users and --clients-per-user must be at least 1")
    if -(-args.clients // args.clients_per_user) > args.users:
        parser.error("the clients' users (clients / clients-per-user) must be among --users")
    if not 0 < args.hold[0] <= args.hold[1] or args.duration <= 0 or args.user_rate <= 0:
        parser.error("--hold MIN MAX, --duration and --user-rate must be positive (MIN <= MAX)")
    if args.src is not None and not (args.src / "tickwire" / "__init__.py").is_file():
        parser.error(f"--src {args.src}: no tickwire package there (give the src/ folder of a checkout)")
    return args


def server_env(args: argparse.Namespace, src: Path, port: int, secret: str) -> dict[str, str]:
    env = tickwire_env(src, port, secret)  # connect rate off, throttle off, log level warning
    env.update(
        {
            "TICKWIRE_USER_BUFFER": str(args.history),
            # Each user's alert history (GET /api/alerts) bounded like its event history, so
            # that the warm-up fills both to their steady state.
            "TICKWIRE_ALERT_HISTORY": str(args.history),
            "TICKWIRE_OUTBOX_BYTES": str(args.outbox_bytes),
            "TICKWIRE_MAX_CONNS_PER_USER": str(args.max_conns_per_user or 4 * args.clients_per_user),
            "TICKWIRE_PUBLISH_MAX_BATCH": str(max(1000, args.max_batch)),
        }
    )
    return env


def options(args: argparse.Namespace) -> Options:
    from churn_soak import Options  # imported once the snapshot of src/ is on the path

    return Options(
        duration=args.duration, clients=args.clients, users=args.users, clients_per_user=args.clients_per_user,
        user_rate=args.user_rate, hold_s=tuple(args.hold), offline_s=args.offline, abrupt_share=args.abrupt,
        deaf=args.deaf, deaf_judge_bytes=judge_bytes(args), flood_kbps=args.flood_kbps, flood_pad=args.flood_pad,
        history=args.history, max_batch=args.max_batch, catchup_s=args.catchup,
        settle_timeout_s=args.settle_timeout, settle_s=args.settle, progress_s=args.progress, seed=args.seed,
        warm_round=not args.cold_baseline, nice=args.nice,
    )  # fmt: skip


def judge_bytes(args: argparse.Namespace) -> int:
    """What a never-reading connection is sent before it is judged: the most the kernel's send buffer
    takes (tcp_wmem's max) and the outbox, twice (a margin for a connection whose subscription
    started late), and 1 MB for the driver's pending write and the client's receive buffer."""
    if args.deaf_judge_mb > 0:
        return int(args.deaf_judge_mb * 1_000_000)
    try:
        wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem_max = 4 << 20
    return 2 * (wmem_max + int(args.outbox_bytes)) + (1 << 20)


def renice_groups(pids: list[int], nice: int) -> str:
    """With autogroup scheduling (the kernel's default for desktops and many VMs) a process's nice
    value only weighs against the processes of its own session; `tickwire serve` runs in a session
    of its own. So the sessions' groups get `nice` too, or other sessions' processes keep their share
    (this process's group is set back by `restore_group`)."""
    try:
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1" or not nice:
            return ""
        for pid in pids:
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError as exc:
        return f"; autogroups not reniced ({exc.strerror})"
    return f"; autogroups of the server and the load at nice {nice}"


def group_nice() -> int | None:
    """This process's autogroup nice value ("/autogroup-581 nice 0"), None without autogroups."""
    try:
        return int(Path("/proc/self/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def restore_group(nice: int | None) -> None:
    if nice is not None:
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(nice))


def pin_self(nice: int) -> str:
    """Pin this process (the load) to CLIENT_CPU when it may use both CPUs; say where it runs."""
    if nice:
        os.nice(nice)
    cpus = os.sched_getaffinity(0)
    if {int(SERVER_CPU), int(CLIENT_CPU)} <= cpus and shutil.which("taskset"):
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
        return f"server on CPU {SERVER_CPU}, load on CPU {CLIENT_CPU}"
    return f"not pinned (CPUs {sorted(cpus)})"


# -- verdicts and tables: one PASS/FAIL per property, and what the load was ---------------------------

TOLERANCE = 0.10  # fds and RSS: within 10% of the baseline
OTHER_CPU_NOTE_PCT = 5.0


@dataclass(frozen=True)
class Verdict:
    name: str
    baseline: str
    after: str
    passed: bool
    detail: str

    def row(self) -> str:
        mark = "PASS" if self.passed else "**FAIL**"
        return f"| {self.name} | {self.baseline} | {self.after} | {mark} | {self.detail} |"


def _pct(before: float, after: float) -> str:
    return f"{100.0 * (after - before) / before:+.1f}%" if before else "n/a"


def resources(o: Outcome) -> list[Verdict]:
    b, a = o.baseline, o.after
    conns = Verdict(
        "server connections (`totalClients`)",
        str(b.conns),
        str(a.conns),
        a.conns == b.conns,
        f"must equal the baseline; back {o.conns_back_s:.1f} s after the last client closed"
        if a.conns == b.conns
        else f"{a.conns - b.conns:+d} connections still open {o.conns_back_s:.0f} s after the last client closed",
    )
    objects = Verdict(
        "connection objects (`tickwire_connection_objects`)",
        f"{b.connection_objects:.0f}",
        f"{a.connection_objects:.0f}",
        a.connection_objects == b.connection_objects,
        "must equal the baseline (a higher count: connections that are closed but not freed)",
    )
    fds = Verdict(
        "open file descriptors",
        str(b.fds),
        str(a.fds),
        abs(a.fds - b.fds) <= TOLERANCE * b.fds,
        f"{_pct(b.fds, a.fds)} (within 10%); peak {o.peak.get('fds', 0):,.0f} during the load",
    )
    growth_mb = (a.rss_kb - b.rss_kb) / 1024
    per_conn = (a.rss_kb - b.rss_kb) * 1024 / max(1, o.totals.connects + o.deaf.opened)
    cold = ""
    if o.cold is not None and o.warm_round_s is not None:
        cold = f"; {o.cold.rss_kb / 1024:.0f} MB before the warm-up's connection round"
    rss = Verdict(
        "server RSS",
        f"{b.rss_kb / 1024:.0f} MB",
        f"{a.rss_kb / 1024:.0f} MB",
        abs(a.rss_kb - b.rss_kb) <= TOLERANCE * b.rss_kb,
        f"{_pct(b.rss_kb, a.rss_kb)} (within 10%): {growth_mb:+.1f} MB, {per_conn:+.0f} bytes per connection "
        f"opened; peak {o.peak.get('rss_kb', 0) / 1024:.0f} MB during the load{cold}",
    )
    return [conns, objects, fds, rss]


def chains(o: Outcome) -> list[Verdict]:
    checked = [c for c in o.clients if c.user not in o.uncertain_users]
    never = sum(1 for c in checked if c.chain.received == 0)
    gaps = sum(c.chain.gaps for c in checked)
    gap_runs = sum(c.chain.gap_runs for c in checked)
    dups = sum(c.chain.dups for c in checked)
    behind = [c for c in checked if c.chain.last != o.expected_last.get(c.user, -1)]
    missing_tail = sum(max(0, o.expected_last.get(c.user, 0) - c.chain.last) for c in behind)
    resets = sum(c.chain.resets for c in checked)
    events = sum(c.chain.received for c in checked)
    excluded = len(o.clients) - len(checked)
    chain = Verdict(
        "resume chains: every alert once, in order",
        f"{len(checked):,} clients",
        f"{events:,} alerts",
        not (gaps or dups or behind or never) and bool(checked),
        f"{gaps} missing (in {gap_runs} places), {dups} duplicate or out of order, {len(behind)} clients "
        f"short of their user's last alert ({missing_tail} alerts), {never} clients without any alert"
        + (f"; {excluded} clients of users with an unanswered publish left out" if excluded else ""),
    )
    needless = sum(c.chain.needless_resets for c in checked)
    reset = Verdict(
        "`stream:reset` only when needed",
        "0 expected",
        str(resets),
        needless == 0,
        f"{resets - needless} after the user's history (the last {o.options.history} alerts) had moved past "
        f"the client's last alert, {needless} although it still held it; at most ~{_max_offline_events(o):.1f} "
        "alerts were published to a user while one of its clients was away (offline pause + slowest connect)",
    )
    return [chain, reset]


def _max_offline_events(o: Outcome) -> float:
    """Alerts published to a user while one of its clients was away at most: the offline pause plus
    the slowest connect seen."""
    slowest = max(o.totals.connect_s, default=1.0)
    return o.options.user_rate * (o.options.offline_s + slowest)


def slow_consumers(o: Outcome) -> Verdict:
    d = o.deaf
    closes = o.after.slow_closes - o.baseline.slow_closes
    held = f", after {min(d.held_s):.0f}-{max(d.held_s):.0f} s" if d.held_s else ""
    codes = ", ".join(f"{code} x{n}" for code, n in sorted(d.ws_close_codes.items()))
    return Verdict(
        "never-reading clients closed as slow consumers",
        f"{o.options.deaf} clients",
        f"{d.closed_by_server} of {d.checked} closed",
        d.checked > 0 and d.closed_by_server == d.checked,
        f"each connection judged once {o.options.deaf_judge_bytes / 1e6:.1f} MB had been published to its user "
        f"since it connected{held} (closed: EOF or reset; WebSocket: a close frame, {codes or 'none'}); "
        f"{d.opened} connections opened, {d.bytes_read / 1e6:.1f} MB read back when judged; server "
        f"`slowConsumerCloses` {closes:+d}",
    )


def verdicts(o: Outcome) -> list[Verdict]:
    return [*resources(o), *chains(o), slow_consumers(o)]


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_rows(o: Outcome) -> list[tuple[str, str]]:
    opts, t = o.options, o.totals
    sse = sum(1 for c in o.clients if c.transport == "sse")
    s = o.load_s or 1.0
    rtt = o.post_rtt_s
    fill_events, fill_s = o.fill
    caught = "never (see the chains row)" if o.caught_up_s is None else f"{o.caught_up_s:.1f} s"
    rows = [
        ("warm-up", f"{fill_events:,} alerts in {fill_s:.0f} s ({opts.history} per user)"
         + ("" if o.warm_round_s is None else
            f", then every client connected once and closed ({o.warm_round_s:.0f} s)")),
        ("load", f"{o.load_s:.0f} s"),
        ("reading clients", f"{len(o.clients):,} ({sse:,} SSE, {len(o.clients) - sse:,} WebSocket) on "
         f"{opts.reading_users:,} users, {opts.clients_per_user} per user"),
        ("publishing users", f"{opts.users:,} at {opts.user_rate:g} `alert:new`/s each, in batches of up to "
         f"{opts.max_batch}"),
        ("alerts published", f"{o.published:,} ({o.published / s:,.0f}/s; target {o.publish_target:,}/s); "
         f"POST p50 {_quantile(rtt, 0.5) * 1e3:.0f} ms, p99 {_quantile(rtt, 0.99) * 1e3:.0f} ms, "
         f"largest lag behind the schedule {o.publish_lag_s * 1e3:.0f} ms"
         + (f"; errors {json.dumps(o.publish_errors)}" if o.publish_errors else "")),
        ("never-reading clients", f"{opts.deaf} ({(opts.deaf + 1) // 2} SSE, {opts.deaf // 2} WebSocket) on one "
         f"more user, flooded with {o.flooded:,} alerts of {opts.flood_pad // 1024} KB "
         f"({o.flooded * opts.flood_pad / 1e6:,.0f} MB, {opts.flood_kbps / 1000:g} MB/s)"),
        ("alerts received", f"{t.events:,} ({t.events / s:,.0f}/s)"),
        ("connects", f"{t.connects:,} ({t.connects / s:,.0f}/s), {t.resumes:,} of them resuming; connect p50 "
         f"{_quantile(t.connect_s, 0.5) * 1e3:.0f} ms, p99 {_quantile(t.connect_s, 0.99) * 1e3:.0f} ms"),
        ("drops", f"{t.drops:,} by the clients ({t.abrupt_drops:,} with a TCP reset), {t.server_ends} by the server"),
        ("failed connects / errors", json.dumps(dict(t.failures)) if t.failures else "0"),
        ("`connection:limit` / `auth:expired`", f"{t.limit_events} / {t.auth_expired}"),
        ("peak during the load", f"{o.peak.get('conns', 0):,.0f} server connections, {o.peak.get('fds', 0):,.0f} fds, "
         f"RSS {o.peak.get('rss_kb', 0) / 1024:.0f} MB; slowest answer to a metrics request "
         f"{o.peak.get('answer_ms', 0):,.0f} ms"),
        ("CPU (% of one core)", f"server {o.server_cpu_pct:.0f}, load process {o.load_cpu_pct:.0f}, "
         f"other processes {o.other_cpu_pct:.0f}"),
        ("catch-up after publishing stopped", caught),
    ]  # fmt: skip
    return rows


LEGEND = """\
How a FAIL reads: connections or connection objects above the baseline are connections the server
still holds, or closed ones it has not freed; fds or RSS more than 10% off are resources that did
not come back; a resume chain fails on a missing alert (a gap), one received twice or out of order,
or a client short of its user's last alert once publishing stopped (after the catch-up wait); a
`stream:reset` counts against the server when the alert after the client's last one was still in
history; a never-reading connection still open after that much was published to its user is a
slow consumer the server did not close."""


def render(o: Outcome) -> str:
    lines = ["| property | baseline | after | verdict | detail |", "|---|--:|--:|---|---|"]
    lines += [v.row() for v in verdicts(o)]
    lines += ["", "| load | |", "|---|---|"]
    lines += [f"| {name} | {value.replace('|', '/')} |" for name, value in load_rows(o)]
    return "\n".join(lines)


def problems(o: Outcome, limit: int = 10) -> list[str]:
    """The first anomalies the clients noted, for the output below the tables."""
    out: list[str] = []
    out += o.deaf.open_ones[:limit]
    for client in o.clients:
        out += client.chain.problems
        if len(out) >= limit:
            break
    return out[:limit]


# -- the command -------------------------------------------------------------------------------------


def run(args: argparse.Namespace, command: str) -> int:
    src_dir = args.src if args.src is not None else DEFAULT_SRC
    with tempfile.TemporaryDirectory(prefix="tickwire-churn-") as tmp:
        src = snapshot_src(src_dir, Path(tmp))
        source = source_id(src_dir, src_digest(src))
        sys.path.insert(0, str(src))  # the clients' SSE parser comes from the same snapshot
        from churn_soak import say, soak

        if args.wait_quiet > 0:
            wait_quiet(10.0, args.wait_quiet)
        port, secret = free_port(), secrets.token_hex(32)
        setup = Setup(venv_python(), src, int(args.duration), args.nice)
        server = tickwire_server(setup, server_env(args, src, port, secret), port)
        own_group = group_nice()
        try:
            server.wait_http_ready("/readyz")
            placement = pin_self(args.nice) + renice_groups([server.pid, os.getpid()], args.nice)
            say(f"measuring {source}; {placement}; server pid {server.pid}")
            outcome = asyncio.run(soak(options(args), server.pid, f"http://127.0.0.1:{port}", secret))
            server.check_alive()
        finally:
            server.stop()
            restore_group(own_group)
    results = verdicts(outcome)
    print(f"`{command}` ({source})\n")
    print(render(outcome))
    print(f"\n{LEGEND}")
    for line in problems(outcome):
        print(f"  {line}")
    failed = [v.name for v in results if not v.passed]
    print(f"\n{'FAIL: ' + ', '.join(failed) if failed else 'PASS: every property'}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("taskset") is None:
        raise SystemExit("taskset is missing (util-linux)")
    command = shlex.join(["python", "bench/churn.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args, command)
    except BenchError as exc:
        print(f"churn: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    if Path(sys.executable).resolve() != Path(venv_python()).resolve() and "httpx" not in sys.modules:
        try:
            import httpx  # noqa: F401
        except ImportError:  # not the project's venv: run again with it
            os.execv(venv_python(), [venv_python(), *sys.argv])
    sys.exit(main())
