"""The phases of the churn soak (bench/churn.py), in the load process:

1. warm-up: every user's history (and alert history, TICKWIRE_ALERT_HISTORY set to the same
   bound) is filled to TICKWIRE_USER_BUFFER events, so that the server's memory for history is at
   its steady state before the baseline (it stays there: a full history drops its oldest event
   for each new one);
2. baseline: connections, file descriptors, RSS and leak gauges of the idle server;
3. load: the reading clients churn, the publisher posts at a steady rate, the never-reading clients
   wait to be closed; a progress line every few seconds;
4. end: publishing stops, every client stays connected until it has its user's last event
   (catch-up), then every client closes;
5. after: once the server is back to the baseline's connections (and a few seconds more), the same
   readings as the baseline.

Readings (`sample`): connections and leak gauges from `/api/stream/metrics` and `/metrics`, open
file descriptors and RSS from `/proc/<pid>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from accounting import CLK_TCK, OtherCpu, process_jiffies
from churn_clients import Churner, Client, ClientConfig, Deaf, DeafTotals, Totals, sse_request, ws_request
from churn_publish import Feed, Publisher, batches_of, user_name
from procs import CLIENT_CPU, pinned, venv_python

# -- readings of the server: connections and leak gauges, open file descriptors and RSS ----------------

# Prometheus gauges compared between the baseline and the end (name -> field of Sample).
GAUGES = {
    "tickwire_connection_objects": "connection_objects",
    "tickwire_ws_sockets": "ws_sockets",
    "tickwire_outbox_bytes": "outbox_bytes",
    "tickwire_buffered_events": "buffered_events",
    "tickwire_tracked_users": "tracked_users",
}


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    conns: int  # /api/stream/metrics totalClients (SSE + WebSocket)
    fds: int  # entries of /proc/<pid>/fd
    rss_kb: int  # VmRSS
    slow_closes: int  # slowConsumerCloses
    answer_ms: float = 0.0  # how long the server took to answer /api/stream/metrics (its loop's lag)
    connection_objects: float = float("nan")
    ws_sockets: float = float("nan")
    outbox_bytes: float = float("nan")
    buffered_events: float = float("nan")
    tracked_users: float = float("nan")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _gauges(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for name, attr in GAUGES.items():
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        if match:
            values[attr] = float(match.group(1))
    return values


async def sample(http: httpx.AsyncClient, base: str, pid: int) -> Sample:
    """One reading of the server: file descriptors and RSS first, then the HTTP answers (their
    own connections, closed after each, are not counted)."""
    fds, rss = fd_count(pid), rss_kb(pid)
    started = time.monotonic()
    summary = orjson.loads((await http.get(f"{base}/api/stream/metrics")).content)
    answer_ms = (time.monotonic() - started) * 1000
    prometheus = (await http.get(f"{base}/metrics")).text
    return Sample(
        at=time.monotonic(),
        conns=int(summary["totalClients"]),
        fds=fds,
        rss_kb=rss,
        slow_closes=int(summary.get("slowConsumerCloses", 0)),
        answer_ms=answer_ms,
        **_gauges(prometheus),
    )


async def settled(
    http: httpx.AsyncClient, base: str, pid: int, conns: int, timeout_s: float, quiet_s: float
) -> tuple[Sample, float]:
    """Wait until the server holds `conns` connections (at most `timeout_s`), then `quiet_s` more
    (the server's collector policy runs every 5 s), and read it. Returns the sample and how long
    the connections took to get there (or `timeout_s`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if (await sample(http, base, pid)).conns <= conns:
            break
        await asyncio.sleep(0.25)
    reached = time.monotonic() - start
    await asyncio.sleep(quiet_s)
    return await sample(http, base, pid), reached


class Cpu:
    """% of one core used by some processes: over the whole window, and since the last look."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = self.last = time.monotonic()
        self.start_jiffies = self.last_jiffies = self._jiffies()

    def _jiffies(self) -> int:
        return sum(process_jiffies(pid) for pid in self.pids)

    def since_last(self) -> float:
        now, jiffies = time.monotonic(), self._jiffies()
        pct = 100.0 * (jiffies - self.last_jiffies) / CLK_TCK / max(now - self.last, 1e-3)
        self.last, self.last_jiffies = now, jiffies
        return pct

    def total(self) -> float:
        elapsed = time.monotonic() - self.start
        return 100.0 * (self._jiffies() - self.start_jiffies) / CLK_TCK / max(elapsed, 1e-3)


# -- the phases --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    duration: float
    clients: int
    users: int
    clients_per_user: int
    user_rate: float  # events/s per publishing user
    hold_s: tuple[float, float]
    offline_s: float
    abrupt_share: float
    deaf: int
    deaf_judge_bytes: int  # a never-reading connection is judged once this much went to its user
    flood_kbps: int  # KB/s of large alerts to the never-reading clients' user
    flood_pad: int  # bytes of padding per large alert
    history: int  # TICKWIRE_USER_BUFFER
    max_batch: int
    catchup_s: float
    settle_timeout_s: float
    settle_s: float
    progress_s: float
    seed: int
    warm_round: bool  # connect every client once before the baseline
    nice: int  # of the publisher process (this process was reniced by churn.py)

    @property
    def reading_users(self) -> int:
        return math.ceil(self.clients / self.clients_per_user)

    @property
    def flooded_user(self) -> int:
        """The user every never-reading client reads: the one after the publishing users."""
        return self.users


@dataclass
class Outcome:
    options: Options
    baseline: Sample
    after: Sample
    peak: dict[str, float] = field(default_factory=dict)  # highest conns / fds / rss_kb during the load
    clients: list[Client] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    deaf: DeafTotals = field(default_factory=DeafTotals)
    published: int = 0  # steady alerts
    publish_target: int = 0  # alerts/s
    flooded: int = 0  # large alerts to the never-reading clients' user
    publish_errors: dict[str, int] = field(default_factory=dict)
    post_rtt_s: list[float] = field(default_factory=list)
    publish_lag_s: float = 0.0
    expected_last: dict[int, int] = field(default_factory=dict)  # user -> last seq published
    uncertain_users: set[int] = field(default_factory=set)
    load_s: float = 0.0
    server_cpu_pct: float = 0.0
    load_cpu_pct: float = 0.0
    other_cpu_pct: float = 0.0
    caught_up_s: float | None = None  # None: some client never got its user's last event
    conns_back_s: float = 0.0
    fill: tuple[int, float] = (0, 0.0)  # events published in the warm-up, seconds
    cold: Sample | None = None  # the server after the history fill, before any connection
    warm_round_s: float | None = None  # the warm-up's connection round, when there was one


def token(secret: str, user: str, roles: tuple[str, ...] = ()) -> str:
    claims: dict[str, object] = {"sub": user, "iat": int(time.time()), "exp": int(time.time()) + 86400}
    if roles:
        claims["roles"] = list(roles)
    return jwt.encode(claims, secret, algorithm="HS256")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def layout(opts: Options) -> list[Client]:
    """Client i reads user i // clients_per_user; even clients use SSE, odd ones WebSocket."""
    return [Client(i, i // opts.clients_per_user, "sse" if i % 2 == 0 else "ws") for i in range(opts.clients)]


async def warm_up(opts: Options, publisher: Publisher) -> tuple[int, float]:
    """Fill every user's history with small alerts (the never-reading clients' user too)."""
    started, last_say = time.monotonic(), time.monotonic()
    async with httpx.AsyncClient(timeout=120) as http:
        publisher.http = http
        for done in range(1, opts.history + 1):
            for batch in batches_of(range(opts.users + 1), opts.max_batch):
                await publisher.post(batch)
            if time.monotonic() - last_say >= opts.progress_s or done == opts.history:
                last_say = time.monotonic()
                rate = publisher.events / (last_say - started)
                say(f"  warm-up: {done}/{opts.history} alerts per user, {publisher.events:,} ({rate:,.0f}/s)")
    return publisher.events, time.monotonic() - started


@dataclass
class Rig:
    """What every phase uses: the options, the server and the publisher."""

    opts: Options
    pid: int
    base: str  # http://127.0.0.1:PORT
    secret: str
    publisher: Publisher
    control: httpx.AsyncClient  # readings of the server (no keep-alive: no idle connection counted)

    async def sample(self) -> Sample:
        return await sample(self.control, self.base, self.pid)


async def soak(opts: Options, pid: int, base: str, secret: str) -> Outcome:
    publisher = Publisher(base, token(secret, "churn-bench", ("publisher",)), opts.users + 1)
    fill = await warm_up(opts, publisher)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as control:
        rig = Rig(opts, pid, base, secret, publisher, control)
        cold, _ = await settled(control, base, pid, 0, 30.0, opts.settle_s)
        say(_reading("after the history fill", cold))
        warm_round_s = await connection_round(rig) if opts.warm_round else None
        baseline = (await settled(control, base, pid, 0, 30.0, opts.settle_s))[0] if opts.warm_round else cold
        say(_reading("baseline", baseline))
        outcome = Outcome(opts, baseline, baseline, fill=fill, cold=cold, warm_round_s=warm_round_s)
        await load(rig, outcome)
        say("all clients closed; waiting for the server to settle ...")
        outcome.after, outcome.conns_back_s = await settled(
            control, base, pid, baseline.conns, opts.settle_timeout_s, opts.settle_s
        )
    outcome.expected_last = {u: publisher.seq[u] for u in range(opts.reading_users)}
    outcome.uncertain_users = set(publisher.uncertain)
    outcome.publish_errors = dict(publisher.errors)
    return outcome


def _reading(label: str, s: Sample) -> str:
    return (
        f"{label}: {s.conns} connections, {s.fds} fds, RSS {s.rss_kb / 1024:.0f} MB, "
        f"{s.buffered_events:,.0f} events in history, {s.connection_objects:.0f} connection objects"
    )


def client_config(rig: Rig) -> ClientConfig:
    opts = rig.opts
    tokens = {u: token(rig.secret, user_name(u)) for u in range(opts.reading_users)}
    ramp = min(2.0, opts.hold_s[0])
    return ClientConfig(rig.base, tokens, opts.hold_s, opts.offline_s, ramp, opts.abrupt_share)


@contextlib.asynccontextmanager
async def stream_pools(count: int = 64) -> AsyncIterator[list[httpx.AsyncClient]]:
    """The SSE clients' connection pools: `count` of them (httpcore looks through every connection of
    a pool for each request), none keeping a connection alive once its stream ends."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    timeout = httpx.Timeout(30.0, read=None)
    tls = ssl.create_default_context()  # unused (plain HTTP), but each client would load its own
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False, verify=tls)
            )
            for _ in range(count)
        ]


async def connection_round(rig: Rig) -> float:
    """The warm-up's last step: every client connects once (as in the load: ramped, SSE and
    WebSocket, a new connection replaying the user's history), reads until it has its user's
    last alert, and closes; so that the baseline includes what serving that many connections
    leaves allocated (the allocator's high-water mark), and the comparison shows what the churn
    adds. Returns its duration."""
    started = time.monotonic()
    async with stream_pools() as streams:
        churner = Churner(client_config(rig), streams, rig.opts.seed + 1)
        churner.churning = False
        clients = layout(rig.opts)
        tasks = [asyncio.create_task(churner.run(c)) for c in clients]
        caught = await catch_up(clients, rig.publisher, rig.opts.catchup_s)
        await close_all(churner, tasks)
    elapsed = time.monotonic() - started
    state = "every client read its history" if caught is not None else "NOT every client read its history"
    say(f"  warm-up: {len(clients):,} clients connected once, {state}, closed ({elapsed:.1f} s)")
    return elapsed


async def load(rig: Rig, outcome: Outcome) -> None:
    """Churn for the duration, stop publishing, let every client catch up, judge the never-reading
    connections still open (their user is flooded until then), close everything."""
    opts, publisher = rig.opts, rig.publisher
    feed = await Feed.start(pinned(CLIENT_CPU, opts.nice), venv_python(), _feed_config(rig))
    tasks: list[asyncio.Task[None]] = []
    try:
        async with stream_pools() as pools, httpx.AsyncClient(timeout=60) as pub:
            churner = Churner(client_config(rig), pools, opts.seed)
            deaf = Deaf(*_host_port(rig.base), opts.deaf_judge_bytes, lambda: feed.padded_bytes)
            outcome.clients = layout(opts)
            tasks += [asyncio.create_task(churner.run(c)) for c in outcome.clients]
            deaf_tasks = [asyncio.create_task(deaf.run(*_deaf_request(rig, k))) for k in range(opts.deaf)]
            tasks += deaf_tasks
            await measured(rig, outcome, churner, deaf, feed)
            churner.churning = False
            _steady_outcome(outcome, publisher, await feed.stop_steady())
            say(
                f"publishing stopped after {outcome.published:,} alerts; waiting for every client to catch up"
            )
            outcome.caught_up_s = await catch_up(outcome.clients, publisher, opts.catchup_s)
            deaf.stop.set()
            await asyncio.gather(*deaf_tasks)
            outcome.flooded = await feed.stop_flood()
            await close_all(churner, tasks)
            # Small alerts again for the flooded user, as in the warm-up, so that its history of large
            # alerts does not count as growth against the baseline.
            publisher.http = pub
            await publisher.post([opts.flooded_user] * opts.history)
            outcome.totals, outcome.deaf = churner.totals, deaf.totals
    finally:
        for task in tasks:  # after an error: no task outlives its connection pools
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await feed.kill()


def _feed_config(rig: Rig) -> dict[str, Any]:
    opts = rig.opts
    return {
        "base": rig.base, "token": rig.publisher.headers["Authorization"].removeprefix("Bearer "),
        "seq": rig.publisher.seq, "users": opts.users, "max_batch": opts.max_batch, "user_rate": opts.user_rate,
        "flooded_user": opts.flooded_user, "flood_kbps": opts.flood_kbps, "flood_pad": opts.flood_pad,
    }  # fmt: skip


def _steady_outcome(outcome: Outcome, publisher: Publisher, answer: dict[str, Any]) -> None:
    """What the publisher process says of its steady batches; its users' last seqs become the ones
    the clients are checked against."""
    publisher.seq = list(answer["seq"])
    publisher.uncertain = set(answer["uncertain"])
    publisher.errors.update(answer["errors"])
    outcome.published, outcome.publish_lag_s = int(answer["events"]), float(answer["lag"])
    outcome.post_rtt_s = list(answer["rtt"])
    outcome.publish_target = round(outcome.options.users * outcome.options.user_rate)


async def close_all(churner: Churner, tasks: list[asyncio.Task[None]]) -> None:
    churner.closing = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _host_port(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _deaf_request(rig: Rig, k: int) -> tuple[str, bytes]:
    """Never-reading client k: SSE when k is even, WebSocket when odd."""
    tok = token(rig.secret, user_name(rig.opts.flooded_user))
    host, port = _host_port(rig.base)
    return ("sse", sse_request(host, port, tok)) if k % 2 == 0 else ("ws", ws_request(host, port, tok))


async def measured(rig: Rig, outcome: Outcome, churner: Churner, deaf: Deaf, feed: Feed) -> None:
    """The load's duration, with a progress line every `progress_s`; CPU use over it (the load's:
    this process and the publisher process)."""
    opts, load_pids = rig.opts, [os.getpid(), feed.proc.pid]
    others, server, load = OtherCpu([rig.pid, *load_pids]), Cpu([rig.pid]), Cpu(load_pids)
    start, events0 = time.monotonic(), feed.events
    peak: dict[str, float] = {"conns": 0, "fds": 0, "rss_kb": 0, "answer_ms": 0}
    while (elapsed := time.monotonic() - start) < opts.duration:
        await asyncio.sleep(min(opts.progress_s, opts.duration - elapsed))
        try:
            now: Sample | None = await rig.sample()
        except httpx.HTTPError as exc:  # a server too busy to answer in time is worth a line, not the end
            now = None
            say(f"  the server did not answer its metrics in time ({type(exc).__name__})")
        for key in peak:
            peak[key] = max(peak[key], getattr(now, key) if now is not None else 0)
        published = feed.events - events0
        cpu = f"CPU server {server.since_last():.0f}%, load {load.since_last():.0f}%"
        say(progress_line(time.monotonic() - start, churner.totals, deaf.totals, published, now, cpu))
    outcome.load_s = time.monotonic() - start
    outcome.server_cpu_pct, outcome.load_cpu_pct = server.total(), load.total()
    outcome.other_cpu_pct = others.pct()
    outcome.peak = peak


def progress_line(
    elapsed: float, t: Totals, d: DeafTotals, published: int, now: Sample | None, cpu: str
) -> str:
    fails = sum(t.failures.values())
    server = (
        "?"
        if now is None
        else (
            f"conns {now.conns}, fds {now.fds}, RSS {now.rss_kb / 1024:.0f} MB, answers in {now.answer_ms:.0f} ms"
        )
    )
    return (
        f"[{elapsed:5.1f} s] clients up {t.up}, connects {t.connects:,} ({t.connects / elapsed:,.0f}/s), "
        f"drops {t.drops:,}, server ends {t.server_ends}, failures {fails}, alerts read {t.events:,} | "
        f"posted {published:,} alerts ({published / elapsed:,.0f}/s) | deaf closed {d.closed_by_server}/{d.checked} | "
        f"server: {server} | {cpu}"
    )


async def catch_up(clients: list[Client], publisher: Publisher, timeout_s: float) -> float | None:
    """Seconds until every client has its user's last published event; None after `timeout_s`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if all(c.chain.last >= publisher.seq[c.user] or c.user in publisher.uncertain for c in clients):
            return time.monotonic() - start
        await asyncio.sleep(0.2)
    return None
