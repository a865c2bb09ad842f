"""The demo's automated agents, reacting to the simulated market.

- `StrategyBot`: one per demo user (strategyId `momentum-<user>`), a moving-average
  crossover publishing `strategy:update` signals on that user's log.
- `RuleAgent`: a rule-based stand-in for an AI trading agent (model `rules-v1`),
  publishing `ai:decision` every few seconds.
- `AlertMonitor`: `alert:new` when a symbol moves far from its session open.
- `AgentBoard`: public `agent:status` broadcasts for the system agents.

They sample prices on their own schedule (once a second) instead of hooking into
every market step: a demo at 1000 updates/s must not run strategy code 1000 times
a second, and each agent stays a plain object that a test drives call by call.
Every method that decides something returns the payloads; publishing is the
caller's job (see `tickwire.demo.app`).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from statistics import fmean, pstdev
from typing import Any

from tickwire.core.clock import Clock
from tickwire.demo.feed import AgentStats
from tickwire.demo.market import Quote, QuoteSource
from tickwire.demo.users import DemoUser
from tickwire.pipeline import PublishRequest

__all__ = ["AgentBoard", "AlertMonitor", "Crossing", "Crossover", "RuleAgent", "StrategyBot"]


def _quotes(market: QuoteSource) -> Iterable[Quote]:
    for symbol in market.symbols:
        quote = market.quote(symbol)
        if quote is not None:
            yield quote


def _clamp(value: float, low: float, high: float) -> float:
    return round(min(high, max(low, value)), 2)


# -- moving-average crossover strategy ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Crossing:
    """The short average crossed the long one: `buy` when it crossed above."""

    symbol: str
    action: str
    price: float
    short_ma: float
    long_ma: float
    trend: float  # relative price change over the long window


class Crossover:
    """Detects the short simple moving average crossing the long one, per symbol.

    Nothing is reported until a symbol has `long` samples, and the first side seen
    is only remembered: a crossing needs a change of side, not a starting side.
    """

    def __init__(self, short: int, long: int) -> None:
        if not 1 <= short < long:
            raise ValueError(f"need 1 <= short < long, got short={short} long={long}")
        self.short = short
        self.long = long
        self._windows: dict[str, deque[float]] = {}
        self._side: dict[str, int] = {}

    def update(self, symbol: str, price: float) -> Crossing | None:
        window = self._windows.setdefault(symbol, deque(maxlen=self.long))
        window.append(price)
        if len(window) < self.long:
            return None
        long_ma = fmean(window)
        short_ma = fmean(list(window)[-self.short :])
        side = (short_ma > long_ma) - (short_ma < long_ma)
        if side == 0:
            return None  # touching is not crossing: keep the last side
        previous = self._side.get(symbol)
        self._side[symbol] = side
        if previous is None or previous == side:
            return None
        trend = window[-1] / window[0] - 1 if window[0] else 0.0
        return Crossing(symbol, "buy" if side > 0 else "sell", price, short_ma, long_ma, trend)


class StrategyBot:
    """A demo user's momentum strategy: crossover signals as `strategy:update`.

    Confidence grows when the move over the long window agrees with the signal (a
    crossing along the trend) and shrinks against it: 0.5 at no trend, +/-0.5 per 1%.
    """

    def __init__(self, user: DemoUser, market: QuoteSource) -> None:
        self.user = user.id
        self.strategy_id = user.strategy_id
        self.crossover = Crossover(user.short_window, user.long_window)
        self._market = market

    def started(self) -> PublishRequest:
        """The `strategy:update` that registers the strategy for its user."""
        data = {
            "strategyId": self.strategy_id,
            "status": "started",
            "name": f"Momentum SMA {self.crossover.short}/{self.crossover.long}",
            "symbols": list(self._market.symbols),
        }
        return PublishRequest("strategy:update", data, self.user)

    def observe(self) -> list[PublishRequest]:
        """Sample the market once; a signal for every crossing."""
        signals = []
        for quote in _quotes(self._market):
            crossing = self.crossover.update(quote.symbol, quote.price)
            if crossing is not None:
                signals.append(PublishRequest("strategy:update", self._signal(crossing), self.user))
        return signals

    def _signal(self, c: Crossing) -> dict[str, Any]:
        agree = c.trend if c.action == "buy" else -c.trend
        short, long = self.crossover.short, self.crossover.long
        direction = "above" if c.action == "buy" else "below"
        return {
            "strategyId": self.strategy_id,
            "status": "running",
            "signal": "golden_cross" if c.action == "buy" else "death_cross",
            "symbol": c.symbol,
            "action": c.action,
            "confidence": _clamp(0.5 + 50 * agree, 0.05, 0.95),
            "reasoning": (
                f"SMA{short} {c.short_ma:.2f} crossed {direction} SMA{long} {c.long_ma:.2f}; "
                f"price {c.trend:+.2%} over the last {long} samples"
            ),
            "price": c.price,
            "shortMa": round(c.short_ma, 4),
            "longMa": round(c.long_ma, 4),
        }


# -- rule-based "AI" agent -----------------------------------------------------------------------------


class RuleAgent:
    """A transparent stand-in for an AI agent: momentum measured against volatility.

    For each symbol it keeps the last `lookback` samples and scores the move over them
    in units of its own noise (a z-score). A decision picks the symbol with the
    strongest score, skipping the previous decision's symbol so the feed varies: buy
    above +`threshold`, sell below -`threshold`, hold in between.
    """

    model = "rules-v1"

    def __init__(
        self,
        market: QuoteSource,
        *,
        rng: random.Random | None = None,
        lookback: int = 30,
        threshold: float = 1.0,
    ) -> None:
        if lookback < 3:
            raise ValueError(f"lookback must be at least 3 samples, got {lookback}")
        self._market = market
        self._rng = rng or random.Random()
        self._lookback = lookback
        self._threshold = threshold
        self._samples: dict[str, deque[float]] = {}
        self._previous: str | None = None
        self.stats = AgentStats("ai-agent", "AI decision agent (rules-v1)")

    def observe(self) -> None:
        for quote in _quotes(self._market):
            self._samples.setdefault(quote.symbol, deque(maxlen=self._lookback)).append(quote.price)

    def score(self, symbol: str) -> float | None:
        """The move over the window divided by the noise expected over it; None without enough data."""
        window = self._samples.get(symbol)
        if window is None or len(window) < min(10, self._lookback) or window[0] <= 0:
            return None
        returns = [b / a - 1 for a, b in pairwise(window) if a > 0]
        noise = pstdev(returns) * math.sqrt(len(returns))
        move = window[-1] / window[0] - 1
        if noise == 0:
            return 0.0 if move == 0 else math.copysign(10.0, move)
        return move / noise

    def decide(self, now_ms: int) -> dict[str, Any] | None:
        """The next decision, None until some symbol has enough samples."""
        scored = [(s, z) for s in self._market.symbols if (z := self.score(s)) is not None]
        if len(scored) > 1:
            scored = [(s, z) for s, z in scored if s != self._previous]
        if not scored:
            return None
        symbol, z = max(scored, key=lambda item: abs(item[1]))
        self._previous = symbol
        window = self._samples[symbol]
        move = window[-1] / window[0] - 1
        if z > self._threshold:
            action, confidence, rule = "buy", 0.4 + 0.15 * z, "upward momentum beyond normal noise"
        elif z < -self._threshold:
            action, confidence, rule = "sell", 0.4 - 0.15 * z, "downward momentum beyond normal noise"
        else:
            action, confidence, rule = "hold", 0.9 - 0.3 * abs(z), "move within normal noise"
        self.stats.record(1, now_ms)
        return {
            "decisionId": f"dec-{self._rng.getrandbits(48):012x}",
            "symbol": symbol,
            "action": action,
            "confidence": _clamp(confidence, 0.05, 0.95),
            "reasoning": f"{symbol} {move:+.2%} over {len(window)} samples (z {z:+.2f}): {rule}",
            "model": self.model,
            "price": window[-1],
            "zScore": round(z, 3),
        }


# -- threshold alerts ---------------------------------------------------------------------------------


class AlertMonitor:
    """`alert:new` when a symbol moves away from its session open.

    Moves are measured in bands of `warn_pct`: the first band is a warning, from
    `error_pct` on an error. A symbol alerts when it reaches a band further out than
    the one it last alerted in (so a symbol parked at +2% does not repeat itself),
    and at most once per `cooldown_s`. Coming back towards the open lowers the
    remembered band, so a second breakout alerts again.
    """

    def __init__(
        self,
        market: QuoteSource,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        warn_pct: float = 1.5,
        error_pct: float = 3.0,
        cooldown_s: float = 30.0,
    ) -> None:
        if not 0 < warn_pct <= error_pct:
            raise ValueError(f"need 0 < warn_pct <= error_pct, got {warn_pct} and {error_pct}")
        self._market = market
        self._clock = clock
        self._rng = rng or random.Random()
        self.warn_pct = warn_pct
        self.error_pct = error_pct
        self.cooldown_s = cooldown_s
        self._band: dict[str, int] = {}  # signed band of the last alert (or of the way back)
        self._last_alert: dict[str, float] = {}
        self.stats = AgentStats("alert-monitor", "Alert monitor")

    def check(self) -> list[dict[str, Any]]:
        """The alerts due now (payloads for `alert:new`)."""
        now = self._clock.monotonic()
        alerts = []
        quotes = list(_quotes(self._market))
        for quote in quotes:
            opened = self._market.open_price(quote.symbol)
            move_pct = (quote.price / opened - 1) * 100
            band = int(move_pct / self.warn_pct)  # truncates towards zero: signed band
            last_band = self._band.get(quote.symbol, 0)
            if band * last_band < 0:
                last_band = self._band[quote.symbol] = 0  # crossed the open: a new direction
            if abs(band) < abs(last_band):
                self._band[quote.symbol] = band  # back towards the open: re-arm
                continue
            if abs(band) == abs(last_band):
                continue
            last = self._last_alert.get(quote.symbol)
            if last is not None and now - last < self.cooldown_s:
                continue
            self._band[quote.symbol] = band
            self._last_alert[quote.symbol] = now
            alerts.append(self._alert(quote, opened, move_pct))
        self.stats.record(len(quotes), self._clock.wall_ms())
        return alerts

    def _alert(self, quote: Quote, opened: float, move_pct: float) -> dict[str, Any]:
        level = "error" if abs(move_pct) >= self.error_pct else "warning"
        direction = "up" if move_pct > 0 else "down"
        return {
            "alertId": f"alr-{self._rng.getrandbits(48):012x}",
            "level": level,
            "message": (
                f"{quote.symbol} is {direction} {abs(move_pct):.2f}% from the session open "
                f"({opened:.2f} -> {quote.price:.2f})"
            ),
            "symbol": quote.symbol,
            "movePct": round(move_pct, 3),
            "openPrice": opened,
            "price": quote.price,
        }


# -- agent status -------------------------------------------------------------------------------------


class AgentBoard:
    """Public `agent:status` broadcasts for the demo's system agents."""

    def __init__(self, agents: Sequence[AgentStats]) -> None:
        self.agents = list(agents)

    def statuses(self, now_ms: int) -> list[PublishRequest]:
        return [PublishRequest("agent:status", agent.status(now_ms)) for agent in self.agents]
