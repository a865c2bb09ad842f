"""The portfolio as a pipeline processor (domain/positions.py): marks of a price never
overwrite a position event published after that price, whether both are in one batch or
the mark was held by the throttle, and a mark is not lost when the portfolio changed for
another reason between its read and its stamp. Found by the model of delivery
(tests/node/test_delivery_model.py); each test failed before its fix."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from support.sinks import RecordingSink
from tickwire.brokers.base import Stored
from tickwire.brokers.memory import MemoryBroker
from tickwire.core.clock import FakeClock
from tickwire.domain.positions import PositionsProcessor
from tickwire.metrics import Metrics
from tickwire.pipeline import PublishPipeline, PublishRequest, Validator

THROTTLE_S = 0.1


class PausingBroker(MemoryBroker):
    """The memory broker, with reads that can be held open as a network round trip is: a
    publish can then land between a read and the batch derived from it."""

    def __init__(self) -> None:
        super().__init__()
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()

    async def load(self, refs: Sequence[tuple[str, str]]) -> list[Stored]:
        stored = await super().load(refs)
        hold = self.hold
        if hold is not None:
            self.hold = None
            self.holding.set()
            await hold.wait()
        return stored


Body = Callable[[PublishPipeline, RecordingSink, FakeClock], Awaitable[None]]


def run(body: Body, broker: MemoryBroker | None = None) -> None:
    async def main() -> None:
        nonlocal broker
        clock = FakeClock()
        broker = broker or MemoryBroker()
        sink = RecordingSink()
        await broker.start(sink)
        processor = PositionsProcessor(broker, clock, THROTTLE_S)
        try:
            await body(PublishPipeline(broker, clock, Validator(), [processor], Metrics()), sink, clock)
        finally:
            await broker.stop()

    asyncio.run(main())


def position(current: float) -> PublishRequest:
    data = {"symbol": "AAA", "quantity": 5, "entryPrice": 100.0, "currentPrice": current}
    return PublishRequest("position:update", data, "u")


def price(value: float) -> PublishRequest:
    return PublishRequest("price:update", {"symbol": "AAA", "price": value})


def current_prices(sink: RecordingSink) -> list[tuple[Any, bool]]:
    """currentPrice of every position:update of u's AAA, and whether it was a mark."""
    return [(e.data["currentPrice"], e.tick) for e in sink.events if e.type == "position:update"]


def test_a_price_before_a_position_in_one_batch_does_not_mark_it() -> None:
    async def body(pipeline: PublishPipeline, sink: RecordingSink, clock: FakeClock) -> None:
        await pipeline.publish([price(90.0), position(99.0)])  # as two publishes: no mark
        await pipeline.publish([position(98.0), price(91.0)])  # the price comes after: marked
        assert current_prices(sink) == [(99.0, False), (98.0, False), (91.0, True)]

    run(body)


def test_a_held_mark_of_an_older_price_is_dropped_by_a_newer_position() -> None:
    async def body(pipeline: PublishPipeline, sink: RecordingSink, clock: FakeClock) -> None:
        await pipeline.publish([position(100.0)])
        await pipeline.publish([price(91.0)])  # marked at once
        await pipeline.publish([price(92.0)])  # held: within the window
        await pipeline.publish([position(99.0)])  # the app's newer word on AAA
        clock.advance(THROTTLE_S)
        assert await pipeline.publish_due() == 0
        assert current_prices(sink) == [(100.0, False), (91.0, True), (99.0, False)]
        await pipeline.publish([price(93.0)])  # a later price marks it again
        clock.advance(THROTTLE_S)
        await pipeline.publish_due()
        assert current_prices(sink)[-1] == (93.0, True)

    run(body)


async def release_held_mark_after(
    pipeline: PublishPipeline, broker: PausingBroker, clock: FakeClock, meanwhile: PublishRequest
) -> None:
    """u holds AAA, marked at 91; 92 is held by the throttle. When the window ends, the
    held mark reads u's portfolio, and `meanwhile` is published before it is stamped."""
    await pipeline.publish([position(100.0)])
    await pipeline.publish([price(91.0)])
    await pipeline.publish([price(92.0)])
    clock.advance(THROTTLE_S)
    release = broker.hold = asyncio.Event()
    due = asyncio.ensure_future(pipeline.publish_due())
    await broker.holding.wait()
    await pipeline.publish([meanwhile])
    release.set()
    await due


def test_a_mark_survives_a_change_of_the_portfolio_elsewhere() -> None:
    broker = PausingBroker()

    async def body(pipeline: PublishPipeline, sink: RecordingSink, clock: FakeClock) -> None:
        order = {"orderId": "o1", "symbol": "BBB", "side": "buy", "qty": 1, "status": "new"}
        await release_held_mark_after(pipeline, broker, clock, PublishRequest("order:update", order, "u"))
        assert current_prices(sink) == [(100.0, False), (91.0, True), (92.0, True)]

    run(body, broker)


def test_a_mark_read_before_a_newer_position_stays_out() -> None:
    broker = PausingBroker()

    async def body(pipeline: PublishPipeline, sink: RecordingSink, clock: FakeClock) -> None:
        await release_held_mark_after(pipeline, broker, clock, position(99.0))
        assert current_prices(sink) == [(100.0, False), (91.0, True), (99.0, False)]

    run(body, broker)
