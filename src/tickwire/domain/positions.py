"""The portfolio as a processor of the publish pipeline, kept in the broker.

- `order:update` is remembered, so that later fills know the order's symbol and side;
- `order:fill` derives `position:update` (opened, increased, reduced, closed, flipped);
- `position:update` published by the application is completed (value, P&L, totalValue);
- `price:update` marks every open position of the symbol to market.

Each user's portfolio (domain/accounts.py) is processor state named `portfolio` on their
log: read before a fill is derived, written with the batch that carries its position
events, refused and derived again if another node changed it meanwhile. Fills of one user
published on several nodes therefore build one position sequence, and a restarted node
continues from the stored one. The holders of a symbol are a set in the broker
(`holders:{symbol}`, of user logs), kept with the same batches.

Marks are follow-ups of a price: throttled per (user, symbol) before they are stamped (the
first goes at once, then at most one per window, the latest price winning), computed from
the stored portfolio when released, and conditional on its version: a mark derived from a
portfolio a fill changed meanwhile is left out (that fill's own event carries newer values).
A position event published on this node after a price drops that price's mark for its
(user, symbol), held or not yet stamped, so an older price never overwrites a newer
currentPrice; a mark held by another node's throttle may still land within one window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tickwire.brokers.base import Broker, IndexChange, Publication
from tickwire.core.clock import Clock
from tickwire.core.event import Event, iso_timestamp, log_user, user_log
from tickwire.core.throttle import Throttle
from tickwire.domain.portfolio import Portfolio
from tickwire.pipeline.processor import BaseProcessor, Draft, FollowUp, StateRef, StateView

STATE = "portfolio"
DERIVED_FROM = frozenset({"order:update", "order:fill", "position:update"})
HOLDERS_FRESH_S = 1.0  # how long this node trusts its copy of a symbol's holders
Mark = tuple[str, str, float]  # (user, symbol, price)


def holders_index(symbol: str) -> str:
    return f"holders:{symbol}"


def position_publication(user: str, position: dict[str, Any], *, tick: bool) -> Publication:
    return Publication(
        "position:update", position, user_log(user), tick=tick, state=("positions", str(position["symbol"]))
    )


class PositionsProcessor(BaseProcessor):
    name = "positions"

    def __init__(self, broker: Broker, clock: Clock, throttle_s: float) -> None:
        self.broker = broker
        self.clock = clock
        # A working copy: an account is loaded for one derivation and forgotten after it.
        self.portfolio = Portfolio()
        self.marks: Throttle[Mark] = Throttle(clock, throttle_s)
        self._holders: dict[str, tuple[float, set[str]]] = {}  # symbol -> (read at, users)

    # -- fills, orders and the app's positions ------------------------------------------

    def reads(self, draft: Draft) -> Sequence[StateRef]:
        if draft.user is not None and draft.type in DERIVED_FROM:
            return ((draft.log, STATE),)
        return ()

    def derive(self, draft: Draft, state: StateView) -> Sequence[Publication]:
        user, data = draft.user, draft.data
        if draft.type == "price:update":
            self._note_price(data)
            return ()
        if user is None or draft.type not in DERIVED_FROM:
            return ()
        portfolio = self.portfolio
        portfolio.load(user, state.get(draft.log, STATE))
        try:
            before = portfolio.open_symbols(user)
            derived = self._apply(draft, user, data)
            after = portfolio.open_symbols(user)
            state.put(draft.log, STATE, portfolio.export(user))
        finally:
            portfolio.forget(user)
        for symbol in before - after:
            state.index.append(IndexChange(holders_index(symbol), user_log(user), False))
            self._held(symbol, user, False)
        for symbol in after - before:
            state.index.append(IndexChange(holders_index(symbol), user_log(user), True))
            self._held(symbol, user, True)
        return derived

    def _apply(self, draft: Draft, user: str, data: dict[str, Any]) -> list[Publication]:
        if draft.type == "order:update":
            self.portfolio.apply_order(user, data)
        elif draft.type == "order:fill":
            positions = self.portfolio.apply_fill(user, data)
            for position in positions:
                position["timestamp"] = draft.ts
            return [position_publication(user, p, tick=False) for p in positions]
        else:
            draft.data = self.portfolio.apply_position(user, data)
        return []

    def _note_price(self, data: dict[str, Any]) -> None:
        value, symbol = data.get("price"), data.get("symbol")
        if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(symbol, str):
            self.portfolio.note_price(symbol, float(value))

    # -- marks ----------------------------------------------------------------------------

    async def after(self, events: Sequence[Event]) -> FollowUp | None:
        """The marks of the batch's prices. A position's own event (the app's, or a fill's)
        is newer than every price before it: it drops a mark held from earlier batches, and
        a price earlier in the batch does not mark it, so a batch means what its events
        published one by one would."""
        own: dict[str, int] = {}  # user|symbol -> index of the batch's last own event
        for index, event in enumerate(events):
            if event.type == "position:update" and not event.tick:
                key = f"{log_user(event.log)}|{event.data.get('symbol')}"
                own[key] = index
                self.marks.discard(key)
        released: list[Mark] = []
        for index, event in enumerate(events):
            if event.type != "price:update":
                continue
            symbol, price = event.data.get("symbol"), event.data.get("price")
            if not isinstance(symbol, str) or isinstance(price, bool) or not isinstance(price, int | float):
                continue
            for user in await self._holders_of(symbol):
                key = f"{user}|{symbol}"
                if own.get(key, -1) > index:
                    continue
                mark = self.marks.offer(key, (user, symbol, float(price)))
                if mark is not None:
                    released.append(mark)
        return await self._marked(released)

    async def due(self) -> FollowUp | None:
        return await self._marked(self.marks.due())

    async def _marked(self, marks: list[Mark]) -> FollowUp | None:
        """The released marks, from the stored portfolios, each conditional on its version."""
        if not marks:
            return None
        stored = await self.broker.load([(user_log(user), STATE) for user, _, _ in marks])
        ts = iso_timestamp(self.clock.wall_ms())
        follow = FollowUp()
        portfolio = self.portfolio
        for (user, symbol, price), state in zip(marks, stored, strict=True):
            portfolio.load(user, state.value)
            try:
                payload = portfolio.mark_user(user, symbol, price)
            finally:
                portfolio.forget(user)
            if payload is None:  # no longer a holder: the index was stale
                follow.index.append(IndexChange(holders_index(symbol), user_log(user), False))
                self._held(symbol, user, False)
                continue
            pub = position_publication(user, {**payload, "timestamp": ts}, tick=True)
            follow.pubs.append(
                Publication(
                    pub.type, pub.data, pub.log, tick=True, state=pub.state, only_if=(STATE, state.version)
                )
            )
        return follow

    async def _holders_of(self, symbol: str) -> set[str]:
        now = self.clock.monotonic()
        known = self._holders.get(symbol)
        if known is None or now - known[0] >= HOLDERS_FRESH_S:
            logs = await self.broker.members(holders_index(symbol))
            users = {u for u in (log_user(log) for log in logs) if u is not None}
            known = self._holders[symbol] = (now, users)
        return known[1]

    def _held(self, symbol: str, user: str, present: bool) -> None:
        known = self._holders.get(symbol)
        if known is None:
            return
        if present:
            known[1].add(user)
        else:
            known[1].discard(user)
