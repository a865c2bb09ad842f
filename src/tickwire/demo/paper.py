"""A paper broker: demo orders filled against the simulated market, published as events.

Order life cycle (every transition is published as it happens)::

    place ──> new ──┬─(market: after a short delay, 1 or 2 fills)─> partially_filled ─> filled
                    ├─(limit: when the quote crosses the limit, 1 fill)──────────────> filled
                    └─(cancel, also from partially_filled)────────────────────────────> canceled

A fill publishes, as one batch, `order:fill` (cumulative filledQty and
filledAvgPrice), `order:update` with the new status, and `trade:new` for the
quantity just traded. Positions are not published here: the node derives them from
the fills. Buys fill at the ask and sells at the bid of the last simulated quote.

Nothing here sleeps: `step()` fills whatever is due on the publisher's clock, and
`run()` calls it a few times a second. State changes happen before the publish is
awaited, so a cancel racing a fill sees a consistent order (and, this being a demo
without an outbox, a publish that fails loses its events but not the order's state).
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from tickwire.demo.feed import AgentStats, Publisher, every
from tickwire.demo.market import QuoteSource
from tickwire.errors import TickwireError, show
from tickwire.pipeline import PublishRequest

__all__ = [
    "MAX_QTY",
    "OrderError",
    "OrderNotFound",
    "OrderNotOpen",
    "OrderRejected",
    "PaperBroker",
    "PaperOrder",
]

MAX_QTY = 1_000_000
MAX_PRICE = 1_000_000_000.0
SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit")
OPEN_STATUSES = frozenset({"new", "partially_filled"})


class OrderError(TickwireError):
    """An order request that cannot be carried out: `status` is the HTTP answer."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OrderRejected(OrderError):
    """Invalid order parameters (400)."""


class OrderNotFound(OrderError):
    """No such order for this user (404): another user's order is not found either."""

    status = 404


class OrderNotOpen(OrderError):
    """The order already reached a final state (409)."""

    status = 409


@dataclass(slots=True)
class PaperOrder:
    """One demo order and its fill progress."""

    order_id: str
    user: str
    symbol: str
    side: str
    qty: int
    type: str
    limit_price: float | None
    status: str = "new"
    filled_qty: int = 0
    filled_notional: float = 0.0
    next_fill_at: float = 0.0
    planned_fills: list[int] = field(default_factory=list)  # market orders: quantities still to fill

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def avg_price(self) -> float:
        return round(self.filled_notional / self.filled_qty, 6) if self.filled_qty else 0.0

    def payload(self) -> dict[str, Any]:
        """The `order:update` data for the order's current state."""
        return {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "side": self.side,
            "qty": self.qty,
            "type": self.type,
            "limitPrice": self.limit_price,
            "status": self.status,
            "filledQty": self.filled_qty,
            "filledAvgPrice": self.avg_price,
        }


class PaperBroker:
    """Accepts, fills and cancels demo orders, publishing every step.

    `fill_delay_s` bounds the random delay before a fill (and between the two fills of
    a split market order); `max_open_per_user` and `remember` bound memory: open orders
    per user, and finished orders kept so that canceling one answers 409, not 404.
    `stats.processed` counts orders placed, fills and cancels.
    """

    def __init__(
        self,
        publisher: Publisher,
        market: QuoteSource,
        *,
        rng: random.Random | None = None,
        fill_delay_s: tuple[float, float] = (0.3, 1.0),
        max_open_per_user: int = 100,
        remember: int = 5000,
    ) -> None:
        self._publisher = publisher
        self._market = market
        self._rng = rng or random.Random()
        self._delay = fill_delay_s
        self._max_open = max_open_per_user
        self._remember = remember
        self._orders: dict[str, PaperOrder] = {}
        self._open: dict[str, PaperOrder] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self.stats = AgentStats("paper-broker", "Paper broker")

    # -- requests ----------------------------------------------------------------------------------

    async def place(
        self,
        user: str,
        symbol: object,
        side: object,
        qty: object,
        type: object = "market",
        limit_price: object = None,
    ) -> dict[str, Any]:
        """Accept an order and publish it as `new`; raises OrderRejected for bad parameters."""
        order = self._validate(user, symbol, side, qty, type, limit_price)
        order.next_fill_at = self._publisher.clock.monotonic() + self._rng.uniform(*self._delay)
        if order.type == "market":
            order.planned_fills = self._plan(order.qty)
        await self._publisher.publish([PublishRequest("order:update", order.payload(), user)])
        self._orders[order.order_id] = order
        self._open[order.order_id] = order
        self.stats.record(1, self._publisher.clock.wall_ms())
        return order.payload()

    async def cancel(self, user: str, order_id: str) -> dict[str, Any]:
        """Cancel an open order of `user`; OrderNotFound / OrderNotOpen otherwise."""
        order = self._orders.get(order_id)
        if order is None or order.user != user:
            raise OrderNotFound(f"Order {order_id[:64]!r} not found")
        if not order.is_open:
            raise OrderNotOpen(
                f"Order {order_id} is already {order.status}: only open orders can be canceled"
            )
        self._finish(order, "canceled")
        payload = {**order.payload(), "reason": "user_requested"}
        await self._publisher.publish([PublishRequest("order:update", payload, user)])
        self.stats.record(1, self._publisher.clock.wall_ms())
        return payload

    def open_orders(self, user: str) -> list[dict[str, Any]]:
        return [o.payload() for o in self._open.values() if o.user == user]

    def get(self, order_id: str) -> PaperOrder | None:
        return self._orders.get(order_id)

    # -- filling -----------------------------------------------------------------------------------

    async def step(self) -> int:
        """Fill every order that is due and whose price is there; the number of fills."""
        now = self._publisher.clock.monotonic()
        batch: list[PublishRequest] = []
        fills = 0
        for order in list(self._open.values()):
            if order.next_fill_at > now:
                continue
            quote = self._market.quote(order.symbol)
            if quote is None:
                continue
            price = quote.ask if order.side == "buy" else quote.bid
            if order.type == "limit":
                if not _crosses(order, price):
                    continue
                qty = order.qty - order.filled_qty
            else:
                qty = order.planned_fills.pop(0) if order.planned_fills else order.qty - order.filled_qty
                order.next_fill_at = now + self._rng.uniform(*self._delay)
            batch.extend(self._fill(order, qty, price))
            fills += 1
        if batch:
            await self._publisher.publish(batch)
        if fills:
            self.stats.record(fills, self._publisher.clock.wall_ms())
        return fills

    async def run(self) -> None:
        """Fill due orders ten times a second until cancelled."""

        async def step(_due: int) -> None:
            await self.step()

        await every(0.1, self._publisher.clock, step, "demo-paper-broker")

    def _fill(self, order: PaperOrder, qty: int, price: float) -> list[PublishRequest]:
        order.filled_qty += qty
        order.filled_notional += qty * price
        if order.filled_qty >= order.qty:
            self._finish(order, "filled")
        else:
            order.status = "partially_filled"
        fill = {
            "orderId": order.order_id,
            "symbol": order.symbol,
            "side": order.side,
            "filledQty": order.filled_qty,
            "filledAvgPrice": order.avg_price,
            "status": order.status,
            "lastQty": qty,
            "lastPrice": price,
        }
        trade = {
            "tradeId": self._new_id("trd"),
            "orderId": order.order_id,
            "symbol": order.symbol,
            "side": order.side,
            "qty": qty,
            "price": price,
        }
        return [
            PublishRequest("order:fill", fill, order.user),
            PublishRequest("order:update", order.payload(), order.user),
            PublishRequest("trade:new", trade, order.user),
        ]

    def _finish(self, order: PaperOrder, status: str) -> None:
        order.status = status
        self._open.pop(order.order_id, None)
        self._done[order.order_id] = None
        while len(self._done) > self._remember:
            old, _ = self._done.popitem(last=False)
            self._orders.pop(old, None)

    def _plan(self, qty: int) -> list[int]:
        """One fill, or (half the time, when there is more than one share) two partial fills."""
        if qty < 2 or self._rng.random() < 0.5:
            return [qty]
        first = min(qty - 1, max(1, round(qty * self._rng.uniform(0.3, 0.7))))
        return [first, qty - first]

    # -- validation --------------------------------------------------------------------------------

    def _validate(
        self, user: str, symbol: object, side: object, qty: object, type_: object, limit_price: object
    ) -> PaperOrder:
        if not isinstance(symbol, str) or not self._market.knows(symbol.strip().upper()):
            known = ", ".join(self._market.symbols)
            raise OrderRejected(f"symbol must be one of {known}; got {show(symbol)}")
        if not isinstance(side, str) or side.strip().lower() not in SIDES:
            raise OrderRejected(f"side must be buy or sell; got {show(side)}")
        if not isinstance(type_, str) or type_.strip().lower() not in ORDER_TYPES:
            raise OrderRejected(f"type must be market or limit; got {show(type_)}")
        shares = _whole_number(qty)
        if shares is None or not 1 <= shares <= MAX_QTY:
            raise OrderRejected(f"qty must be a whole number of shares from 1 to {MAX_QTY}; got {show(qty)}")
        kind = type_.strip().lower()
        limit: float | None = None
        if kind == "limit":
            if (
                isinstance(limit_price, bool)
                or not isinstance(limit_price, int | float)
                or not math.isfinite(limit_price)
                or not 0 < limit_price <= MAX_PRICE
            ):
                raise OrderRejected(
                    f"limitPrice must be a positive number for a limit order; got {show(limit_price)}"
                )
            limit = round(float(limit_price), 6)
        elif limit_price is not None:
            raise OrderRejected("limitPrice is only for limit orders: leave it out of a market order")
        if sum(1 for o in self._open.values() if o.user == user) >= self._max_open:
            raise OrderRejected(f"too many open orders: at most {self._max_open}; cancel some first")
        return PaperOrder(
            self._new_id("ord"), user, symbol.strip().upper(), side.strip().lower(), shares, kind, limit
        )

    def _new_id(self, prefix: str) -> str:
        while True:
            candidate = f"{prefix}-{self._rng.getrandbits(48):012x}"
            if candidate not in self._orders:
                return candidate


def _crosses(order: PaperOrder, price: float) -> bool:
    """Whether a limit order is marketable at `price` (ask for a buy, bid for a sell)."""
    assert order.limit_price is not None
    return price <= order.limit_price if order.side == "buy" else price >= order.limit_price


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None
