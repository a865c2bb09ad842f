"""The portfolio as a pipeline processor (domain/positions.py): marks of a price never
overwrite a position event published after that price, whether both are in one batch or
the mark was held by the throttle. Found by the model of delivery
(tests/node/test_delivery_model.py); both tests failed before the fix."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from support.sinks import RecordingSink
from tickwire.brokers.memory import MemoryBroker
from tickwire.core.clock import FakeClock
from tickwire.domain.positions import PositionsProcessor
from tickwire.metrics import Metrics
from tickwire.pipeline import PublishPipeline, PublishRequest, Validator

THROTTLE_S = 0.1


def run(body: Callable[[PublishPipeline, RecordingSink, FakeClock], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = FakeClock()
        broker = MemoryBroker()
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
