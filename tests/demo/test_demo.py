"""Demo mode: the market simulator, the paper broker, the bots and the demo routes.

Everything is driven call by call with a fake clock and seeded randomness: no test
sleeps. `Recorder` stands in for the node where only the published requests matter;
the node itself is used where the server's derivations (positions, strategy owners,
snapshots) are the point.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import pytest

from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.core.event import user_log
from tickwire.demo import create_demo_app
from tickwire.demo.app import DEMO_CONNECT_RATE, Demo, demo_settings
from tickwire.demo.bots import AgentBoard, AlertMonitor, Crossover, RuleAgent, StrategyBot
from tickwire.demo.feed import MAX_CATCH_UP, AgentStats, every
from tickwire.demo.market import MarketSimulator, Quote
from tickwire.demo.paper import MAX_QTY, OrderNotFound, OrderNotOpen, OrderRejected, PaperBroker
from tickwire.demo.routes import STATIC_FILES
from tickwire.demo.users import DEMO_USERS
from tickwire.node import Node
from tickwire.publishing import PublishRequest, parse_item

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


# -- pacing -------------------------------------------------------------------------------------------


def test_every_catches_up_on_its_own_clock_and_survives_a_failing_step() -> None:
    """The schedule follows the injected clock: steps report how many intervals were due."""
    clock = FakeClock()
    calls: list[int] = []
    jumps = iter([0.35, 1000.0, 0.0])

    async def step(due: int) -> None:
        calls.append(due)
        if len(calls) == 2:
            raise RuntimeError("a bad tick")
        if len(calls) == 5:
            raise asyncio.CancelledError
        clock.advance(next(jumps))

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await every(0.1, clock, step, "test")

    run(main())
    # on time; 0.35 s later two were due (that step failed, and the loop went on); on time;
    # 1000 s later the backlog is capped and dropped; the schedule restarts from then
    assert calls == [1, 2, 1, MAX_CATCH_UP, 1]
    with pytest.raises(ValueError, match="positive"):
        run(every(0, clock, step, "test"))


# -- market simulator ----------------------------------------------------------------------------------


def test_seeded_simulators_produce_the_same_quotes() -> None:
    a = MarketSimulator(SYMBOLS, 5, rng=random.Random(42))
    b = MarketSimulator(SYMBOLS, 5, rng=random.Random(42))
    c = MarketSimulator(SYMBOLS, 5, rng=random.Random(43))
    walk_a = [a.step() for _ in range(200)]
    assert walk_a == [b.step() for _ in range(200)]
    assert walk_a != [c.step() for _ in range(200)]


def test_quotes_have_a_spread_around_the_price_and_carry_the_open() -> None:
    market = MarketSimulator(SYMBOLS, 10, rng=random.Random(1))
    assert market.quote("AAPL") is None
    for _ in range(100):
        for quote in market.step():
            assert quote.bid < quote.price < quote.ask
            assert quote.payload() == {
                "symbol": quote.symbol,
                "price": quote.price,
                "bid": quote.bid,
                "ask": quote.ask,
                "open": market.open_price(quote.symbol),
            }
            assert market.quote(quote.symbol) == quote
    assert [q.symbol for q in market.step()] == list(SYMBOLS)


def test_unknown_symbols_get_a_seeded_open_and_known_ones_a_plausible_one() -> None:
    first = MarketSimulator(["ZZZ", "AAPL"], 1, rng=random.Random(5))
    second = MarketSimulator(["ZZZ", "AAPL"], 1, rng=random.Random(5))
    assert first.open_price("ZZZ") == second.open_price("ZZZ")
    assert 20 <= first.open_price("ZZZ") <= 500
    assert first.open_price("AAPL") == 228.50
    assert first.knows("ZZZ") and not first.knows("NOPE")


def test_prices_stay_near_the_open_over_a_long_session() -> None:
    market = MarketSimulator(["AAPL"], 1, rng=random.Random(9))  # one step per simulated second
    prices = [market.step()[0].price for _ in range(6 * 3600)]
    assert min(prices) > 228.5 * 0.8
    assert max(prices) < 228.5 * 1.25
    assert max(prices) - min(prices) > 1.0  # and it does move


def test_market_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one symbol"):
        MarketSimulator([], 1)
    with pytest.raises(ValueError, match="rate"):
        MarketSimulator(["AAPL"], 0)
    assert MarketSimulator(["AAPL", "AAPL"], 4).symbols == ("AAPL",)
    assert MarketSimulator(["AAPL"], 4).interval_s == 0.25


def test_a_tick_publishes_every_step_as_one_public_batch() -> None:
    market = MarketSimulator(SYMBOLS, 5, rng=random.Random(3))
    recorder = Recorder()
    quotes = run(market.tick(recorder, steps=4))
    assert len(recorder.batches) == 1
    batch = recorder.batches[0]
    assert len(batch) == len(quotes) == 4 * len(SYMBOLS)
    assert {r.type for r in batch} == {"price:update"}
    assert all(r.user is None for r in batch)
    assert [r.data["symbol"] for r in batch[:3]] == list(SYMBOLS)
    assert market.stats.processed == 12
    assert market.stats.last_run_ms == recorder.clock.wall_ms()


def test_published_prices_become_the_nodes_price_state() -> None:
    async def scenario() -> dict[str, Any]:
        node = Node(demo_node_settings(), clock=FakeClock())
        await node.start()
        try:
            market = MarketSimulator(SYMBOLS, 5, rng=random.Random(3))
            await market.tick(node)
            snapshot = await node.broker.snapshot("prices", ["prices"])
            return {v["symbol"]: v for v in snapshot.states["prices"]} | {"_last": market.quote("TSLA")}
        finally:
            await node.stop()

    state = run(scenario())
    last = state.pop("_last")
    assert set(state) == set(SYMBOLS)
    assert state["TSLA"]["price"] == last.price
    assert "timestamp" in state["TSLA"]


# -- paper broker ----------------------------------------------------------------------------------------


def make_broker(seed: int = 0, **kwargs: Any) -> tuple[PaperBroker, StubMarket, Recorder]:
    market = StubMarket(AAPL=100.0, MSFT=400.0)
    recorder = Recorder()
    return PaperBroker(recorder, market, rng=random.Random(seed), **kwargs), market, recorder


def fill_until_done(broker: PaperBroker, recorder: Recorder, steps: int = 5) -> None:
    for _ in range(steps):
        recorder.clock.advance(1.0)  # longer than the largest fill delay
        run(broker.step())


def test_a_market_order_is_new_then_filled_at_the_ask() -> None:
    broker, _market, recorder = make_broker()
    order = run(broker.place("alice", "AAPL", "buy", 10))
    assert order["orderId"].startswith("ord-")
    assert order | {"orderId": "x"} == {
        "orderId": "x",
        "symbol": "AAPL",
        "side": "buy",
        "qty": 10,
        "type": "market",
        "limitPrice": None,
        "status": "new",
        "filledQty": 0,
        "filledAvgPrice": 0.0,
    }
    assert [(r.type, r.user) for r in recorder.events()] == [("order:update", "alice")]
    assert run(broker.step()) == 0  # nothing is due before the fill delay
    fill_until_done(broker, recorder)
    fills = recorder.events("order:fill")
    assert fills[-1].data["status"] == "filled"
    assert fills[-1].data["filledQty"] == 10
    assert fills[-1].data["filledAvgPrice"] == 100.05
    trades = recorder.events("trade:new")
    assert sum(t.data["qty"] for t in trades) == 10
    assert {t.data["price"] for t in trades} == {100.05}
    assert all(t.data["tradeId"].startswith("trd-") and t.data["orderId"] == order["orderId"] for t in trades)
    assert recorder.events("order:update")[-1].data["status"] == "filled"
    assert not recorder.events("position:update"), "positions are the node's job"
    assert broker.open_orders("alice") == []


def test_each_fill_is_one_batch_of_fill_update_and_trade() -> None:
    broker, _market, recorder = make_broker()
    run(broker.place("alice", "MSFT", "sell", 3))
    fill_until_done(broker, recorder)
    for batch in recorder.batches[1:]:
        assert [r.type for r in batch] == ["order:fill", "order:update", "trade:new"]
        fill, update, trade = (r.data for r in batch)
        assert fill["status"] == update["status"]
        assert trade["price"] == 399.95  # sells fill at the bid
        assert fill["lastQty"] == trade["qty"]


def test_market_orders_fill_in_one_or_two_parts_with_cumulative_totals() -> None:
    shapes = set()
    for seed in range(30):
        broker, market, recorder = make_broker(seed)
        run(broker.place("bob", "AAPL", "buy", 100))
        recorder.clock.advance(1.0)
        run(broker.step())
        market.set("AAPL", 110.0)  # the second part fills at the new price
        fill_until_done(broker, recorder)
        fills = [r.data for r in recorder.events("order:fill")]
        shapes.add(len(fills))
        assert [f["status"] for f in fills][-1] == "filled"
        assert all(f["status"] == "partially_filled" for f in fills[:-1])
        qtys = [f["filledQty"] for f in fills]
        assert qtys == sorted(qtys) and qtys[-1] == 100
        if len(fills) == 2:
            first = fills[0]["filledQty"]
            assert 1 <= first < 100
            expected = (first * 100.05 + (100 - first) * 110.05) / 100
            assert fills[1]["filledAvgPrice"] == pytest.approx(expected, abs=1e-6)
            updates = [r.data["status"] for r in recorder.events("order:update")]
            assert updates == ["new", "partially_filled", "filled"]
    assert shapes == {1, 2}


def test_a_single_share_is_never_split() -> None:
    for seed in range(10):
        broker, _market, recorder = make_broker(seed)
        run(broker.place("bob", "AAPL", "buy", 1))
        fill_until_done(broker, recorder)
        assert len(recorder.events("order:fill")) == 1


def test_a_limit_buy_waits_until_the_ask_reaches_the_limit() -> None:
    broker, market, recorder = make_broker()
    order = run(broker.place("alice", "AAPL", "buy", 5, "limit", 99.0))
    assert order["limitPrice"] == 99.0 and order["type"] == "limit"
    fill_until_done(broker, recorder)
    assert not recorder.events("order:fill")
    market.set("AAPL", 98.96)  # ask 99.01: still above the limit
    fill_until_done(broker, recorder, 1)
    assert not recorder.events("order:fill")
    market.set("AAPL", 98.90)  # ask 98.95
    fill_until_done(broker, recorder, 1)
    fills = recorder.events("order:fill")
    assert len(fills) == 1
    assert fills[0].data["filledQty"] == 5
    assert fills[0].data["filledAvgPrice"] == 98.95  # at the quote, better than the limit
    assert fills[0].data["status"] == "filled"


def test_a_limit_sell_fills_when_the_bid_reaches_the_limit() -> None:
    broker, market, recorder = make_broker()
    run(broker.place("alice", "AAPL", "sell", 5, "limit", 101.0))
    fill_until_done(broker, recorder)
    assert not recorder.events("order:fill")
    market.set("AAPL", 101.10)  # bid 101.05
    fill_until_done(broker, recorder, 1)
    assert [f.data["filledAvgPrice"] for f in recorder.events("order:fill")] == [101.05]


def test_a_marketable_limit_order_still_shows_new_before_filling() -> None:
    broker, _market, recorder = make_broker()
    run(broker.place("alice", "AAPL", "buy", 5, "limit", 150.0))
    assert [r.data["status"] for r in recorder.events()] == ["new"]
    assert run(broker.step()) == 0
    fill_until_done(broker, recorder, 1)
    assert recorder.events("order:fill")[0].data["filledAvgPrice"] == 100.05


def test_cancel_an_open_order() -> None:
    broker, market, recorder = make_broker()
    order = run(broker.place("alice", "AAPL", "buy", 5, "limit", 50.0))
    canceled = run(broker.cancel("alice", order["orderId"]))
    assert canceled["status"] == "canceled"
    assert canceled["reason"] == "user_requested"
    assert recorder.events()[-1] == PublishRequest("order:update", canceled, "alice")
    market.set("AAPL", 10.0)
    fill_until_done(broker, recorder)
    assert not recorder.events("order:fill"), "a canceled order never fills"
    with pytest.raises(OrderNotOpen, match="already canceled") as info:
        run(broker.cancel("alice", order["orderId"]))
    assert info.value.status == 409


def test_cancel_refuses_unknown_foreign_and_filled_orders() -> None:
    broker, _market, recorder = make_broker()
    order = run(broker.place("alice", "AAPL", "buy", 5))
    published = len(recorder.events())
    with pytest.raises(OrderNotFound) as info:
        run(broker.cancel("bob", order["orderId"]))
    assert info.value.status == 404
    with pytest.raises(OrderNotFound):
        run(broker.cancel("alice", "ord-unknown"))
    assert len(recorder.events()) == published
    fill_until_done(broker, recorder)
    with pytest.raises(OrderNotOpen, match="already filled"):
        run(broker.cancel("alice", order["orderId"]))


def test_cancel_a_partially_filled_order_keeps_what_was_filled() -> None:
    for seed in range(30):
        broker, _market, recorder = make_broker(seed)
        order = run(broker.place("alice", "AAPL", "buy", 100))
        recorder.clock.advance(1.0)
        run(broker.step())
        if recorder.events("order:fill")[-1].data["status"] != "partially_filled":
            continue
        canceled = run(broker.cancel("alice", order["orderId"]))
        assert canceled["status"] == "canceled"
        assert 0 < canceled["filledQty"] < 100
        fill_until_done(broker, recorder)
        assert len(recorder.events("order:fill")) == 1
        return
    pytest.fail("no seed produced a partial fill")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("NOPE", "buy", 1), "symbol must be one of AAPL, MSFT"),
        ((42, "buy", 1), "symbol must be one of"),
        (("AAPL", "hold", 1), "side must be buy or sell"),
        (("AAPL", None, 1), "side must be buy or sell"),
        (("AAPL", "buy", 0), "qty must be a whole number"),
        (("AAPL", "buy", -3), "qty must be a whole number"),
        (("AAPL", "buy", 1.5), "qty must be a whole number"),
        (("AAPL", "buy", True), "qty must be a whole number"),
        (("AAPL", "buy", "10"), "qty must be a whole number"),
        (("AAPL", "buy", math.inf), "qty must be a whole number"),
        (("AAPL", "buy", MAX_QTY + 1), "qty must be a whole number"),
        (("AAPL", "buy", 1, "stop"), "type must be market or limit"),
        (("AAPL", "buy", 1, "limit"), "limitPrice must be a positive number"),
        (("AAPL", "buy", 1, "limit", 0), "limitPrice must be a positive number"),
        (("AAPL", "buy", 1, "limit", -5.0), "limitPrice must be a positive number"),
        (("AAPL", "buy", 1, "limit", math.nan), "limitPrice must be a positive number"),
        (("AAPL", "buy", 1, "limit", True), "limitPrice must be a positive number"),
        (("AAPL", "buy", 1, "limit", "99"), "limitPrice must be a positive number"),
        (("AAPL", "buy", 1, "market", 99.0), "limitPrice is only for limit orders"),
    ],
)
def test_invalid_orders_are_rejected_and_nothing_is_published(args: tuple[Any, ...], message: str) -> None:
    broker, _market, recorder = make_broker()
    with pytest.raises(OrderRejected, match=message) as info:
        run(broker.place("alice", *args))
    assert info.value.status == 400
    assert recorder.batches == []


def test_orders_are_normalized() -> None:
    broker, _market, _recorder = make_broker()
    order = run(broker.place("alice", " aapl ", "BUY", 10.0, "Limit", 99))
    assert (order["symbol"], order["side"], order["qty"], order["type"], order["limitPrice"]) == (
        "AAPL",
        "buy",
        10,
        "limit",
        99.0,
    )
    assert isinstance(order["qty"], int)


def test_open_orders_per_user_are_bounded() -> None:
    broker, _market, _recorder = make_broker(max_open_per_user=2)
    for _ in range(2):
        run(broker.place("alice", "AAPL", "buy", 1, "limit", 1.0))
    with pytest.raises(OrderRejected, match="too many open orders"):
        run(broker.place("alice", "AAPL", "buy", 1, "limit", 1.0))
    run(broker.place("bob", "AAPL", "buy", 1, "limit", 1.0))  # other users are not affected


def test_finished_orders_are_forgotten_beyond_the_bound() -> None:
    broker, _market, _recorder = make_broker(remember=2)
    ids = [run(broker.place("alice", "AAPL", "buy", 1, "limit", 1.0))["orderId"] for _ in range(3)]
    for order_id in ids:
        run(broker.cancel("alice", order_id))
    assert broker.get(ids[0]) is None
    with pytest.raises(OrderNotFound):
        run(broker.cancel("alice", ids[0]))
    with pytest.raises(OrderNotOpen):
        run(broker.cancel("alice", ids[2]))


def test_fills_through_a_node_become_positions_and_order_state() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], float | None]:
        clock = FakeClock()
        node = Node(demo_node_settings(), clock=clock)
        await node.start()
        try:
            market = MarketSimulator(SYMBOLS, 5, rng=random.Random(4))
            await market.tick(node)
            broker = PaperBroker(node, market, rng=random.Random(4))
            await broker.place("alice", "MSFT", "buy", 40)
            for _ in range(4):
                clock.advance(1.0)
                await broker.step()
            snap = await node.broker.snapshot(user_log("alice"), ["orders", "positions"])
            quote = market.quote("MSFT")
            return snap.states["orders"], snap.states["positions"], quote.ask if quote else None
        finally:
            await node.stop()

    orders, positions, ask = run(scenario())
    assert [(o["status"], o["filledQty"]) for o in orders] == [("filled", 40)]
    assert [(p["symbol"], p["quantity"], p["entryPrice"]) for p in positions] == [("MSFT", 40, ask)]


# -- bots -----------------------------------------------------------------------------------------------


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


# -- wiring -----------------------------------------------------------------------------------------


def test_demo_start_publishes_the_opening_state_and_registers_strategies() -> None:
    async def scenario() -> dict[str, Any]:
        settings = demo_node_settings()
        node = Node(settings, clock=FakeClock())
        await node.start()
        try:
            demo = Demo(node, settings, seed=11)
            await demo.start(node)
            owners = {u: await node.broker.strategy_owner(f"momentum-{u}") for u in DEMO_USERS}
            prices = await node.broker.snapshot("prices", ["prices"])
            agents = await node.broker.history("agent", None)
            for _ in range(25):
                demo.market.step()
                await demo.sample()
            await demo.decide()
            decisions = await node.broker.history(user_log("bob"), None)
            return {
                "owners": owners,
                "prices": len(prices.states["prices"]),
                "agents": sorted(e.data["agentId"] for e in agents.events),
                "decisions": [e for e in decisions.events if e.type == "ai:decision"],
            }
        finally:
            await node.stop()

    result = run(scenario())
    assert result["owners"] == {u: u for u in DEMO_USERS}
    assert result["prices"] == 6
    assert result["agents"] == [
        "ai-agent",
        "alert-monitor",
        "market-simulator",
        "paper-broker",
        "strategy-runner",
    ]
    assert len(result["decisions"]) == 1
    assert result["decisions"][0].data["model"] == "rules-v1"


def test_demo_settings_allow_the_page_to_open_its_streams() -> None:
    assert demo_settings(demo_node_settings()).connect_rate == DEMO_CONNECT_RATE
    configured = load_settings(env={"TICKWIRE_DEMO": "1", "TICKWIRE_CONNECT_RATE": "5"})
    assert demo_settings(configured).connect_rate == 5
    off = load_settings(env={"TICKWIRE_DEMO": "1"}, overrides={"connect_rate": 0})
    assert demo_settings(off).connect_rate == 0


# -- routes -------------------------------------------------------------------------------------------

Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


def in_app(scenario: Scenario) -> None:
    """Run `scenario` against a demo app in-process (the node and its loops start with the first request)."""

    async def main() -> None:
        app = create_demo_app(demo_node_settings())
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                await scenario(client)
        finally:
            await app.state.node.stop()

    asyncio.run(main())


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"error", "message", "statusCode"}
    assert body["statusCode"] == response.status_code
    return response.status_code, body["error"], body["message"]


def test_login_sets_an_http_only_session_cookie() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post("/api/login", json={"user": "alice"})
        assert response.status_code == 200
        body = response.json()
        assert body["userId"] == "alice" and body["roles"] == [] and body["strategies"] == ["momentum-alice"]
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"session={body['token']};")
        for attribute in ("HttpOnly", "Path=/", "SameSite=lax"):
            assert attribute in cookie
        me = await client.get("/api/me")
        assert me.json() == {"userId": "alice", "roles": [], "strategies": ["momentum-alice"]}
        admin = (await client.post("/api/login", json={"user": "admin"})).json()
        assert admin["roles"] == ["admin"]

    in_app(scenario)


def test_login_refuses_unknown_users_and_bad_bodies() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        status, error, message = error_of(await client.post("/api/login", json={"user": "mallory"}))
        assert (status, error) == (400, "Bad Request")
        assert "alice, bob, admin" in message
        assert error_of(await client.post("/api/login", json=["alice"]))[2] == "Body must be a JSON object"
        bad = await client.post("/api/login", content=b"{", headers={"Content-Type": "application/json"})
        assert error_of(bad)[2] == "Body is not valid JSON"
        form = await client.post(
            "/api/login", content=b"user=alice", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert error_of(form)[2] == "Content-Type must be application/json"
        huge = await client.post("/api/login", json={"user": "x" * 20_000})
        assert error_of(huge)[0] == 413
        wrong = await client.get("/api/login")
        assert error_of(wrong) == (405, "Method Not Allowed", "Method not allowed: use POST")
        assert wrong.headers["allow"] == "POST, OPTIONS"

    in_app(scenario)


def test_logout_and_me() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        assert error_of(await client.get("/api/me")) == (401, "Unauthorized", "No valid session found")
        await client.post("/api/login", json={"user": "bob"})
        assert (await client.get("/api/me")).status_code == 200
        response = await client.post("/api/logout")
        assert response.status_code == 200
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert (await client.get("/api/me")).status_code == 401
        forged = await client.get("/api/me", headers={"Authorization": "Bearer not-a-token"})
        assert error_of(forged) == (401, "Unauthorized", "Invalid or expired session")

    in_app(scenario)


def test_place_and_cancel_orders_over_http() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        anonymous = await client.post("/api/orders", json={"symbol": "AAPL", "side": "buy", "qty": 1})
        assert error_of(anonymous)[0] == 401
        await client.post("/api/login", json={"user": "alice"})
        limit = {"symbol": "AAPL", "side": "buy", "qty": 3, "type": "limit", "limitPrice": 1}
        created = await client.post("/api/orders", json=limit)
        assert created.status_code == 201
        order = created.json()
        assert order["status"] == "new" and order["limitPrice"] == 1.0
        url = f"/api/orders/{order['orderId']}"
        await client.post("/api/login", json={"user": "bob"})
        assert error_of(await client.delete(url))[0] == 404
        await client.post("/api/login", json={"user": "alice"})
        canceled = await client.delete(url)
        assert canceled.status_code == 200
        assert canceled.json()["status"] == "canceled" and canceled.json()["reason"] == "user_requested"
        status, error, message = error_of(await client.delete(url))
        assert (status, error) == (409, "Conflict") and "already canceled" in message
        market = await client.post("/api/orders", json={"symbol": "MSFT", "side": "sell", "qty": 2})
        assert market.status_code == 201 and market.json()["type"] == "market"

    in_app(scenario)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"symbol": "AAPL", "side": "buy"}, "Missing qty"),
        ({"side": "buy", "qty": 1}, "Missing symbol"),
        ({"symbol": "AAPL", "side": "buy", "qty": 1, "price": 3}, "Unknown field(s) price"),
        ({"symbol": "AAPL", "side": "short", "qty": 1}, "side must be buy or sell"),
        ({"symbol": "AAPL", "side": "buy", "qty": 0}, "qty must be a whole number"),
        (
            {"symbol": "AAPL", "side": "buy", "qty": 1, "type": "limit"},
            "limitPrice must be a positive number",
        ),
        ({"symbol": "XXX", "side": "buy", "qty": 1}, "symbol must be one of"),
    ],
)
def test_order_validation_messages(body: dict[str, Any], message: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        await client.post("/api/login", json={"user": "alice"})
        status, _error, text = error_of(await client.post("/api/orders", json=body))
        assert status == 400
        assert message in text

    in_app(scenario)


def test_the_page_and_its_static_files() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/static/app.js" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for name, media_type in STATIC_FILES.items():
            response = await client.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == media_type
            assert response.headers["x-content-type-options"] == "nosniff"
        for name in ("index.html", "..%2fdemo%2fapp.py", "app.jsx"):
            assert (await client.get(f"/static/{name}")).status_code == 404, name
        assert error_of(await client.post("/"))[0] == 405

    in_app(scenario)
