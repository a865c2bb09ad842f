"""The portfolio as a processor of the publish pipeline.

- `order:update` is remembered, so that later fills know the order's symbol and side;
- `order:fill` derives `position:update` (opened, increased, reduced, closed, flipped);
- `position:update` published by the application is completed (value, P&L, totalValue);
- `price:update` marks every open position of the symbol to market: the marks are ticks on
  the holders' logs, throttled per (user, symbol) before they are stamped, so each costs
  O(holders) and at most one per window goes out (the latest value when the window ends).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tickwire.brokers.base import Publication
from tickwire.core.clock import Clock
from tickwire.core.event import iso_timestamp, user_log
from tickwire.core.throttle import Throttle
from tickwire.domain.portfolio import Portfolio
from tickwire.pipeline.processor import Draft

Mark = tuple[str, dict[str, Any]]  # (user, position payload)


def position_publication(user: str, position: dict[str, Any], *, tick: bool) -> Publication:
    return Publication(
        "position:update", position, user_log(user), tick=tick, state=("positions", str(position["symbol"]))
    )


class PositionsProcessor:
    name = "positions"

    def __init__(self, clock: Clock, throttle_s: float, portfolio: Portfolio | None = None) -> None:
        self.clock = clock
        self.portfolio = portfolio or Portfolio()
        self.marks: Throttle[Mark] = Throttle(clock, throttle_s)

    def derive(self, draft: Draft) -> Sequence[Publication]:
        user, data = draft.user, draft.data
        if draft.type == "price:update":
            return [self._mark_publication(mark, draft.ts) for mark in self._marks(data)]
        if user is None:
            return ()
        if draft.type == "order:update":
            self.portfolio.apply_order(user, data)
        elif draft.type == "order:fill":
            positions = self.portfolio.apply_fill(user, data)
            for position in positions:
                position["timestamp"] = draft.ts
            return [position_publication(user, p, tick=False) for p in positions]
        elif draft.type == "position:update":
            draft.data = self.portfolio.apply_position(user, data)
        return ()

    def due(self) -> Sequence[Publication]:
        marks = self.marks.due()
        if not marks:
            return ()
        ts = iso_timestamp(self.clock.wall_ms())
        return [self._mark_publication(mark, ts) for mark in marks]

    @staticmethod
    def _mark_publication(mark: Mark, ts: str) -> Publication:
        user, position = mark
        return position_publication(user, {**position, "timestamp": ts}, tick=True)

    def _marks(self, price: dict[str, Any]) -> list[Mark]:
        """Position marks a price causes, minus those the throttle holds back."""
        value = price.get("price")
        symbol = price.get("symbol")
        if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(symbol, str):
            return []
        try:
            marks = self.portfolio.mark(symbol, float(value))
        except ValueError:
            return []
        out = []
        for user, position in marks:
            released = self.marks.offer(f"{user}|{symbol}", (user, position))
            if released is not None:
                out.append(released)
        return out
