"""The demo bots (tickwire.demo.bots): crossovers, strategy bots, alerts, the rule agent, the board."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from demo.helpers import StubMarket
from tickwire.core.clock import FakeClock
from tickwire.demo.bots import AgentBoard, AlertMonitor, Crossover, RuleAgent, StrategyBot
from tickwire.demo.feed import AgentStats
from tickwire.demo.users import DEMO_USERS
from tickwire.pipeline.validate import PublishRequest, parse_item


def test_crossover_reports_only_changes_of_side() -> None:
    cross = Crossover(3, 6)
    falling = [110, 108, 106, 104, 102, 100]
    assert [cross.update("X", p) for p in falling] == [None] * 6  # a starting side is no crossing
    signals = [cross.update("X", p) for p in (101, 103, 106, 110, 115)]
    buys = [s for s in signals if s is not None]
    assert len(buys) == 1
    assert buys[0].action == "buy" and buys[0].short_ma > buys[0].long_ma
    signals = [cross.update("X", p) for p in (110, 104, 98, 92)]
    sells = [s for s in signals if s is not None]
    assert [s.action for s in sells] == ["sell"]
    assert cross.update("Y", 1.0) is None  # symbols are independent


def test_crossover_needs_a_shorter_short_window() -> None:
    with pytest.raises(ValueError, match="short < long"):
        Crossover(5, 5)
    with pytest.raises(ValueError, match="short < long"):
        Crossover(0, 5)


def feed(bot: StrategyBot, market: StubMarket, symbol: str, prices: Sequence[float]) -> list[PublishRequest]:
    out = []
    for price in prices:
        market.set(symbol, price)
        out.extend(bot.observe())
    return out


def test_strategy_bot_registers_and_signals_for_its_user() -> None:
    market = StubMarket(AAPL=100.0)
    bot = StrategyBot(DEMO_USERS["alice"], market)
    started = bot.started()
    assert started.type == "strategy:update" and started.user == "alice"
    assert started.data["strategyId"] == "momentum-alice"
    assert started.data["status"] == "started"
    signals = feed(
        bot, market, "AAPL", [100 - i * 0.1 for i in range(20)] + [98 + i * 0.3 for i in range(10)]
    )
    assert len(signals) == 1
    signal = signals[0]
    assert signal.user == "alice" and signal.type == "strategy:update"
    assert signal.data["strategyId"] == "momentum-alice"
    assert signal.data["signal"] == "golden_cross"
    assert signal.data["action"] == "buy"
    assert signal.data["symbol"] == "AAPL"
    assert 0 <= signal.data["confidence"] <= 1
    assert "crossed above" in signal.data["reasoning"]


def test_signal_confidence_follows_the_trend() -> None:
    def confidence(prices: list[float]) -> float:
        """The confidence of the buy signal the prices end with."""
        market = StubMarket(AAPL=prices[0])
        bot = StrategyBot(DEMO_USERS["alice"], market)  # SMA 5/20
        signals = feed(bot, market, "AAPL", prices)
        assert signals[-1].data["action"] == "buy"
        return float(signals[-1].data["confidence"])

    # a dip and recovery inside an uptrend vs. a one-sample spike inside a downtrend
    with_trend = [100 + i * 0.2 for i in range(15)] + [
        102.5,
        102.0,
        101.5,
        101.0,
        100.8,
        100.9,
        101.5,
        103,
        105,
    ]
    against = [110 - i * 0.5 for i in range(20)] + [125, 100]
    assert confidence(with_trend) == 0.95
    assert confidence(against) == 0.05


def test_alerts_escalate_by_band_and_are_throttled_per_symbol() -> None:
    market = StubMarket(AAPL=100.0, MSFT=100.0)
    clock = FakeClock()
    monitor = AlertMonitor(market, clock, rng=random.Random(1), warn_pct=1.5, error_pct=3.0, cooldown_s=30)

    def check(**prices: float) -> list[tuple[str, str]]:
        for symbol, price in prices.items():
            market.set(symbol, price)
        return [(a["symbol"], a["level"]) for a in monitor.check()]

    assert check(AAPL=101.0) == []
    assert check(AAPL=101.6) == [("AAPL", "warning")]
    assert check(AAPL=101.8) == []  # same band: said already
    clock.advance(10)
    assert check(AAPL=103.2, MSFT=98.4) == [("MSFT", "warning")]  # AAPL is throttled, MSFT is not
    clock.advance(19)
    assert check() == []  # 29 s after AAPL's alert
    clock.advance(1)
    assert check() == [("AAPL", "error")]
    clock.advance(31)
    assert check(AAPL=100.5) == []  # back towards the open re-arms
    assert check(AAPL=101.7) == [("AAPL", "warning")]
    clock.advance(31)
    assert check(AAPL=98.3) == [("AAPL", "warning")]  # through the open: a new direction
    assert monitor.stats.processed == 9 * 2  # quotes checked


def test_an_alert_says_what_happened() -> None:
    market = StubMarket(TSLA=200.0)
    monitor = AlertMonitor(market, FakeClock(), rng=random.Random(1))
    market.set("TSLA", 193.0)
    (alert,) = monitor.check()
    assert alert["alertId"].startswith("alr-")
    assert alert["level"] == "error"
    assert alert["symbol"] == "TSLA"
    assert alert["message"] == "TSLA is down 3.50% from the session open (200.00 -> 193.00)"
    assert alert["movePct"] == -3.5
    with pytest.raises(ValueError, match="warn_pct <= error_pct"):
        AlertMonitor(market, FakeClock(), warn_pct=3, error_pct=2)


def test_rule_agent_picks_the_strongest_move_and_varies() -> None:
    market = StubMarket(AAPL=100.0, MSFT=100.0, TSLA=100.0)
    agent = RuleAgent(market, rng=random.Random(2), lookback=20)
    assert agent.decide(0) is None  # no samples yet
    noise = random.Random(8)
    for i in range(20):
        market.set("AAPL", 100 + i * 0.25 + noise.uniform(-0.05, 0.05))
        market.set("MSFT", 100 + noise.uniform(-0.2, 0.2))
        market.set("TSLA", 100 - i * 0.1 + noise.uniform(-0.05, 0.05))
        agent.observe()
    first = agent.decide(1_000)
    assert first is not None
    assert first["symbol"] == "AAPL" and first["action"] == "buy"
    assert first["model"] == "rules-v1"
    assert first["decisionId"].startswith("dec-")
    assert 0 <= first["confidence"] <= 1
    assert "AAPL" in first["reasoning"]
    second = agent.decide(2_000)
    assert second is not None
    assert second["symbol"] == "TSLA" and second["action"] == "sell"  # the previous symbol is skipped
    assert agent.stats.processed == 2 and agent.stats.last_run_ms == 2_000
    for request in (PublishRequest("ai:decision", first, "alice"),):
        parse_item({"type": request.type, "user": request.user, "data": request.data}, None)


def test_rule_agent_holds_on_noise() -> None:
    market = StubMarket(AAPL=100.0)
    agent = RuleAgent(market, rng=random.Random(2), lookback=30)
    prices = [100, 100.2, 99.9, 100.1, 99.8, 100.0] * 5
    for price in prices:
        market.set("AAPL", price)
        agent.observe()
    decision = agent.decide(0)
    assert decision is not None and decision["action"] == "hold"


def test_agent_board_broadcasts_public_status() -> None:
    stats = AgentStats("market-simulator", "Market simulator")
    board = AgentBoard([stats])
    (before,) = board.statuses(1_767_350_400_000)
    assert before.type == "agent:status" and before.user is None
    assert before.data == {
        "agentId": "market-simulator",
        "name": "Market simulator",
        "state": "running",
        "lastRunAt": "2026-01-02T10:40:00.000Z",
        "processed": 0,
    }
    stats.record(6, 1_767_350_401_500)
    (after,) = board.statuses(1_767_350_402_000)
    assert after.data["processed"] == 6
    assert after.data["lastRunAt"] == "2026-01-02T10:40:01.500Z"
