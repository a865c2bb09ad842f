"""Shared helpers of the demo tests: a recording publisher, a settable market, the node settings.

Everything is driven call by call with a fake clock and seeded randomness: no test
sleeps. `Recorder` stands in for the node where only the published requests matter;
the node itself is used where the server's derivations (positions, strategy owners,
snapshots) are the point.

Imported as `demo.helpers` (`tests` is on the pytest pythonpath, like `support`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.demo.market import Quote
from tickwire.pipeline.validate import PublishRequest, parse_item

SYMBOLS = ("AAPL", "MSFT", "TSLA")


class Recorder:
    """A publisher that records every batch, checks it like the HTTP endpoint would, and never waits."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.batches: list[list[PublishRequest]] = []

    async def publish(self, requests: Sequence[PublishRequest]) -> list[str | None]:
        for req in requests:  # what the server would accept over HTTP, too
            parse_item({"type": req.type, "data": req.data, **({"user": req.user} if req.user else {})}, None)
        self.batches.append(list(requests))
        return [f"id-{len(self.batches)}-{i}" for i in range(len(requests))]

    def events(self, type_: str | None = None) -> list[PublishRequest]:
        return [r for batch in self.batches for r in batch if type_ is None or r.type == type_]


class StubMarket:
    """Quotes set by the test: a spread of 0.10 around the price, opens fixed at construction."""

    def __init__(self, **prices: float) -> None:
        self.symbols = tuple(prices)
        self._open = dict(prices)
        self._quotes: dict[str, Quote] = {}
        for symbol, price in prices.items():
            self.set(symbol, price)

    def set(self, symbol: str, price: float) -> None:
        self._quotes[symbol] = Quote(
            symbol, price, round(price - 0.05, 2), round(price + 0.05, 2), self._open[symbol]
        )

    def quote(self, symbol: str) -> Quote | None:
        return self._quotes.get(symbol)

    def open_price(self, symbol: str) -> float:
        return self._open[symbol]

    def knows(self, symbol: str) -> bool:
        return symbol in self._open


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def demo_node_settings() -> Any:
    return load_settings(env={"TICKWIRE_DEMO": "1"})
