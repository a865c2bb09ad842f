"""The scan runner with a fake clock: cycles every `intervalS`, per-symbol pacing, results
deduplicated by hash, progress per chunk of symbols, the on-demand queue and its bound, one
runner at a time (leases), user scans on their owner's log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from support.sinks import RecordingSink
from tickwire.brokers.base import Publication
from tickwire.brokers.memory import MemoryBroker
from tickwire.core.clock import FakeClock
from tickwire.core.streams import Principal
from tickwire.domain.rules import RuleError
from tickwire.domain.scan_defs import ScanStore, parse_scan
from tickwire.domain.scans import CHUNK, LEASE_S, ScanRunner
from tickwire.errors import BrokerUnavailable, StreamError


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.broker = MemoryBroker(clock=self.clock)
        self.sink = RecordingSink()
        self.store = ScanStore(self.broker, self.clock, queue_bound=3)
        self.runner = ScanRunner(self.store, self.clock, node_id="n1")

    async def prices(self, **values: float) -> None:
        pubs = [
            Publication("price:update", {"symbol": s, "price": v}, "prices", tick=True, state=("prices", s))
            for s, v in values.items()
        ]
        await self.broker.publish(pubs, self.clock.wall_ms())

    async def scan(self, **body: Any) -> None:
        defaults = {"scanId": "s1", "symbols": ["A", "B", "C"], "intervalS": 10}
        defaults.update(body)
        await self.store.create(parse_scan(defaults, creator="root", now_ms=0, max_symbols=1000))

    async def stopped_scan(self) -> None:
        """A stopped scan that matches every symbol, and a price of A."""
        await self.scan(condition={"kind": "price_above", "threshold": 0})
        await self.store.control("s1", lambda c: {**c, "state": "stopped"})
        await self.prices(A=1)

    def results(self, log: str = "scans") -> list[tuple[str, float]]:
        return [
            (e.data["symbol"], e.data["value"])
            for e in self.sink.events
            if e.type == "scan:result" and e.log == log
        ]

    def statuses(self) -> list[dict[str, Any]]:
        return [e.data for e in self.sink.events if e.type == "scan:status"]

    async def step(self, seconds: float = 0) -> int:
        self.clock.advance(seconds)
        return await self.runner.step()


def run(body: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        world = World()
        await world.broker.start(world.sink)
        await body(world)

    asyncio.run(main())


def test_cycles_run_every_interval_and_publish_only_changed_results() -> None:
    async def body(w: World) -> None:
        await w.scan(condition={"kind": "price_above", "threshold": 100})
        await w.prices(A=101, B=99, C=150)
        assert await w.step() == 1
        assert w.results() == [("A", 101), ("C", 150)]
        status = w.statuses()[-1]
        assert (status["cycle"], status["scanned"], status["total"], status["results"]) == (1, 3, 3, 2)
        assert status["durationMs"] >= 0 and status["complete"] is True
        assert await w.step(5) == 0  # not due yet
        assert await w.step(5) == 1  # 10 s: the same values, nothing new
        assert w.results() == [("A", 101), ("C", 150)] and w.statuses()[-1]["results"] == 0
        await w.prices(A=101.001, B=120)  # A rounds to the same value (2 decimals): same hash
        await w.step(10)
        assert w.results()[2:] == [("B", 120)]
        await w.prices(A=90)  # A stops matching: its hash is forgotten...
        await w.step(10)
        await w.prices(A=101)  # ...so matching again with the same value publishes again
        await w.step(10)
        assert w.results()[3:] == [("A", 101)]
        status = await w.store.status("s1")
        assert status == {"scanId": "s1", "state": "running", "cycles": 5, "lastCycleMs": status["lastCycleMs"],
                          "results": 4, "queued": 0}  # fmt: skip

    run(body)


def test_a_cycle_over_more_than_a_chunk_reports_progress_then_completion() -> None:
    """300 symbols are two chunks: the first chunk's results come with a `complete: false`
    status before the second chunk is evaluated; the last status and the scan's stats count
    the whole cycle."""

    async def body(w: World) -> None:
        symbols = [f"S{i:03d}" for i in range(300)]
        await w.scan(symbols=symbols, condition={"kind": "price_above", "threshold": 100})
        await w.prices(**{s: float(i) for i, s in enumerate(symbols[:290])})  # the last 10 have no price
        assert await w.step() == 1
        cycle = [e for e in w.sink.events if e.type in ("scan:result", "scan:status")]
        kinds = [e.type for e in cycle]
        progress_at = kinds.index("scan:status")
        assert kinds.count("scan:status") == 2 and kinds[-1] == "scan:status"
        first_chunk = [e.data["symbol"] for e in cycle[:progress_at]]
        assert first_chunk == symbols[100:CHUNK]  # everything at or above 100 among the first 250
        second_chunk = [e.data["symbol"] for e in cycle[progress_at + 1 : -1]]
        assert second_chunk == symbols[CHUNK:290]
        counted = ("cycle", "scanned", "total", "results", "complete")
        progress, done = ([status[c] for c in counted] for status in w.statuses())
        assert progress == [1, 250, 300, 150, False]
        assert done == [1, 290, 300, 190, True]
        status = await w.store.status("s1")
        assert status is not None and (status["cycles"], status["results"]) == (1, 190)

    run(body)


def test_each_symbol_is_evaluated_at_most_once_per_min_symbol_interval() -> None:
    async def body(w: World) -> None:
        await w.scan(condition={"kind": "price_below", "threshold": 0}, minSymbolIntervalS=25)
        await w.prices(A=1, B=2, C=3)
        for _ in range(4):
            await w.step(10)
        assert [s["scanned"] for s in w.statuses()] == [3, 0, 0, 3]  # at 10, 20, 30 (paced), 40 s

    run(body)


def test_on_demand_cycles_are_queued_with_a_bound_and_run_even_when_stopped() -> None:
    async def body(w: World) -> None:
        await w.stopped_scan()
        assert await w.step() == 0
        assert [await w.store.enqueue("s1") for _ in range(4)] == [
            (1, True),
            (2, True),
            (3, True),
            (3, False),
        ]
        assert await w.store.enqueue("nope") is None
        w.runner.invalidate()
        assert await w.step() == 1
        assert (await w.store.status("s1") or {})["queued"] == 2
        assert await w.step() == 0  # one on-demand cycle a tick (0.25 s): a burst waits
        assert await w.step(0.25) == 1 and await w.step(0.25) == 1 and await w.step(0.25) == 0
        assert [s["state"] for s in w.statuses()] == ["stopped"] * 3

    run(body)


def test_an_on_demand_request_wakes_the_runner_at_once() -> None:
    async def body(w: World) -> None:
        await w.stopped_scan()
        w.runner.tick_s = 3600.0  # its own pace would never come within this test
        task = asyncio.create_task(w.runner.run())
        try:
            for _ in range(20):
                await asyncio.sleep(0)
            assert w.statuses() == []
            await w.store.enqueue("s1")
            for _ in range(50):
                await asyncio.sleep(0)
            assert [s["cycle"] for s in w.statuses()] == [1]
        finally:
            task.cancel()

    run(body)


class SwallowingBroker(MemoryBroker):
    """A broker whose client, cancelled mid-call, says it is unavailable instead (as the
    Redis client can when a cancel meets its own timeout)."""

    async def members(self, index: str) -> set[str]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise BrokerUnavailable("connection reset") from None
        return set()


def test_the_runner_stops_when_cancelled_even_if_the_broker_swallows_the_cancel() -> None:
    async def main() -> None:
        clock = FakeClock()
        runner = ScanRunner(ScanStore(SwallowingBroker(clock=clock), clock), clock, node_id="n1", tick_s=0)
        task = asyncio.create_task(runner.run())
        for _ in range(5):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)  # not wait_for: it would wait for the cancel
        assert done == {task} and task.cancelled()

    # Not asyncio.run: on failure it would wait for the runner that does not stop.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_one_runner_at_a_time_and_another_takes_over_when_the_lease_expires() -> None:
    async def body(w: World) -> None:
        other = ScanRunner(w.store, w.clock, node_id="n2")
        await w.scan(condition={"kind": "price_above", "threshold": 0}, intervalS=1)
        await w.prices(A=1)
        assert await w.runner.step() == 1
        assert await other.step() == 0  # n1 holds the lease
        w.clock.advance(LEASE_S + 1)  # n1 stopped renewing (it died)
        assert await other.step() == 1
        await other.stop()  # gives the lease up: n1 takes it at once
        w.clock.advance(1)
        assert await w.runner.step() == 1

    run(body)


def test_pct_move_scans_keep_windows_of_their_samples() -> None:
    async def body(w: World) -> None:
        await w.scan(symbols=["A"], condition={"kind": "pct_move", "threshold": 5, "windowS": 60})
        for value in (100, 103, 106):
            await w.prices(A=value)
            await w.step(10)
        assert w.results() == [("A", 6.0)]

    run(body)


def test_user_scans_publish_on_their_owners_log_and_only_they_read_them() -> None:
    async def body(w: World) -> None:
        await w.scan(visibility="user", user="alice", condition={"kind": "price_above", "threshold": 0})
        await w.prices(A=1)
        await w.step()
        assert w.results("user:alice") == [("A", 1)] and w.results() == []
        assert await w.store.stream_log("s1", Principal("alice")) == "user:alice"
        assert await w.store.stream_log("s1", Principal("root", frozenset({"admin"}))) == "user:alice"
        with pytest.raises(StreamError) as denied:
            await w.store.stream_log("s1", Principal("bob"))
        assert denied.value.status == 403
        with pytest.raises(StreamError) as unknown:
            await w.store.stream_log("s2", Principal("bob"))
        assert unknown.value.status == 404

    run(body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"symbols": []}, "`symbols`"),
        ({"symbols": ["A B"]}, "`symbols`"),
        ({"scanId": "a/b"}, "`scanId`"),
        ({"condition": {"kind": "volume_spike", "threshold": 2}}, "`condition.kind`"),
        ({"condition": {"kind": "price_above"}}, "`condition.threshold`"),
        ({"condition": {"kind": "price_above", "threshold": 1, "windowS": 5}}, "`condition.windowS`"),
        ({"intervalS": 0}, "`intervalS`"),
        ({"visibility": "friends"}, "`visibility`"),
        ({"extra": 1}, "extra"),
    ],
)
def test_scan_validation_names_the_bad_field(body: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {
        "scanId": "s",
        "symbols": ["A"],
        "condition": {"kind": "price_above", "threshold": 1},
    }
    with pytest.raises(RuleError, match=field):
        parse_scan({**base, **body}, creator="root", now_ms=0, max_symbols=10)
