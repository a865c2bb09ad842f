"""Portfolio: positions from cumulative fills, P&L, marks, app-managed users, validation."""

from __future__ import annotations

import ast
import inspect
import math
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwire.domain import accounts as accounts_module
from tickwire.domain import fields as fields_module
from tickwire.domain import portfolio as portfolio_module
from tickwire.domain.portfolio import Portfolio

_ids = iter(range(1_000_000))


def trade(
    pf: Portfolio, side: str, qty: float, price: float, symbol: str = "AAPL", user: str = "u1"
) -> dict[str, Any]:
    """One order filled in one go; returns its single position:update."""
    fill = {
        "orderId": f"o{next(_ids)}",
        "symbol": symbol,
        "side": side,
        "filledQty": qty,
        "filledAvgPrice": price,
        "status": "filled",
    }
    updates = pf.apply_fill(user, fill)
    assert len(updates) == 1
    return updates[0]


def pos(
    symbol: str,
    quantity: float,
    entry: float,
    current: float,
    total: float,
    realized: float,
    change: str,
) -> dict[str, Any]:
    """The payload the spec asks for, computed independently of the module."""
    return {
        "symbol": symbol,
        "quantity": quantity,
        "entryPrice": entry,
        "currentPrice": current,
        "value": round(quantity * current, 6),
        "unrealizedPnL": round((current - entry) * quantity, 6),
        "totalValue": total,
        "realizedPnL": realized,
        "change": change,
    }


# -- the five transitions, long and short ------------------------------------------------------------


def test_open_increase_reduce_close_long() -> None:
    pf = Portfolio()
    assert trade(pf, "buy", 10, 100) == pos("AAPL", 10, 100.0, 100.0, 1000.0, 0.0, "opened")
    # same direction: entry becomes the weighted average (10*100 + 10*110) / 20
    assert trade(pf, "buy", 10, 110) == pos("AAPL", 20, 105.0, 110.0, 2200.0, 0.0, "increased")
    # opposite and smaller: realize (120 - 105) * 5, entry unchanged
    assert trade(pf, "sell", 5, 120) == pos("AAPL", 15, 105.0, 120.0, 1800.0, 75.0, "reduced")
    # exactly flat: 75 + (90 - 105) * 15 = -150 realized over the position's life
    closed = trade(pf, "sell", 15, 90)
    assert closed == pos("AAPL", 0, 105.0, 90.0, 0.0, -150.0, "closed")
    assert type(closed["quantity"]) is int
    assert "timestamp" not in closed
    assert pf.positions("u1") == []
    assert pf.mark("AAPL", 95) == []  # gone from the symbol index too


def test_reopen_after_close_starts_realized_from_zero() -> None:
    pf = Portfolio()
    trade(pf, "buy", 10, 100)
    trade(pf, "sell", 10, 110)
    assert trade(pf, "buy", 4, 50) == pos("AAPL", 4, 50.0, 50.0, 200.0, 0.0, "opened")


def test_short_open_mark_cover() -> None:
    pf = Portfolio()
    assert trade(pf, "sell", 10, 50) == pos("AAPL", -10, 50.0, 50.0, -500.0, 0.0, "opened")
    [(user, marked)] = pf.mark("AAPL", 45)
    assert user == "u1"
    # a short gains when the price falls: (45 - 50) * -10 = +50
    assert marked == pos("AAPL", -10, 50.0, 45.0, -450.0, 0.0, "marked")
    assert marked["unrealizedPnL"] == 50.0
    # shorting more at 60: entry (10*50 + 10*60) / 20 = 55; currentPrice is the last mark
    assert trade(pf, "sell", 10, 60) == pos("AAPL", -20, 55.0, 45.0, -900.0, 0.0, "increased")
    # covering 5 at 40 realizes (40 - 55) * 5 * -1 = 75
    assert trade(pf, "buy", 5, 40) == pos("AAPL", -15, 55.0, 45.0, -675.0, 75.0, "reduced")
    assert trade(pf, "buy", 15, 56) == pos("AAPL", 0, 55.0, 45.0, 0.0, 60.0, "closed")


def test_flip_long_to_short_and_back() -> None:
    pf = Portfolio()
    trade(pf, "buy", 10, 100)
    trade(pf, "sell", 4, 105)  # realized 20
    # sell 21 at 110: closes the 6 left (realized 20 + 6*10 = 80), opens -15 at 110
    flipped = trade(pf, "sell", 21, 110)
    assert flipped == pos("AAPL", -15, 110.0, 110.0, -1650.0, 80.0, "flipped")
    # the new short leg realizes from zero: (100 - 110) * 5 * -1 = 50
    assert trade(pf, "buy", 5, 100) == pos("AAPL", -10, 110.0, 100.0, -1000.0, 50.0, "reduced")
    # flip back: cover 10 at 120 (realized 50 - 100 = -50), long 2 at 120
    assert trade(pf, "buy", 12, 120) == pos("AAPL", 2, 120.0, 120.0, 240.0, -50.0, "flipped")
    assert pf.positions("u1") == [
        {
            "symbol": "AAPL",
            "quantity": 2,
            "entryPrice": 120.0,
            "currentPrice": 120.0,
            "value": 240.0,
            "unrealizedPnL": 0.0,
            "realizedPnL": 0.0,
        }
    ]


def test_float_quantities_that_cancel_close_the_position() -> None:
    pf = Portfolio()
    trade(pf, "buy", 0.1, 10)
    trade(pf, "buy", 0.2, 10)
    closed = trade(pf, "sell", 0.3, 20)
    assert closed["change"] == "closed"
    assert closed["quantity"] == 0.0
    assert closed["realizedPnL"] == 3.0
    assert pf.positions("u1") == []


def test_money_is_rounded_to_six_decimals() -> None:
    pf = Portfolio()
    trade(pf, "buy", 3, 1.1)
    update = trade(pf, "buy", 3, 2.2)  # entry 1.65 but float arithmetic leaves noise
    assert update["entryPrice"] == 1.65
    assert update["value"] == 13.2  # 6 * 2.2 is 13.200000000000001 in floats
    [(_, marked)] = pf.mark("AAPL", 1.0 / 3.0)
    assert marked["currentPrice"] == 0.333333
    assert marked["value"] == 2.0


# -- cumulative fills --------------------------------------------------------------------------------


def test_partial_fills_apply_the_increment_at_its_implied_price() -> None:
    pf = Portfolio()
    pf.apply_order("u1", {"orderId": "o1", "symbol": "AAPL", "side": "buy", "qty": 40, "status": "new"})
    base = {"orderId": "o1", "status": "partially_filled"}
    [first] = pf.apply_fill("u1", {**base, "filledQty": 10, "filledAvgPrice": 100})
    assert first == pos("AAPL", 10, 100.0, 100.0, 1000.0, 0.0, "opened")
    # cumulative 30 @ 101: the new 20 cost 30*101 - 10*100 = 2030, i.e. 101.5 each
    [second] = pf.apply_fill("u1", {**base, "filledQty": 30, "filledAvgPrice": 101})
    assert second == pos("AAPL", 30, 101.0, 101.5, 3045.0, 0.0, "increased")
    # cumulative 40 @ 102: the last 10 cost 4080 - 3030 = 1050, i.e. 105 each
    [third] = pf.apply_fill(
        "u1", {"orderId": "o1", "filledQty": 40, "filledAvgPrice": 102, "status": "filled"}
    )
    assert third == pos("AAPL", 40, 102.0, 105.0, 4200.0, 0.0, "increased")


def test_duplicate_and_stale_fills_are_ignored() -> None:
    pf = Portfolio()
    pf.apply_order("u1", {"orderId": "o1", "symbol": "AAPL", "side": "sell", "qty": 30, "status": "new"})
    ten = {"orderId": "o1", "filledQty": 10, "filledAvgPrice": 100, "status": "partially_filled"}
    thirty = {"orderId": "o1", "filledQty": 30, "filledAvgPrice": 101, "status": "filled"}
    assert len(pf.apply_fill("u1", ten)) == 1
    assert pf.apply_fill("u1", ten) == []  # duplicate
    assert len(pf.apply_fill("u1", thirty)) == 1
    assert pf.apply_fill("u1", ten) == []  # older fill arriving late
    assert pf.apply_fill("u1", thirty) == []
    assert [p["quantity"] for p in pf.positions("u1")] == [-30]


def test_fill_uses_its_own_symbol_and_side_when_the_order_was_never_seen() -> None:
    pf = Portfolio()
    fill = {"orderId": "x", "symbol": "TSLA", "side": "SELL", "filledQty": 2, "filledAvgPrice": 200}
    assert pf.apply_fill("u1", fill) == [pos("TSLA", -2, 200.0, 200.0, -400.0, 0.0, "opened")]


def test_fill_for_an_unknown_order_without_symbol_or_side_is_not_applied_nor_remembered() -> None:
    pf = Portfolio()
    assert pf.apply_fill("u1", {"orderId": "o1", "filledQty": 10, "filledAvgPrice": 100}) == []
    assert (
        pf.apply_fill("u1", {"orderId": "o1", "symbol": "AAPL", "filledQty": 10, "filledAvgPrice": 100}) == []
    )
    assert pf.positions("u1") == []
    # once the order is known, the next cumulative fill applies everything filled so far
    pf.apply_order("u1", {"orderId": "o1", "symbol": "AAPL", "side": "buy", "qty": 20, "status": "new"})
    [update] = pf.apply_fill("u1", {"orderId": "o1", "filledQty": 20, "filledAvgPrice": 100})
    assert update["quantity"] == 20


def test_the_remembered_order_wins_over_the_fill_fields() -> None:
    pf = Portfolio()
    pf.apply_order("u1", {"orderId": 7, "symbol": "AAPL", "side": "buy", "qty": 5, "status": "new"})
    fill = {"orderId": "7", "symbol": "MSFT", "side": "sell", "filledQty": 5, "filledAvgPrice": 10}
    [update] = pf.apply_fill("u1", fill)
    assert (update["symbol"], update["quantity"]) == ("AAPL", 5)


def test_fill_uses_last_mark_as_current_price() -> None:
    pf = Portfolio()
    assert pf.price("AAPL") is None
    assert pf.mark("AAPL", 150) == []  # nobody holds it yet, but the price is kept
    assert pf.price("AAPL") == 150.0
    assert trade(pf, "buy", 10, 148) == pos("AAPL", 10, 148.0, 150.0, 1500.0, 0.0, "opened")


# -- marks and totalValue ----------------------------------------------------------------------------


def test_mark_touches_only_holders_of_the_symbol() -> None:
    pf = Portfolio()
    trade(pf, "buy", 10, 100, "AAPL", user="alice")
    trade(pf, "sell", 3, 100, "AAPL", user="bob")
    trade(pf, "buy", 1, 300, "MSFT", user="carol")
    trade(pf, "buy", 5, 100, "AAPL", user="dave")
    trade(pf, "sell", 5, 100, "AAPL", user="dave")  # dave is flat again
    marks = dict(pf.mark("AAPL", 110))
    assert set(marks) == {"alice", "bob"}
    assert marks["alice"] == pos("AAPL", 10, 100.0, 110.0, 1100.0, 0.0, "marked")
    assert marks["bob"] == pos("AAPL", -3, 100.0, 110.0, -330.0, 0.0, "marked")
    assert pf.positions("carol")[0]["currentPrice"] == 300.0
    assert pf.positions("dave") == []


def test_total_value_sums_every_open_position_of_the_user() -> None:
    pf = Portfolio()
    assert trade(pf, "buy", 10, 100, "AAPL")["totalValue"] == 1000.0
    assert trade(pf, "buy", 2, 300, "MSFT")["totalValue"] == 1600.0
    assert trade(pf, "sell", 4, 50, "TSLA")["totalValue"] == 1400.0
    trade(pf, "buy", 10, 100, "AAPL", user="other")  # another user's value never counts
    [(_, marked)] = [m for m in pf.mark("MSFT", 310) if m[0] == "u1"]
    assert marked["totalValue"] == 1000.0 + 620.0 - 200.0
    closed = trade(pf, "sell", 10, 100, "AAPL")
    assert closed["totalValue"] == 620.0 - 200.0
    assert pf.total_value("u1") == 420.0
    assert [p["symbol"] for p in pf.positions("u1")] == ["MSFT", "TSLA"]
    assert pf.total_value("nobody") == 0.0


# -- app-managed users -------------------------------------------------------------------------------


def test_app_position_fills_in_missing_fields_and_keeps_given_ones() -> None:
    pf = Portfolio()
    payload = pf.apply_position(
        "u1",
        {"symbol": "AAPL", "quantity": 10, "entryPrice": 150, "currentPrice": 152.5, "timestamp": "t"},
    )
    assert payload == {
        "symbol": "AAPL",
        "quantity": 10,
        "entryPrice": 150,
        "currentPrice": 152.5,
        "timestamp": "t",
        "value": 1525.0,
        "unrealizedPnL": 25.0,
        "totalValue": 1525.0,
        "realizedPnL": 0.0,
        "change": "app",
    }
    given = {
        "symbol": "MSFT",
        "quantity": 1,
        "entryPrice": 10,
        "currentPrice": 12,
        "value": 99,
        "change": "x",
    }
    payload = pf.apply_position("u1", given)
    assert (payload["value"], payload["change"], payload["unrealizedPnL"]) == (99, "x", 2.0)
    assert payload["totalValue"] == 1525.0 + 99
    assert pf.is_app_managed("u1")
    assert not pf.is_app_managed("u2")


def test_app_managed_user_ignores_fills_and_follows_marks() -> None:
    pf = Portfolio()
    trade(pf, "buy", 10, 100, "TSLA")  # derived before the app took over: dropped
    pf.apply_position("u1", {"symbol": "AAPL", "quantity": -5, "entryPrice": 100})
    assert pf.mark("TSLA", 120) == []
    fill = {"orderId": "o9", "symbol": "AAPL", "side": "buy", "filledQty": 5, "filledAvgPrice": 90}
    assert pf.apply_fill("u1", fill) == []
    [(user, marked)] = pf.mark("AAPL", 90)
    assert user == "u1"
    assert marked == {
        "symbol": "AAPL",
        "quantity": -5,
        "entryPrice": 100,
        "currentPrice": 90.0,
        "value": -450.0,
        "unrealizedPnL": 50.0,
        "totalValue": -450.0,
        "realizedPnL": 0.0,
        "change": "marked",
    }
    # a delta without quantity keeps the stored one; quantity 0 closes
    assert pf.apply_position("u1", {"symbol": "AAPL", "currentPrice": 80})["value"] == -400.0
    closed = pf.apply_position("u1", {"symbol": "AAPL", "quantity": 0, "realizedPnL": 100})
    assert (closed["value"], closed["totalValue"], closed["realizedPnL"]) == (0.0, 0.0, 100)
    assert pf.positions("u1") == []
    assert pf.mark("AAPL", 85) == []


def test_app_position_uses_last_mark_when_it_gives_no_price() -> None:
    pf = Portfolio()
    pf.mark("AAPL", 200)
    payload = pf.apply_position("u1", {"symbol": "AAPL", "quantity": 2, "entryPrice": 190})
    assert (payload["currentPrice"], payload["value"], payload["unrealizedPnL"]) == (200.0, 400.0, 20.0)


# -- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("filledQty", "10", "filledQty must be a non-negative number"),
        ("filledQty", None, "filledQty is missing"),
        ("filledQty", True, "filledQty must be a non-negative number"),
        ("filledQty", math.nan, "filledQty must be a non-negative number"),
        ("filledQty", math.inf, "filledQty must be a non-negative number"),
        ("filledQty", 10**400, "filledQty must be a non-negative number"),
        ("filledQty", -1, "filledQty must not be negative"),
        ("filledAvgPrice", "abc", "filledAvgPrice must be a non-negative number"),
        ("filledAvgPrice", None, "filledAvgPrice is missing"),
        ("filledAvgPrice", -math.inf, "filledAvgPrice must be a non-negative number"),
        ("filledAvgPrice", -0.01, "filledAvgPrice must not be negative"),
        ("orderId", None, "orderId must be"),
        ("orderId", ["o1"], "orderId must be"),
    ],
)
def test_invalid_fill_raises_and_changes_nothing(field: str, value: object, message: str) -> None:
    pf = Portfolio()
    good = {"orderId": "o1", "symbol": "AAPL", "side": "buy", "filledQty": 10, "filledAvgPrice": 100}
    with pytest.raises(ValueError, match=message):
        pf.apply_fill("u1", {**good, field: value})
    assert pf.positions("u1") == []
    assert len(pf.apply_fill("u1", good)) == 1  # the order was not remembered as filled


def test_validation_applies_to_app_managed_users_too() -> None:
    pf = Portfolio()
    pf.apply_position("u1", {"symbol": "AAPL", "quantity": 1, "currentPrice": 1})
    with pytest.raises(ValueError, match="filledQty"):
        pf.apply_fill("u1", {"orderId": "o1", "filledQty": "x", "filledAvgPrice": 1})


def test_zero_fill_without_price_is_a_no_op() -> None:
    pf = Portfolio()
    fill = {"orderId": "o1", "symbol": "AAPL", "side": "buy", "filledQty": 0, "filledAvgPrice": None}
    assert pf.apply_fill("u1", fill) == []


def test_inconsistent_cumulative_average_raises() -> None:
    pf = Portfolio()
    base = {"orderId": "o1", "symbol": "AAPL", "side": "buy"}
    pf.apply_fill("u1", {**base, "filledQty": 10, "filledAvgPrice": 100})
    # 20 @ 40 would mean the second 10 were bought at -20
    with pytest.raises(ValueError, match="negative price"):
        pf.apply_fill("u1", {**base, "filledQty": 20, "filledAvgPrice": 40})
    [update] = pf.apply_fill("u1", {**base, "filledQty": 20, "filledAvgPrice": 100})
    assert update["quantity"] == 20


@pytest.mark.parametrize(
    "data",
    [
        {"quantity": 1},
        {"symbol": "", "quantity": 1},
        {"symbol": "AAPL"},
        {"symbol": "AAPL", "quantity": "10"},
        {"symbol": "AAPL", "quantity": 1, "entryPrice": math.nan},
        {"symbol": "AAPL", "quantity": 1, "currentPrice": -1},
        {"symbol": "AAPL", "quantity": 1, "value": "big"},
    ],
)
def test_invalid_app_position_raises_and_changes_nothing(data: dict[str, Any]) -> None:
    pf = Portfolio()
    trade(pf, "buy", 1, 100)
    with pytest.raises(ValueError, match=r"symbol|quantity|Price|value"):
        pf.apply_position("u1", data)
    assert not pf.is_app_managed("u1")
    assert len(pf.positions("u1")) == 1


@pytest.mark.parametrize("price", [math.nan, math.inf, -1, "1", None])
def test_invalid_mark_raises(price: Any) -> None:
    pf = Portfolio()
    with pytest.raises(ValueError, match="price"):
        pf.mark("AAPL", price)
    assert pf.price("AAPL") is None


# -- bounded order memory ----------------------------------------------------------------------------


def test_order_memory_forgets_oldest_terminal_orders_first_then_oldest() -> None:
    pf = Portfolio(max_orders_per_user=3)

    def order(order_id: str, status: str) -> None:
        pf.apply_order(
            "u1", {"orderId": order_id, "symbol": "AAPL", "side": "buy", "qty": 1, "status": status}
        )

    def remembered(order_id: str) -> bool:
        # a fill without symbol/side only lands when the order is still remembered
        probe = {"orderId": order_id, "filledQty": 0.5, "filledAvgPrice": 1, "status": "partially_filled"}
        return bool(pf.apply_fill("u1", probe))

    order("a", "new")
    order("b", "canceled")
    order("c", "new")
    order("d", "new")  # over the bound: b, the terminal one, goes although a is older
    assert not remembered("b")
    assert remembered("a")  # touching a makes it the most recent
    order("e", "new")  # no terminal order left: the least recently touched (c) goes
    assert not remembered("c")
    assert remembered("d")
    assert remembered("e")


def test_order_memory_is_bounded_under_a_flood() -> None:
    pf = Portfolio(max_orders_per_user=100)
    for i in range(1000):
        pf.apply_order("u1", {"orderId": f"o{i}", "symbol": "AAPL", "side": "buy", "status": "new"})
    probe = {"filledQty": 1, "filledAvgPrice": 1, "status": "filled"}
    assert pf.apply_fill("u1", {**probe, "orderId": "o899"}) == []  # forgotten
    assert len(pf.apply_fill("u1", {**probe, "orderId": "o900"})) == 1  # the oldest kept


# -- purity ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [portfolio_module, fields_module, accounts_module])
def test_module_is_pure(module: ModuleType) -> None:
    tree = ast.parse(inspect.getsource(module))
    imported = {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    # The standard library's pure parts, and tickwire's error messages (no I/O either).
    pure = {"__future__", "collections.abc", "dataclasses", "math", "typing", "tickwire.errors"}
    pure |= {"tickwire.domain.fields", "tickwire.domain.accounts"}
    assert imported <= pure


# -- property: a round trip realizes exactly the cash it moved ----------------------------------------

_chunk = st.tuples(
    st.one_of(st.integers(1, 500), st.integers(1, 500_000).map(lambda n: n / 1000)),  # lots or fractions
    st.integers(1, 1_000_000).map(lambda cents: cents / 100),
)
_order = st.tuples(st.sampled_from(["buy", "sell"]), st.lists(_chunk, min_size=1, max_size=3))


@settings(database=None, deadline=None)
@given(orders=st.lists(_order, min_size=1, max_size=25), close_price=_chunk.map(lambda c: c[1]))
def test_round_trip_realized_pnl_equals_cash_flow(
    orders: list[tuple[str, list[tuple[float, float]]]], close_price: float
) -> None:
    pf = Portfolio()
    cash = 0.0  # sell proceeds minus buy costs
    realized = 0.0
    quantity: float = 0

    def collect(updates: list[dict[str, Any]]) -> None:
        nonlocal realized, quantity
        for update in updates:
            quantity = update["quantity"]
            if update["change"] in ("closed", "flipped"):  # where a leg's realized P&L is final
                realized += update["realizedPnL"]

    for number, (side, chunks) in enumerate(orders):
        filled = notional = 0.0
        for qty, price in chunks:  # fed as cumulative partial fills
            filled += qty
            notional += qty * price
            cash += qty * price * (1 if side == "sell" else -1)
            fill = {"orderId": f"o{number}", "symbol": "X", "side": side}
            collect(pf.apply_fill("u1", {**fill, "filledQty": filled, "filledAvgPrice": notional / filled}))
    if quantity:
        side, size = ("sell" if quantity > 0 else "buy"), abs(quantity)
        cash += size * close_price * (1 if side == "sell" else -1)
        fill = {"orderId": "close", "symbol": "X", "side": side, "filledQty": size}
        collect(pf.apply_fill("u1", {**fill, "filledAvgPrice": close_price}))

    assert quantity == 0
    assert pf.positions("u1") == []
    assert math.isclose(realized, cash, rel_tol=0, abs_tol=1e-6)
