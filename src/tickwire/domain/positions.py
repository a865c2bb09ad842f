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

The portfolio's version moves with every change of the user's account, not only with the
symbol's own position events (an order update, another symbol's fill). So the stored
portfolio also counts, per open symbol, its own position events (`REVISIONS`): a mark left
out because the version moved is derived again, at the latest price this node knows, when
its symbol had no own event since; otherwise that event is newer and the mark stays out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from tickwire.brokers.base import Broker, IndexChange, Publication
from tickwire.core.clock import Clock
from tickwire.core.event import Event, iso_timestamp, log_user, user_log
from tickwire.core.throttle import Throttle
from tickwire.domain.portfolio import Portfolio
from tickwire.pipeline.processor import BaseProcessor, Draft, FollowUp, StateRef, StateView

STATE = "portfolio"
REVISIONS = "revisions"  # in the stored portfolio: [own position events, {symbol: count at its last}]
DERIVED_FROM = frozenset({"order:update", "order:fill", "position:update"})
HOLDERS_FRESH_S = 1.0  # how long this node trusts its copy of a symbol's holders
Mark = tuple[str, str, float]  # (user, symbol, price)
MarkKey = tuple[str, str]  # (user, symbol)
# The symbols whose own position event a derivation published (app's, or fills' derived).
OWN_SYMBOLS: dict[str, Callable[[Draft, Sequence[Publication]], list[object]]] = {
    "order:update": lambda draft, derived: [],
    "order:fill": lambda draft, derived: [p.data["symbol"] for p in derived],
    "position:update": lambda draft, derived: [draft.data.get("symbol")],
}


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
        stored = state.get(draft.log, STATE)
        portfolio.load(user, stored)
        try:
            before = portfolio.open_symbols(user)
            derived = self._apply(draft, user, data)
            after = portfolio.open_symbols(user)
            exported = portfolio.export(user)
        finally:
            portfolio.forget(user)
        own = OWN_SYMBOLS[draft.type](draft, derived)
        state.put(draft.log, STATE, revised(exported, stored, own, after))
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

    async def _marked(
        self, marks: Sequence[Mark], expected: dict[MarkKey, int] | None = None
    ) -> FollowUp | None:
        """The released marks, from the stored portfolios, each conditional on its version.
        With `expected` (a retry), a mark whose symbol had an own position event since is
        left out."""
        if not marks:
            return None
        stored = await self.broker.load([(user_log(user), STATE) for user, _, _ in marks])
        ts = iso_timestamp(self.clock.wall_ms())
        follow = FollowUp()
        bases: dict[MarkKey, int] = {}
        portfolio = self.portfolio
        for (user, symbol, price), state in zip(marks, stored, strict=True):
            revision = symbol_revision(state.value, symbol)
            if expected is not None and expected[(user, symbol)] != revision:
                continue
            portfolio.load(user, state.value)
            try:
                payload = portfolio.mark_user(user, symbol, price)
            finally:
                portfolio.forget(user)
            if payload is None:  # no longer a holder: the index was stale
                follow.index.append(IndexChange(holders_index(symbol), user_log(user), False))
                self._held(symbol, user, False)
                continue
            bases[(user, symbol)] = revision
            pub = position_publication(user, {**payload, "timestamp": ts}, tick=True)
            follow.pubs.append(
                Publication(
                    pub.type, pub.data, pub.log, tick=True, state=pub.state, only_if=(STATE, state.version)
                )
            )
        if bases:
            follow.redo = functools.partial(self._left_out, bases)
        return follow

    async def _left_out(self, bases: dict[MarkKey, int], stamped: Sequence[Event]) -> FollowUp | None:
        """The marks the broker left out (their portfolio's version moved), derived again."""
        done = {(log_user(e.log), e.data.get("symbol")) for e in stamped if e.type == "position:update"}
        again: list[Mark] = []
        for user, symbol in bases:
            if (user, symbol) in done:
                continue
            price = self.portfolio.price(symbol)
            if price is not None:
                again.append((user, symbol, price))
        return await self._marked(again, bases)

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


def symbol_revision(stored: dict[str, Any] | None, symbol: str) -> int:
    """How many own position events the stored portfolio had counted at `symbol`'s last."""
    revisions = stored.get(REVISIONS) if stored is not None else None
    return int(revisions[1].get(symbol, 0)) if revisions else 0


def revised(
    exported: dict[str, Any] | None, stored: dict[str, Any] | None, own: Sequence[object], open_: set[str]
) -> dict[str, Any] | None:
    """The portfolio to store: `exported`, with the symbols of this event's own position
    events counted (closed symbols are forgotten)."""
    if exported is None:
        return None
    previous = stored.get(REVISIONS) if stored is not None else None
    count, counts = (int(previous[0]), previous[1]) if previous else (0, {})
    counts = {symbol: n for symbol, n in counts.items() if symbol in open_}
    for symbol in own:
        count += 1
        if isinstance(symbol, str) and symbol in open_:
            counts[symbol] = count
    return {**exported, REVISIONS: [count, counts]}
