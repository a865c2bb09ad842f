"""The demo market: random-walk quotes for a few symbols, published as `price:update`.

Prices follow a geometric random walk with a weak pull back towards the session
open, so a demo left running for hours still shows plausible prices instead of
drifting to zero or infinity. The walk draws from an injected `random.Random`, so a
seeded simulator produces the same quotes every time (tests step it by hand).

The simulator also remembers the last quote and the session open of every symbol:
the paper broker fills at the last quote, the alert monitor measures moves from the
open.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tickwire.core.event import Event
from tickwire.demo.feed import AgentStats, Publisher, every
from tickwire.pipeline import PublishRequest

__all__ = ["DEFAULT_OPEN_PRICES", "MarketSimulator", "Quote", "QuoteSource"]

DEFAULT_OPEN_PRICES: Mapping[str, float] = {
    "AAPL": 228.50,
    "MSFT": 431.20,
    "GOOGL": 176.40,
    "AMZN": 201.80,
    "TSLA": 248.90,
    "NVDA": 131.60,
    "META": 585.30,
    "NFLX": 702.10,
    "BTC-USD": 67250.00,
    "ETH-USD": 3410.00,
}
"""Plausible opens for well-known symbols; any other symbol opens between 20 and 500."""


@dataclass(frozen=True, slots=True)
class Quote:
    """One published price: mid price and a bid/ask around it, rounded to cents, and the session open."""

    symbol: str
    price: float
    bid: float
    ask: float
    open: float

    def payload(self) -> dict[str, Any]:
        """The `price:update` data (the node adds the timestamp); `open` lets a page show the day's change."""
        return {
            "symbol": self.symbol,
            "price": self.price,
            "bid": self.bid,
            "ask": self.ask,
            "open": self.open,
        }


class QuoteSource(Protocol):
    """What the paper broker and the bots read from a market (`MarketSimulator` provides it)."""

    @property
    def symbols(self) -> tuple[str, ...]: ...

    def quote(self, symbol: str) -> Quote | None: ...

    def open_price(self, symbol: str) -> float: ...

    def knows(self, symbol: str) -> bool: ...


class MarketSimulator:
    """Random-walk quotes for `symbols`, `rate` steps per second per symbol.

    `volatility` is the standard deviation of the log price over one second (0.0015 is
    about 1% over a minute: lively enough to cross alert thresholds in a demo);
    `reversion` is how strongly, per second, the log price is pulled back to the open;
    `spread_bps` is the bid/ask spread in basis points of the price.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        rate: float,
        *,
        rng: random.Random | None = None,
        volatility: float = 0.0015,
        reversion: float = 0.002,
        spread_bps: float = 4.0,
        open_prices: Mapping[str, float] | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("the market needs at least one symbol")
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.symbols = tuple(dict.fromkeys(symbols))
        self.rate = rate
        self.interval_s = 1.0 / rate
        self._rng = rng or random.Random()
        self._volatility = volatility
        self._reversion = reversion
        self._half_spread = spread_bps / 20_000
        known = {**DEFAULT_OPEN_PRICES, **(open_prices or {})}
        self._open = {
            s: known[s] if s in known else round(self._rng.uniform(20, 500), 2) for s in self.symbols
        }
        self._log_price = {s: math.log(p) for s, p in self._open.items()}
        self._last: dict[str, Quote] = {}
        self.stats = AgentStats("market-simulator", "Market simulator")

    # -- reads -------------------------------------------------------------------------------------

    def quote(self, symbol: str) -> Quote | None:
        """The last quote of `symbol`, None before its first step (or for an unknown symbol)."""
        return self._last.get(symbol)

    def open_price(self, symbol: str) -> float:
        """The session open of `symbol` (KeyError for an unknown symbol)."""
        return self._open[symbol]

    def knows(self, symbol: str) -> bool:
        return symbol in self._open

    def follow(self, event: Event) -> None:
        """Take a `price:update` an upstream published (it has a `source`) as the symbol's
        last quote: the demo as an edge node, its market data from another tickwire."""
        data = event.data
        symbol, price = data.get("symbol"), data.get("price")
        if event.type != "price:update" or "source" not in data or not isinstance(symbol, str):
            return
        if not self.knows(symbol) or not isinstance(price, int | float) or price <= 0:
            return
        quote = self._quote(symbol, float(price))
        bid, ask = data.get("bid"), data.get("ask")
        if isinstance(bid, int | float) and isinstance(ask, int | float) and 0 < bid <= ask:
            quote = Quote(symbol, quote.price, float(bid), float(ask), quote.open)
        self._last[symbol] = quote
        self._log_price[symbol] = math.log(price)

    # -- simulation --------------------------------------------------------------------------------

    def step(self) -> list[Quote]:
        """Advance every symbol by one interval; the new quotes, in symbol order."""
        dt = self.interval_s
        noise = self._volatility * math.sqrt(dt)
        quotes = []
        for symbol in self.symbols:
            anchor = math.log(self._open[symbol])
            current = self._log_price[symbol]
            current += -self._reversion * (current - anchor) * dt + noise * self._rng.gauss(0.0, 1.0)
            self._log_price[symbol] = current
            quote = self._quote(symbol, math.exp(current))
            self._last[symbol] = quote
            quotes.append(quote)
        return quotes

    def _quote(self, symbol: str, mid: float) -> Quote:
        half = max(0.01, mid * self._half_spread)
        price = round(mid, 2)
        bid = round(price - half, 2)
        ask = round(price + half, 2)
        if bid >= ask:  # rounding collapsed the spread on a cheap symbol: keep one cent apart
            bid, ask = round(price - 0.01, 2), round(price + 0.01, 2)
        return Quote(symbol, price, max(0.0, bid), ask, self._open[symbol])

    async def tick(self, publisher: Publisher, steps: int = 1) -> list[Quote]:
        """Run `steps` steps and publish all their quotes as one batch (a bad batch is never half-sent)."""
        quotes = [q for _ in range(max(1, steps)) for q in self.step()]
        await publisher.publish([PublishRequest("price:update", q.payload()) for q in quotes])
        self.stats.record(len(quotes), publisher.clock.wall_ms())
        return quotes

    async def run(self, publisher: Publisher) -> None:
        """Publish at `rate` steps per second until cancelled."""

        async def step(due: int) -> None:
            await self.tick(publisher, due)

        await every(self.interval_s, publisher.clock, step, "demo-market")
