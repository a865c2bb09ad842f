"""The fields of order and fill payloads as the portfolio reads them, and its rounding.

Numbers are checked with messages meant for the publisher (they become HTTP 400s); money
is rounded to 6 decimals on the way out, float quantities to 9 at every step (see
portfolio.py).
"""

from __future__ import annotations

import math
from typing import TypeAlias

from tickwire.errors import show

Quantity: TypeAlias = int | float

TERMINAL_ORDER_STATUSES = frozenset({"filled", "canceled", "cancelled", "rejected", "expired"})
"""Orders in these states expect no more fills, so they are the first to be forgotten."""

SIDES = {"buy": 1, "sell": -1}
QTY_DECIMALS = 9  # finer than any traded lot (crypto goes to 8), coarse enough to hide float noise
MONEY_DECIMALS = 6
PRICE_NOISE = 1e-9  # relative float error tolerated before an implied fill price counts as negative


def increment_price(qty: Quantity, avg: float, prev_qty: Quantity, prev_avg: float, delta: Quantity) -> float:
    """The price of the quantity added since the previous fill, from the two cumulative averages."""
    if prev_qty == 0:
        return avg
    notional = avg * qty - prev_avg * prev_qty
    price = notional / delta
    if price < 0:
        if -notional > PRICE_NOISE * max(1.0, avg * qty):
            raise ValueError(
                f"filledAvgPrice {avg} for filledQty {qty} is inconsistent with the previous fill "
                f"({prev_qty} at {prev_avg}): the {delta} added would have a negative price"
            )
        price = 0.0
    if not math.isfinite(price):
        raise ValueError(f"filledAvgPrice {avg} for filledQty {qty} implies a non-finite price")
    return price


def number(value: object, name: str, *, negative_ok: bool = False) -> Quantity:
    """Check a JSON number; the message is meant for the publisher (it becomes an HTTP 400)."""
    kind = "a finite number" if negative_ok else "a non-negative number"
    if value is None:
        raise ValueError(f"{name} is missing: it must be {kind}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be {kind}, got {show(value)}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise ValueError(f"{name} must be {kind}, got {show(value)}")
    if value < 0 and not negative_ok:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def order_id_of(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def symbol_of(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def side_of(value: object) -> int:
    return SIDES.get(value.strip().lower(), 0) if isinstance(value, str) else 0


def is_terminal(status: object) -> bool:
    return isinstance(status, str) and status.lower() in TERMINAL_ORDER_STATUSES


def round_qty(quantity: Quantity) -> Quantity:
    if isinstance(quantity, int):
        return quantity
    return round(quantity, QTY_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def money(amount: float) -> float:
    return round(float(amount), MONEY_DECIMALS) + 0.0
