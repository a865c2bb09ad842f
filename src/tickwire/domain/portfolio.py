"""Positions per user, derived from order fills and marked to market (no I/O).

Theory of operation
-------------------
Brokers report fills as *cumulative* totals per order (filledQty, filledAvgPrice), and
they may repeat or reorder them. So every order remembers the last cumulative pair it
applied, and a fill moves the position only by the increment since then. The
increment's price is the one that makes the cumulative average come out right:
``(avg * qty - prevAvg * prevQty) / (qty - prevQty)``.

A position is one signed quantity per (user, symbol), negative for a short. A buy adds,
a sell subtracts, and each fill does exactly one of these:

    change      when                          effect
    opened      position was flat             entry = fill price
    increased   same direction                entry = quantity-weighted average
    reduced     opposite, smaller             realized += (price - entry) * closed * sign
    closed      opposite, lands exactly flat  quantity 0; dropped once the payload is built
    flipped     opposite, larger              close the old leg, open the rest at the price

realizedPnL is cumulative from the moment a position opens. A flip behaves like a
close followed by an open: its payload reports the realized P&L of the leg it closed,
and the new leg starts again from zero.

An app that publishes its own position:update takes that user over. Its positions
replace the derived ones and fills leave them alone, so two sources never mix in one
totalValue. Market prices come only from mark(). Each symbol keeps an index of the
users holding it, so a price tick costs O(holders) and not O(users).

Payloads are plain dicts, ready to publish without a timestamp (the publisher adds it).
Money is rounded to 6 decimals on the way out, so rounding never compounds. Float
quantities are rounded to 9 decimals at every step so that fills that should cancel
out really do (0.1 + 0.2 - 0.3 is flat, not 5.5e-17). Integer quantities stay integers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tickwire.domain.accounts import Account, Holding, Order
from tickwire.domain.fields import (
    TERMINAL_ORDER_STATUSES,
    Quantity,
    increment_price,
    is_terminal,
    money,
    number,
    order_id_of,
    round_qty,
    side_of,
    symbol_of,
)
from tickwire.errors import show

__all__ = ["MAX_ORDERS_PER_USER", "TERMINAL_ORDER_STATUSES", "Portfolio"]

MAX_ORDERS_PER_USER = 10_000
"""Orders remembered per user: enough for a busy trading day, bounded against a flood."""

_NOT_STORED = ("timestamp", "change", "totalValue")  # per-event fields that are no part of a position


class Portfolio:
    """Positions per user, derived from fills and marked to market (no I/O)."""

    def __init__(self, max_orders_per_user: int = MAX_ORDERS_PER_USER) -> None:
        if max_orders_per_user < 1:
            raise ValueError(f"max_orders_per_user must be at least 1, got {max_orders_per_user}")
        self._max_orders = max_orders_per_user
        self._accounts: dict[str, Account] = {}
        self._holders: dict[str, dict[str, None]] = {}  # symbol -> users with an open position (ordered)
        self._prices: dict[str, float] = {}

    # -- orders and fills ---------------------------------------------------------------------------

    def apply_order(self, user: str, order: Mapping[str, Any]) -> None:
        """Remember an order:update payload so that later fills know its symbol and side.

        Updates without a usable orderId are ignored: there is nothing a fill could find.
        """
        order_id = order_id_of(order.get("orderId"))
        if order_id is None:
            return
        account = self._account(user)
        if account.app is not None:
            return  # the app owns this user's positions: fills will not be derived
        memo = self._touch_order(account, order_id)
        symbol, side = symbol_of(order.get("symbol")), side_of(order.get("side"))
        if symbol is not None:
            memo.symbol = symbol
        if side:
            memo.side = side
        self._set_status(account, order_id, order.get("status"))

    def apply_fill(self, user: str, fill: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Apply the increment of an order:fill payload; return the position:update payloads.

        filledQty and filledAvgPrice are cumulative for the order. The result is [] when
        the user is app-managed, when the fill adds no quantity (a duplicate or a late,
        older fill), or when symbol or side are unknown. In that last case nothing is
        remembered, so a later fill that does carry them still applies the whole quantity.

        Raises ValueError (and changes nothing) for a missing orderId or a missing,
        non-numeric, non-finite or negative filledQty/filledAvgPrice.
        """
        order_id = order_id_of(fill.get("orderId"))
        if order_id is None:
            raise ValueError(
                f"orderId must be a non-empty string or an integer, got {show(fill.get('orderId'))}"
            )
        qty = round_qty(number(fill.get("filledQty"), "filledQty"))
        raw_avg = fill.get("filledAvgPrice")
        avg = 0.0 if raw_avg is None and qty == 0 else float(number(raw_avg, "filledAvgPrice"))

        account = self._account(user)
        if account.app is not None:
            return []
        memo = account.orders.get(order_id)
        symbol = (
            memo.symbol if memo is not None and memo.symbol is not None else symbol_of(fill.get("symbol"))
        )
        side = memo.side if memo is not None and memo.side else side_of(fill.get("side"))
        if symbol is None or not side:
            return []

        prev_qty, prev_avg = (memo.filled_qty, memo.filled_avg) if memo is not None else (0, 0.0)
        delta = round_qty(qty - prev_qty)
        if delta <= 0:
            if memo is not None and is_terminal(fill.get("status")):
                self._set_status(account, order_id, fill.get("status"))  # never downgrade to partial
            return []
        price = increment_price(qty, avg, prev_qty, prev_avg, delta)

        memo = self._touch_order(account, order_id)
        memo.symbol, memo.side = symbol, side
        memo.filled_qty, memo.filled_avg = qty, avg
        self._set_status(account, order_id, fill.get("status"))
        return [self._trade(user, account, symbol, side * delta, price)]

    # -- app-managed positions ----------------------------------------------------------------------

    def apply_position(self, user: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Take an app's own position:update; from now on this user's positions are the app's.

        The first one drops the positions derived from fills (they would go stale and be
        counted twice in totalValue). Fields the publisher left out are filled in, never
        overwritten: quantity and entryPrice from the app's previous update of the symbol (so
        deltas work), currentPrice from it or the last mark, then value, unrealizedPnL,
        totalValue, realizedPnL (0.0) and change ("app"). Quantity 0 closes the position.

        Raises ValueError for a missing symbol, no quantity, or a non-numeric money field.
        """
        symbol = symbol_of(data.get("symbol"))
        if symbol is None:
            raise ValueError(f"symbol must be a non-empty string, got {show(data.get('symbol'))}")
        for name in ("entryPrice", "currentPrice"):
            if data.get(name) is not None:
                number(data[name], name)
        for name in ("quantity", "value", "unrealizedPnL", "realizedPnL", "totalValue"):
            if data.get(name) is not None:
                number(data[name], name, negative_ok=True)

        account = self._account(user)
        previous = account.app.get(symbol, {}) if account.app is not None else {}
        given = {k: v for k, v in data.items() if v is not None}
        record = {**previous, **{k: v for k, v in given.items() if k not in _NOT_STORED}}
        if "quantity" not in record:
            raise ValueError(f"quantity is missing for {symbol}: a position needs it (negative for a short)")
        app = account.app if account.app is not None else self._take_over(user, account)
        if "currentPrice" not in record and symbol in self._prices:
            record["currentPrice"] = self._prices[symbol]
        if "currentPrice" not in record and "entryPrice" in record:
            record["currentPrice"] = record["entryPrice"]  # what a fill-derived position would show
        _revalue(record, given)

        if record["quantity"] == 0:
            app.pop(symbol, None)
            self._unhold(symbol, user)
        else:
            app[symbol] = record
            self._holders.setdefault(symbol, {})[user] = None
        payload = dict(data)
        filled_in = {**record, "totalValue": money(self._total(account)), "change": "app"}
        filled_in.setdefault("realizedPnL", 0.0)
        for key, value in filled_in.items():
            if payload.get(key) is None:  # null counts as left out
                payload[key] = value
        return payload

    def is_app_managed(self, user: str) -> bool:
        """True once an app published its own position:update for the user."""
        account = self._accounts.get(user)
        return account is not None and account.app is not None

    # -- prices and reads ---------------------------------------------------------------------------

    def mark(self, symbol: str, price: float) -> list[tuple[str, dict[str, Any]]]:
        """Record a market price; return (user, position:update) for every holder of symbol.

        Raises ValueError for a non-numeric, non-finite or negative price.
        """
        if symbol_of(symbol) is None:
            raise ValueError(f"symbol must be a non-empty string, got {show(symbol)}")
        mark = float(number(price, "price"))
        self._prices[symbol] = mark
        updates: list[tuple[str, dict[str, Any]]] = []
        for user in self._holders.get(symbol, {}):
            payload = self.mark_user(user, symbol, mark)
            if payload is not None:
                updates.append((user, payload))
        return updates

    def mark_user(self, user: str, symbol: str, price: float) -> dict[str, Any] | None:
        """One user's position in symbol marked at price; None when they hold none."""
        account = self._accounts.get(user)
        if account is None:
            return None
        if account.app is not None:
            record = account.app.get(symbol)
            if record is None:
                return None
            record["currentPrice"] = price
            _revalue(record, {})
            payload = {**record, "totalValue": money(self._total(account)), "change": "marked"}
            payload.setdefault("realizedPnL", 0.0)
            return payload
        position = account.positions.get(symbol)
        if position is None:
            return None
        position.current_price = price
        return self._payload(account, position, "marked")

    # -- stored accounts (the pipeline keeps them in the broker) -------------------------------------

    def load(self, user: str, data: dict[str, Any] | None) -> None:
        """Take the user's account from its stored form, marked at the prices known here."""
        self.forget(user)
        account = self._accounts[user] = Account.from_dict(data) if data is not None else Account()
        for symbol in account.open_symbols():
            self._holders.setdefault(symbol, {})[user] = None
            price = self._prices.get(symbol)
            if price is None:
                continue
            if account.app is not None:
                account.app[symbol]["currentPrice"] = price
                _revalue(account.app[symbol], {})
            else:
                account.positions[symbol].current_price = price

    def export(self, user: str) -> dict[str, Any] | None:
        """The user's account in its stored form; None when there is nothing to keep."""
        account = self._accounts.get(user)
        if account is None or (not account.orders and not account.positions and account.app is None):
            return None
        return account.to_dict()

    def forget(self, user: str) -> None:
        account = self._accounts.pop(user, None)
        if account is not None:
            for symbol in account.open_symbols():
                self._unhold(symbol, user)

    def open_symbols(self, user: str) -> set[str]:
        account = self._accounts.get(user)
        return account.open_symbols() if account is not None else set()

    def note_price(self, symbol: str, price: float) -> None:
        """A market price, remembered for the current price of positions derived later."""
        self._prices[symbol] = price

    def positions(self, user: str) -> list[dict[str, Any]]:
        """The user's open positions as payloads (no change or totalValue: see total_value)."""
        account = self._accounts.get(user)
        if account is None:
            return []
        if account.app is not None:
            return [{"realizedPnL": 0.0, **record} for record in account.app.values()]
        return [_fields(position) for position in account.positions.values()]

    def total_value(self, user: str) -> float:
        """Sum of value over the user's open positions (the snapshot's totalValue)."""
        account = self._accounts.get(user)
        return 0.0 if account is None else money(self._total(account))

    def price(self, symbol: str) -> float | None:
        """The last mark of symbol, None before the first."""
        return self._prices.get(symbol)

    # -- internals ----------------------------------------------------------------------------------

    def _account(self, user: str) -> Account:
        account = self._accounts.get(user)
        if account is None:
            account = self._accounts[user] = Account()
        return account

    def _touch_order(self, account: Account, order_id: str) -> Order:
        """Get or create the order as the most recently touched; evict over the bound.

        Eviction only happens when an order is created, and a new order is never terminal
        yet, so the order being touched is never the one evicted.
        """
        memo = account.orders.pop(order_id, None)
        if memo is None:
            memo = Order()
        account.orders[order_id] = memo
        if order_id in account.terminal:
            del account.terminal[order_id]
            account.terminal[order_id] = None
        while len(account.orders) > self._max_orders:
            victim = next(iter(account.terminal)) if account.terminal else next(iter(account.orders))
            del account.orders[victim]
            account.terminal.pop(victim, None)
        return memo

    @staticmethod
    def _set_status(account: Account, order_id: str, status: object) -> None:
        if not isinstance(status, str):
            return
        account.terminal.pop(order_id, None)
        if is_terminal(status):
            account.terminal[order_id] = None

    def _take_over(self, user: str, account: Account) -> dict[str, dict[str, Any]]:
        """Hand the user to the app: derived positions and order memory are no longer needed."""
        for symbol in account.positions:
            self._unhold(symbol, user)
        account.positions.clear()
        account.orders.clear()
        account.terminal.clear()
        account.app = {}
        return account.app

    def _unhold(self, symbol: str, user: str) -> None:
        holders = self._holders.get(symbol)
        if holders is not None:
            holders.pop(user, None)
            if not holders:
                del self._holders[symbol]

    def _trade(
        self, user: str, account: Account, symbol: str, signed_qty: Quantity, price: float
    ) -> dict[str, Any]:
        """Apply one increment (signed: + buy, - sell) to the user's position in symbol."""
        current = self._prices.get(symbol, price)
        position = account.positions.get(symbol)
        if position is None:
            position = account.positions[symbol] = Holding(symbol, signed_qty, price, current)
            self._holders.setdefault(symbol, {})[user] = None
            return self._payload(account, position, "opened")

        position.current_price = current
        held = position.quantity
        if (held > 0) == (signed_qty > 0):
            size = abs(held) + abs(signed_qty)
            position.entry_price = (position.entry_price * abs(held) + price * abs(signed_qty)) / size
            position.quantity = round_qty(held + signed_qty)
            return self._payload(account, position, "increased")

        direction = 1 if held > 0 else -1
        position.realized += (price - position.entry_price) * min(abs(held), abs(signed_qty)) * direction
        remaining = round_qty(held + signed_qty)
        if remaining == 0:
            position.quantity = remaining
            payload = self._payload(account, position, "closed")
            del account.positions[symbol]
            self._unhold(symbol, user)
            return payload
        if (remaining > 0) == (held > 0):
            position.quantity = remaining
            return self._payload(account, position, "reduced")
        closed_leg = position.realized
        position.quantity, position.entry_price, position.realized = remaining, price, 0.0
        return self._payload(account, position, "flipped", realized=closed_leg)

    def _payload(
        self, account: Account, position: Holding, change: str, realized: float | None = None
    ) -> dict[str, Any]:
        payload = _fields(position)
        payload["totalValue"] = money(self._total(account))
        if realized is not None:
            payload["realizedPnL"] = money(realized)
        payload["change"] = change
        return payload

    @staticmethod
    def _total(account: Account) -> float:
        if account.app is not None:
            return math.fsum(float(r.get("value", 0.0)) for r in account.app.values())
        return math.fsum(p.quantity * p.current_price for p in account.positions.values())


def _fields(position: Holding) -> dict[str, Any]:
    """A derived position as published, minus the per-event totalValue and change."""
    quantity, entry, current = position.quantity, position.entry_price, position.current_price
    return {
        "symbol": position.symbol,
        "quantity": quantity,
        "entryPrice": money(entry),
        "currentPrice": money(current),
        "value": money(quantity * current),
        "unrealizedPnL": money((current - entry) * quantity),
        "realizedPnL": money(position.realized),
    }


def _revalue(record: dict[str, Any], given: Mapping[str, Any]) -> None:
    """Recompute value and unrealizedPnL of an app position, except those the app just gave.

    A field that cannot be computed (no price known) is dropped rather than left stale.
    """
    quantity, current, entry = record["quantity"], record.get("currentPrice"), record.get("entryPrice")
    if "value" not in given:
        record.pop("value", None)
        if current is not None:
            record["value"] = money(quantity * current)
    if "unrealizedPnL" not in given:
        record.pop("unrealizedPnL", None)
        if current is not None and entry is not None:
            record["unrealizedPnL"] = money((current - entry) * quantity)
