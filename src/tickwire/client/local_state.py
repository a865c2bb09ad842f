"""Local state: snapshots and deltas merged into current orders, positions and prices.

The client applies every event it accepts here before queueing it for delivery, so the
state is current even while the user is busy (and even for ticks the delivery queue had to
drop). Rules:

- `order:update` snapshot (`{"snapshot":true,"orders":[...]}`) replaces every order;
  an `order:update` or `order:fill` merges its fields into the order with its `orderId`.
- `position:update` snapshot replaces every position and sets `total_value`; an update
  merges into the position of its `symbol`; quantity 0 closes (removes) it. `totalValue`,
  when present, updates `total_value`.
- `price:update` with `initializing` merges every listed price; an update merges into the
  price of its `symbol`.
- `stream:reset` changes nothing by itself: the fresh snapshot that follows replaces.

Readers get read-only views; the dicts inside are the client's: copy before changing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


class LocalState:
    def __init__(self) -> None:
        self._orders: dict[str, dict[str, Any]] = {}
        self._positions: dict[str, dict[str, Any]] = {}
        self._prices: dict[str, dict[str, Any]] = {}
        self.total_value: float | None = None
        self.applied = 0
        self._snapshots: set[str] = set()  # event types whose snapshot was applied

    @property
    def orders(self) -> Mapping[str, dict[str, Any]]:
        return MappingProxyType(self._orders)

    @property
    def positions(self) -> Mapping[str, dict[str, Any]]:
        return MappingProxyType(self._positions)

    @property
    def prices(self) -> Mapping[str, dict[str, Any]]:
        return MappingProxyType(self._prices)

    def price(self, symbol: str) -> float | None:
        entry = self._prices.get(symbol)
        value = entry.get("price") if entry else None
        return float(value) if isinstance(value, int | float) else None

    def has_snapshot(self, type_: str) -> bool:
        """Whether a snapshot of `type_` (`order:update`, ...) was applied."""
        return type_ in self._snapshots

    def apply(self, type_: str, data: Any) -> bool:
        """Merge one event; True when it changed the state's kind (orders, positions, prices)."""
        if type_ == "price:update" and data.__class__ is dict:
            if "initializing" in data:
                self._apply_price(data)
            else:
                symbol = data.get("symbol")
                if symbol is not None:
                    entry = self._prices.get(symbol)
                    if entry is None:
                        self._prices[symbol] = dict(data)
                    else:
                        entry.update(data)
            self.applied += 1
            return True
        if not isinstance(data, Mapping):
            return False
        if data.get("snapshot") or data.get("initializing"):
            self._snapshots.add(type_)
        if type_ in ("order:update", "order:fill"):
            self._apply_order(data)
        elif type_ == "position:update":
            self._apply_position(data)
        elif type_ == "price:update":
            self._apply_price(data)
        else:
            return False
        self.applied += 1
        return True

    def _apply_order(self, data: Mapping[str, Any]) -> None:
        if data.get("snapshot"):
            self._orders = {
                str(o["orderId"]): dict(o)
                for o in data.get("orders") or []
                if isinstance(o, Mapping) and "orderId" in o
            }
            return
        order_id = data.get("orderId")
        if order_id is None:
            return
        self._orders.setdefault(str(order_id), {}).update(data)

    def _apply_position(self, data: Mapping[str, Any]) -> None:
        if data.get("snapshot"):
            self._positions = {
                str(p["symbol"]): dict(p)
                for p in data.get("positions") or []
                if isinstance(p, Mapping) and "symbol" in p
            }
            self._total(data)
            return
        symbol = data.get("symbol")
        if symbol is None:
            return
        if data.get("quantity") == 0:
            self._positions.pop(str(symbol), None)
        else:
            self._positions.setdefault(str(symbol), {}).update(data)
        self._total(data)

    def _total(self, data: Mapping[str, Any]) -> None:
        total = data.get("totalValue")
        if isinstance(total, int | float) and not isinstance(total, bool):
            self.total_value = float(total)

    def _apply_price(self, data: Mapping[str, Any]) -> None:
        if data.get("initializing"):
            self._snapshots.add("price:update")
            for p in data.get("prices") or []:
                if isinstance(p, Mapping) and "symbol" in p:
                    self._prices[str(p["symbol"])] = dict(p)
            return
        symbol = data.get("symbol")
        if symbol is not None:
            self._prices.setdefault(str(symbol), {}).update(data)
