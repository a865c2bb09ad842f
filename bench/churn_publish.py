"""The publishing side of the churn soak: `alert:new` events for many users in `POST /api/publish`
batches, each carrying `seq`, its number in its user's sequence, so a client can check that it got
every event of its user exactly once. `seq[user]` is the last one published (the server accepted
the batch); a refused batch is all-or-nothing (SPEC 9) and its numbers are taken back.

The publisher runs as a process of its own, so that its schedule does not wait behind the 2,000
clients' event loop: the steady batches and the flood of large alerts for the never-reading
clients, pinned to the load's CPU. The parent (`Feed`) writes one JSON line of configuration to its
stdin, then `stop-steady` and `stop-flood`; the process answers on stdout with JSON lines:
`progress` (every 0.5 s), `steady` (after `stop-steady`: what was published, each user's last seq)
and `flood` (then it exits).

    python bench/churn_publish.py     # only as churn_soak.py starts it
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

HERE = Path(__file__).resolve().parent


def user_name(user: int) -> str:
    return f"u{user}"


class Publisher:
    """Posts batches of `alert:new` events. A user's events are in order as long as no two posts
    running at the same time name the same user (the steady batches and the flood do not).
    `http` is set for each phase, so that no connection of a finished phase stays open."""

    def __init__(self, base: str, token: str, users: int) -> None:
        self.http: httpx.AsyncClient | None = None
        self.url = f"{base}/api/publish"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.seq = [0] * users  # last seq the server accepted, per user
        self.uncertain: set[int] = set()  # users of a batch whose outcome is unknown (no answer)
        self.events = 0
        self.padded_bytes = 0  # padding of the large alerts published (the flood)
        self.batches = 0
        self.errors: Counter[str] = Counter()
        self.rtt_s: list[float] = []

    async def post(self, users: list[int], pad: str = "") -> bool:
        """One batch: an event for each entry of `users` (a user may appear several times)."""
        assert self.http is not None
        body = []
        for user in users:
            self.seq[user] += 1
            data = {"message": "churn", "seq": self.seq[user]} | ({"pad": pad} if pad else {})
            body.append({"type": "alert:new", "user": user_name(user), "data": data})
        started = time.monotonic()
        try:
            response = await self.http.post(self.url, content=orjson.dumps(body), headers=self.headers)
        except httpx.HTTPError as exc:
            self.errors[type(exc).__name__] += 1
            self.uncertain.update(users)
            return False
        self.rtt_s.append(time.monotonic() - started)
        if response.status_code != 200:
            self.errors[f"HTTP {response.status_code}"] += 1
            for user in users:
                self.seq[user] -= 1
            return False
        self.events += len(users)
        self.padded_bytes += len(pad) * len(users)
        self.batches += 1
        return True


def batches_of(users: range, max_batch: int) -> list[list[int]]:
    """`users` in ceil(n / max_batch) interleaved batches (batch j: users j, j+n_b, j+2n_b, ...), so
    that the users the clients read are spread over every batch."""
    count = max(1, math.ceil(len(users) / max_batch))
    return [list(users[j::count]) for j in range(count)]


async def steady(
    publisher: Publisher, batches: list[list[int]], rate_per_user: float, stop: asyncio.Event
) -> tuple[int, float]:
    """Post `batches` round after round, each user getting `rate_per_user` events/s, until `stop`.
    Up to `len(batches) - 1` (at most 4) posts are in flight at once: a batch is posted again only
    after the posts of every other batch started, and never while its previous post is in flight,
    so each user's alerts stay in order. Returns the alerts published and the largest lag behind
    the schedule, in seconds."""
    loop = asyncio.get_running_loop()
    interval = 1.0 / (rate_per_user * len(batches))
    window = asyncio.Semaphore(max(1, min(4, len(batches) - 1)))
    in_flight: dict[int, asyncio.Task[bool]] = {}
    start, k, lag, events = loop.time(), 0, 0.0, 0
    while not stop.is_set():
        delay = start + k * interval - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
        else:
            lag = max(lag, -delay)
        j = k % len(batches)
        if j in in_flight:  # the same users' previous post must be answered first
            events += len(batches[j]) if await in_flight.pop(j) else 0
        await window.acquire()
        in_flight[j] = asyncio.create_task(_post_released(publisher, batches[j], window))
        k += 1
    for j, task in in_flight.items():
        events += len(batches[j]) if await task else 0
    return events, lag


async def _post_released(publisher: Publisher, users: list[int], window: asyncio.Semaphore) -> bool:
    try:
        return await publisher.post(users)
    finally:
        window.release()


async def flood(
    publisher: Publisher, user: int, kbytes_per_s: int, pad_bytes: int, stop: asyncio.Event
) -> int:
    """Large alerts for the never-reading clients' user, `kbytes_per_s` in events of `pad_bytes`, five
    posts a second, until `stop`: enough to fill a socket's send buffer (up to 4 MB on loopback) in
    a few seconds. Returns the events published."""
    if kbytes_per_s <= 0:
        return 0
    pad = "x" * pad_bytes
    each = max(1, math.ceil(kbytes_per_s * 1024 / 5 / pad_bytes))
    events = 0
    while not stop.is_set():
        events += each if await publisher.post([user] * each, pad) else 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
    return events


# -- the publisher's process and the parent's handle on it ---------------------------------------------


@dataclass
class Feed:
    """The parent's handle on the publisher process."""

    proc: asyncio.subprocess.Process
    events: int = 0  # alerts published so far (steady and flood)
    padded_bytes: int = 0  # of which padding of the flood's large alerts
    answers: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, prefix: list[str], python: str, config: dict[str, Any]) -> Feed:
        proc = await asyncio.create_subprocess_exec(
            *prefix, python, str(HERE / "churn_publish.py"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=HERE,
        )  # fmt: skip
        feed = cls(proc)
        feed.reader = asyncio.create_task(feed._read())
        await feed._send(orjson.dumps(config))
        return feed

    async def _send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        await self.proc.stdin.drain()

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = orjson.loads(line)
            if message["kind"] == "progress":
                self.events, self.padded_bytes = message["events"], message["padded"]
            else:
                await self.answers.put(message)
        await self.answers.put({"kind": "exit"})

    async def _answer(self, kind: str) -> dict[str, Any]:
        message = await asyncio.wait_for(self.answers.get(), 120)
        if message["kind"] != kind:
            raise RuntimeError(f"the publisher process answered {message['kind']!r}, not {kind!r}")
        return message

    async def stop_steady(self) -> dict[str, Any]:
        await self._send(b"stop-steady")
        return await self._answer("steady")

    async def stop_flood(self) -> int:
        await self._send(b"stop-flood")
        events = int((await self._answer("flood"))["events"])
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # ends its reader thread
        await asyncio.wait_for(self.proc.wait(), 30)
        return events

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def say(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


async def commands(stop_steady: asyncio.Event, stop_flood: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip() == "stop-steady":
            stop_steady.set()
        elif line.strip() == "stop-flood":
            stop_flood.set()
    stop_steady.set()  # the parent went away
    stop_flood.set()


async def progress(publisher: Publisher) -> None:
    while True:
        say({"kind": "progress", "events": publisher.events, "padded": publisher.padded_bytes})
        await asyncio.sleep(0.5)


async def run(config: dict[str, Any]) -> None:
    publisher = Publisher(config["base"], config["token"], len(config["seq"]))
    publisher.seq = list(config["seq"])
    stop_steady, stop_flood = asyncio.Event(), asyncio.Event()
    # Keep-alive connections expire before the server's 5 s (uvicorn's timeout_keep_alive), so that
    # a post never goes out on a connection the server is closing.
    limits = httpx.Limits(keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as http:
        publisher.http = http
        watcher = asyncio.create_task(commands(stop_steady, stop_flood))
        reporter = asyncio.create_task(progress(publisher))
        batches = batches_of(range(config["users"]), config["max_batch"])
        flooding = asyncio.create_task(
            flood(publisher, config["flooded_user"], config["flood_kbps"], config["flood_pad"], stop_flood)
        )
        events, lag = await steady(publisher, batches, config["user_rate"], stop_steady)
        say({"kind": "progress", "events": publisher.events, "padded": publisher.padded_bytes})
        say(
            {
                "kind": "steady", "events": events, "lag": lag, "seq": publisher.seq,
                "uncertain": sorted(publisher.uncertain), "rtt": publisher.rtt_s, "errors": publisher.errors,
            }
        )  # fmt: skip
        flooded = await flooding
        reporter.cancel()
        say({"kind": "flood", "events": flooded})
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter


def main() -> None:
    try:  # as in churn_clients: httpcore would look for the missing sniffio on every request
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
    config = orjson.loads(sys.stdin.readline())
    asyncio.run(run(config))
    sys.exit(0)


if __name__ == "__main__":
    main()
