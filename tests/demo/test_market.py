"""The market simulator (tickwire.demo.market): seeded quotes, opens, and publishing a tick."""

from __future__ import annotations

import random
from typing import Any

import pytest

from demo.helpers import SYMBOLS, Recorder, demo_node_settings, run
from tickwire.core.clock import FakeClock
from tickwire.demo.market import MarketSimulator
from tickwire.node import Node


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
