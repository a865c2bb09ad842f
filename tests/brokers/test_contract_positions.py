"""Derived positions kept in the broker (part of the broker contract): fills of one user
published through two nodes build one position sequence, and nodes started afresh continue
from the stored positions. Run against the memory broker and a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from support.sinks import RecordingSink
from tickwire.brokers.base import Broker
from tickwire.brokers.memory import MemoryBroker
from tickwire.core.clock import FakeClock
from tickwire.domain.catalog import is_finished
from tickwire.domain.portfolio import Portfolio
from tickwire.domain.positions import PositionsProcessor
from tickwire.metrics import Metrics
from tickwire.pipeline import PublishPipeline, PublishRequest, Validator

# Brokers of one store: the same memory broker, or Redis brokers on the same key space.
Store = Callable[[], Broker]


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        shared = MemoryBroker(finished=is_finished)
        return lambda: shared
    from tickwire.brokers.redis import RedisBroker

    server = request.getfixturevalue("contract_redis")
    prefix = f"positions-{uuid.uuid4().hex[:10]}"
    return lambda: RedisBroker(server.url, prefix=prefix)


class Node:
    """The part of a node that publishes: a pipeline with the positions processor."""

    def __init__(self, broker: Broker, clock: FakeClock) -> None:
        self.broker = broker
        self.sink = RecordingSink()
        self.pipeline = PublishPipeline(
            broker, clock, Validator(), [PositionsProcessor(broker, clock, 0.0)], Metrics()
        )

    async def publish(self, *requests: PublishRequest) -> None:
        await self.pipeline.publish(list(requests))

    def positions(self, user: str) -> list[dict[str, Any]]:
        return [e.data for e in self.sink.events if e.type == "position:update" and e.log == f"user:{user}"]


def run(store: Store, body: Callable[[list[Node]], Awaitable[None]], nodes: int = 2) -> None:
    async def main() -> None:
        clock = FakeClock()
        started: list[Node] = []
        try:
            for _ in range(nodes):
                node = Node(store(), clock)
                await node.broker.start(node.sink)
                started.append(node)
            await body(started)
        finally:
            stopped: set[int] = set()
            for node in started:
                if id(node.broker) not in stopped:
                    stopped.add(id(node.broker))
                    await node.broker.stop()

    asyncio.run(main())


def order(user: str, oid: str, side: str, qty: float) -> PublishRequest:
    return PublishRequest("order:update", {"orderId": oid, "symbol": "AAPL", "side": side, "qty": qty}, user)


def fill(user: str, oid: str, qty: float, avg: float) -> PublishRequest:
    return PublishRequest("order:fill", {"orderId": oid, "filledQty": qty, "filledAvgPrice": avg}, user)


SCRIPT = [
    (0, order, ("o1", "buy", 10)),
    (1, fill, ("o1", 4, 100.0)),
    (0, fill, ("o1", 10, 101.0)),  # cumulative: 6 more at (1010 - 400) / 6
    (1, order, ("o2", "sell", 15)),
    (0, fill, ("o2", 15, 110.0)),  # closes the long with a profit, opens a short of 5
]


def expected(user: str) -> list[dict[str, Any]]:
    """What one portfolio in one process derives from the same events."""
    portfolio = Portfolio()
    out: list[dict[str, Any]] = []
    for _, make, args in SCRIPT:
        req = make(user, *args)  # type: ignore[operator]
        if req.type == "order:update":
            portfolio.apply_order(user, req.data)
        else:
            out += portfolio.apply_fill(user, req.data)
    return out


def essentials(positions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(p["quantity"], p["entryPrice"], p["realizedPnL"], p["change"]) for p in positions]


def test_fills_through_two_nodes_build_one_position_sequence(store: Store) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"

    async def body(nodes: list[Node]) -> None:
        for which, make, args in SCRIPT:
            await nodes[which].publish(make(user, *args))  # type: ignore[operator]
        seen = nodes[-1].positions(user)  # every event reaches the last node started
        assert essentials(seen) == essentials(expected(user))
        assert [p["change"] for p in seen] == ["opened", "increased", "flipped"]

    run(store, body)


def test_nodes_started_afresh_continue_from_the_stored_positions(store: Store) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"

    async def first(nodes: list[Node]) -> None:
        for _, make, args in SCRIPT[:3]:
            await nodes[0].publish(make(user, *args))  # type: ignore[operator]

    async def second(nodes: list[Node]) -> None:  # new processors: nothing in their memory
        for _, make, args in SCRIPT[3:]:
            await nodes[1].publish(make(user, *args))  # type: ignore[operator]
        assert essentials(nodes[1].positions(user)) == essentials(expected(user)[2:])

    run(store, first)
    run(store, second)


def test_concurrent_fills_on_two_nodes_lose_nothing(store: Store) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"

    async def body(nodes: list[Node]) -> None:
        await nodes[0].publish(*[order(user, f"o{i}", "buy", 1) for i in range(20)])
        await asyncio.gather(*(nodes[i % 2].publish(fill(user, f"o{i}", 1, 100.0 + i)) for i in range(20)))
        final = nodes[-1].positions(user)[-1]
        assert final["quantity"] == 20
        assert final["entryPrice"] == pytest.approx(sum(100.0 + i for i in range(20)) / 20)

    run(store, body)
