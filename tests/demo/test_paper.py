"""The paper broker (tickwire.demo.paper): order validation, fills, cancels and their events."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from demo.helpers import SYMBOLS, Recorder, StubMarket, demo_node_settings, run
from tickwire.core.clock import FakeClock
from tickwire.core.event import user_log
from tickwire.demo.market import MarketSimulator
from tickwire.demo.paper import MAX_QTY, OrderNotFound, OrderNotOpen, OrderRejected, PaperBroker
from tickwire.node import Node
from tickwire.pipeline.validate import PublishRequest


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
