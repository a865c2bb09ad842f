"""One user's portfolio as the publish pipeline stores it: the orders a fill may refer to
and the positions fills built (or the app's own positions), and its stored form.

The stored form (`Account.to_dict`) is plain JSON: lists keep the orders' recency order
(the first is the next to forget) and every number exactly as Python holds it, so a
portfolio read back on another node derives exactly what this one would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tickwire.domain.fields import Quantity


@dataclass(slots=True)
class Order:
    """What a later fill of the order needs: where it goes and what was already applied."""

    symbol: str | None = None
    side: int = 0  # +1 buy, -1 sell, 0 unknown
    filled_qty: Quantity = 0
    filled_avg: float = 0.0


@dataclass(slots=True)
class Holding:
    """An open position derived from fills; prices are kept unrounded."""

    symbol: str
    quantity: Quantity
    entry_price: float
    current_price: float
    realized: float = 0.0


@dataclass(slots=True)
class Account:
    """One user's orders and positions.

    Both order dicts are kept in least-recently-touched order (touched = re-inserted),
    so the first key is always the one to forget.
    """

    orders: dict[str, Order] = field(default_factory=dict)
    terminal: dict[str, None] = field(default_factory=dict)  # ids of orders in a terminal state
    positions: dict[str, Holding] = field(default_factory=dict)
    app: dict[str, dict[str, Any]] | None = None  # the app's own positions once it took over

    def open_symbols(self) -> set[str]:
        return set(self.app if self.app is not None else self.positions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "orders": [[i, o.symbol, o.side, o.filled_qty, o.filled_avg] for i, o in self.orders.items()],
            "terminal": list(self.terminal),
            "positions": [
                [h.symbol, h.quantity, h.entry_price, h.current_price, h.realized]
                for h in self.positions.values()
            ],
            "app": self.app,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Account:
        return cls(
            orders={i: Order(symbol, side, qty, avg) for i, symbol, side, qty, avg in data["orders"]},
            terminal=dict.fromkeys(data["terminal"]),
            positions={row[0]: Holding(*row) for row in data["positions"]},
            app=data["app"],
        )
