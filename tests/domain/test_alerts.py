"""The rule engine in a node with a fake clock: prices and position marks published through
the pipeline fire `alert:new` on the owner's log on crossing, never again while the
condition holds, at most once per throttle (the suppressed counted on the rule), over
sliding windows; alerts land in the history; two engines on one broker fire a crossing
once (the state written with the alert, a conflict derives it again)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from support.sinks import RecordingSink
from tickwire.brokers.base import Batch, Stored
from tickwire.brokers.memory import MemoryBroker
from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.core.event import Event
from tickwire.domain.alert_history import AlertHistory
from tickwire.domain.alert_store import RuleStore
from tickwire.domain.alerts import AlertsProcessor
from tickwire.domain.positions import PositionsProcessor
from tickwire.errors import StateConflict
from tickwire.metrics import Metrics
from tickwire.node import Node
from tickwire.pipeline import PublishPipeline, PublishRequest, Validator

SECRET = "s" * 32


def run(body: Callable[[Node, FakeClock], Awaitable[None]], **env: str) -> None:
    async def main() -> None:
        clock = FakeClock()
        environ = {"TICKWIRE_SECRET": SECRET, "TICKWIRE_THROTTLE_MS": "0", "TICKWIRE_ALERT_LOG": "0"}
        settings = load_settings(env={**environ, **{f"TICKWIRE_{k}": v for k, v in env.items()}})
        node = Node(settings, clock=clock)
        await node.start()
        try:
            await body(node, clock)
        finally:
            await node.stop()

    asyncio.run(main())


def price(symbol: str, value: float, **extra: Any) -> PublishRequest:
    return PublishRequest("price:update", {"symbol": symbol, "price": value, **extra})


async def alerts(node: Node, user: str) -> list[dict[str, Any]]:
    history = await node.broker.history(f"user:{user}", None)
    return [e.data for e in history.events if e.type == "alert:new"]


async def prices(
    node: Node, clock: FakeClock, symbol: str, values: Sequence[float], step_s: float = 1
) -> None:
    for value in values:
        await node.publish([price(symbol, value)])
        clock.advance(step_s)


def test_a_price_crossing_fires_once_per_crossing_for_the_owner_only() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        rule = await node.alerting.rules.create(
            "alice", {"kind": "price_above", "symbol": "AAPL", "threshold": 100}
        )
        await prices(node, clock, "AAPL", [99, 101, 102, 103])
        fired = await alerts(node, "alice")
        assert [a["value"] for a in fired] == [101]
        assert fired[0]["ruleId"] == rule.ruleId and fired[0]["alertId"] == f"{rule.ruleId}-1"
        assert fired[0]["severity"] == fired[0]["level"] == "info"
        assert await alerts(node, "bob") == []
        # Back below and up again after the throttle (30 s): a second crossing, a second alert.
        clock.advance(30)
        await prices(node, clock, "AAPL", [99, 100.5])
        assert [a["value"] for a in await alerts(node, "alice")] == [101, 100.5]

    run(body)


def test_crossings_within_the_throttle_are_suppressed_and_counted() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        store = node.alerting.rules
        rule = await store.create(
            "alice", {"kind": "price_below", "symbol": "MSFT", "threshold": 50, "throttleS": 10}
        )
        await prices(node, clock, "MSFT", [49, 51, 49, 51, 49], step_s=2)  # crossings at 0, 4, 8 s
        clock.advance(10)
        await prices(node, clock, "MSFT", [51, 48])
        assert [a["value"] for a in await alerts(node, "alice")] == [49, 48]
        stored = await store.get("alice", rule.ruleId)
        assert stored is not None and (stored.fired, stored.suppressed) == (2, 2)

    run(body)


def test_error_alerts_are_urgent_and_other_rules_of_the_symbol_are_independent() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        store = node.alerting.rules
        await store.create(
            "alice", {"kind": "price_above", "symbol": "TSLA", "threshold": 10, "severity": "error"}
        )
        await store.create(
            "alice", {"kind": "price_above", "symbol": "TSLA", "threshold": 20, "message": "big"}
        )
        await store.create("bob", {"kind": "price_below", "symbol": "TSLA", "threshold": 5})
        await prices(node, clock, "TSLA", [15, 25])
        fired = await alerts(node, "alice")
        assert [(a["threshold"], a.get("urgent"), a["message"]) for a in fired] == [
            (10, True, "TSLA at 15 crossed above 10"),
            (20, None, "big"),
        ]
        assert await alerts(node, "bob") == []

    run(body)


def test_pct_move_over_a_sliding_window() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        await node.alerting.rules.create(
            "alice", {"kind": "pct_move", "symbol": "NVDA", "threshold": 2, "windowS": 60, "throttleS": 0}
        )
        await prices(node, clock, "NVDA", [100, 101, 101.5], step_s=10)
        assert await alerts(node, "alice") == []
        await prices(node, clock, "NVDA", [102.2], step_s=10)  # +2.2% from 100, 30 s ago
        assert [round(a["value"], 2) for a in await alerts(node, "alice")] == [2.2]
        # 100 leaves the window; 102.2 -> 101.5 is within 2% of everything left: re-armed.
        clock.advance(40)
        await prices(node, clock, "NVDA", [101.5])
        await prices(node, clock, "NVDA", [99.4])  # -2.7% from 102.2 (within the last 60 s)
        assert [round(a["value"], 2) for a in await alerts(node, "alice")] == [2.2, -2.74]

    run(body)


def test_volume_spike_against_the_average_of_earlier_windows() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        await node.alerting.rules.create(
            "alice", {"kind": "volume_spike", "symbol": "AMZN", "threshold": 3, "windowS": 10}
        )
        for i in range(30):
            await node.publish([price("AMZN", 100, size=1 if i < 10 else 5)])
            clock.advance(1)
        fired = await alerts(node, "alice")
        assert len(fired) == 1 and fired[0]["value"] >= 3 and fired[0]["windowS"] == 10

    run(body)


def test_pnl_rules_see_the_marks_of_the_derived_positions() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        await node.alerting.rules.create("alice", {"kind": "pnl_below", "symbol": "AAPL", "threshold": -50})
        order = {"orderId": "o1", "symbol": "AAPL", "side": "buy", "qty": 10, "status": "new"}
        await node.publish([PublishRequest("order:update", order, "alice")])
        fill = {"orderId": "o1", "filledQty": 10, "filledAvgPrice": 100.0, "status": "filled"}
        await node.publish([PublishRequest("order:fill", fill, "alice")])
        await prices(node, clock, "AAPL", [97, 94, 93])  # marks: -30, -60, -70
        fired = await alerts(node, "alice")
        assert [(a["kind"], a["value"]) for a in fired] == [("pnl_below", -60)]

    run(body)


def test_rules_and_alerts_go_to_the_history_with_applications_alerts() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        await node.alerting.rules.create("alice", {"kind": "price_above", "symbol": "AAPL", "threshold": 1})
        await node.publish([PublishRequest("alert:new", {"alertId": "app-1", "message": "hi"}, "alice")])
        clock.advance(1)
        await prices(node, clock, "AAPL", [2])
        page, more = await node.alerting.reader.page("alice", limit=10)
        assert [a["alertId"] for a in page] == [page[0]["alertId"], "app-1"] and more is None
        assert page[1]["severity"] == page[1]["level"] == "info" and page[1]["acked"] is False
        acked = await node.alerting.reader.ack("alice", "app-1")
        assert acked is not None and acked[1] is True
        assert await node.alerting.reader.ack("bob", "app-1") is None  # not bob's
        unacked, _ = await node.alerting.reader.page("alice", limit=10, unacked=True)
        assert [a["alertId"] for a in unacked] == [page[0]["alertId"]]

    run(body)


def test_an_unwatched_symbol_costs_no_rule_evaluation() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        await node.alerting.rules.create("alice", {"kind": "price_above", "symbol": "AAPL", "threshold": 1e9})
        engine = node.alerting.engine
        await prices(node, clock, "OTHER", [1, 2, 3])
        assert engine.evaluations == 0
        await prices(node, clock, "AAPL", [1])
        assert engine.evaluations == 1

    run(body)


def test_a_tick_evaluates_only_the_rules_of_its_symbol_among_thousands() -> None:
    """2,000 rules of 20 users over 500 symbols: a price of one symbol costs the evaluations
    of that symbol's rules only, however many rules the node knows."""

    async def body(node: Node, clock: FakeClock) -> None:
        store = node.alerting.rules
        symbols = [f"S{n:03d}" for n in range(500)]
        on_symbol: dict[str, int] = {}
        for n in range(2000):
            symbol = symbols[n % len(symbols)]
            rule = {"kind": "price_above", "symbol": symbol, "threshold": 1e9}
            await store.create(f"user{n // 100:02d}", rule)
            on_symbol[symbol] = on_symbol.get(symbol, 0) + 1
        engine = node.alerting.engine
        assert engine.evaluations == 0
        await prices(node, clock, "S042", [1])
        assert engine.evaluations == on_symbol["S042"] == 4
        await prices(node, clock, "S499", [1])
        assert engine.evaluations == on_symbol["S042"] + on_symbol["S499"]
        await prices(node, clock, "OTHER", [1])
        assert engine.evaluations == 8

    run(body)


# -- two engines, one broker ----------------------------------------------------------------------


class Interleaving(MemoryBroker):
    """While `meet` is set, the first two reads of it wait for each other: two nodes read the
    same rule state before either writes."""

    conflicts = 0
    meet: tuple[str, str] | None = None
    barrier = asyncio.Barrier(2)
    met = 0

    async def load(self, refs: Sequence[tuple[str, str]]) -> list[Stored]:
        read = await super().load(refs)
        if self.meet in refs and self.met < 2:
            self.met += 1
            await self.barrier.wait()
        return read

    def submit(self, batch: Batch) -> Awaitable[list[Event]]:
        result = super().submit(batch)
        assert isinstance(result, asyncio.Future)
        if result.done() and isinstance(result.exception(), StateConflict):
            Interleaving.conflicts += 1
        return result


def test_two_engines_on_one_broker_fire_a_crossing_once() -> None:
    async def main() -> None:
        clock = FakeClock()
        broker = Interleaving(clock=clock)
        await broker.start(RecordingSink())
        pipelines = []
        for _ in range(2):
            history = AlertHistory(broker, cap=100, retention_s=3600)
            engine = AlertsProcessor(broker, clock, fired=history.fired)
            processors = [PositionsProcessor(broker, clock, 0.0), engine, history]
            pipelines.append(PublishPipeline(broker, clock, Validator(), processors, Metrics()))
        store = RuleStore(broker, clock, max_rules=10)
        await store.create("alice", {"kind": "price_above", "symbol": "AAPL", "threshold": 100})
        await asyncio.gather(*(p.publish([price("AAPL", 99)]) for p in pipelines))
        clock.advance(0.5)  # both engines keep their copy of the rules: only the settling reads it
        Interleaving.conflicts = 0
        broker.meet = ("alertrules:alice", "sym:AAPL")
        await asyncio.gather(*(p.publish([price("AAPL", 101 + i)]) for i, p in enumerate(pipelines)))
        history = await broker.history("user:alice", None)
        assert len([e for e in history.events if e.type == "alert:new"]) == 1
        assert Interleaving.conflicts >= 1  # both derived it; one batch was refused
        page = await broker.journal_page("alerts:alice", limit=10)
        assert len(page) == 1

    asyncio.run(main())
