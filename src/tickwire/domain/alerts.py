"""The alert rule engine, a processor of the publish pipeline (SPEC 13).

    price:update ──────┐            (stamped on this node: `after`)
    position:update ───┼─► watched symbol? ── no ─► nothing (a set lookup)
      (fills, marks)   │        │ yes
                       │        ▼
                       │   the symbol's rules, cached here for 1 s (alert_store.py layout)
                       │        ▼
                       │   each rule's value: the price, the window's move or volume ratio
                       │   (windows.py), the position's unrealized P&L ─► would it change?
                       │        │ yes (fire, suppress, re-arm)
                       │        ▼
                       └─► follow-up: the owner's `sym:{symbol}` state read afresh, every
                           observation applied to it in order, `alert:new` on the owner's
                           log + the state written with the version read (one batch)

Once per crossing across the cluster: a rule's evaluation state (armed, last fired,
counts) is processor state in the broker, and the batch that carries an alert also writes
that state, conditional on the version it was derived from. When two nodes see the same
crossing, one batch is stamped; the other is refused (`StateConflict`) and the pipeline asks
`after` again, which reads the state afresh and finds the rule disarmed. The cache only
decides whether to look: a rule re-armed by another node in the last second is seen at the
next refresh (a firing can be that much late, never doubled).

Windows are fed on every node from every price tick it delivers (`observe`, a hook of the
node's sink), so `pct_move` and `volume_spike` see a symbol's ticks whichever node they were
published on, once this node has loaded the symbol's rules (its first tick of the symbol).

Position marks reach `after` because the pipeline passes a processor's follow-ups on to
the processors after it (positions -> alerts -> history).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tickwire.brokers.base import Broker, Publication, StateWrite
from tickwire.core.clock import Clock
from tickwire.core.event import Event, iso_timestamp, log_user, user_log
from tickwire.domain.alert_store import WATCHED, decode, encode, owners_of, rules_log, symbol_state
from tickwire.domain.rules import FIRE, PNL_KINDS, PRICE_KINDS, Rule, alert_payload, holds, step
from tickwire.domain.windows import Windows
from tickwire.pipeline.processor import BaseProcessor, FollowUp

log = logging.getLogger("tickwire.alerts")

FRESH_S = 1.0  # how long this node trusts its copy of the watched symbols and their rules
Fired = Callable[[str, str, dict[str, object]], None]  # (user, alertId, payload)


@dataclass(frozen=True, slots=True)
class Observation:
    """One value an event gives rules: a price of `symbol`, or an owner's position on it."""

    symbol: str
    ms: int
    value: float
    owner: str | None = None  # a position's user; None for a price
    closed: bool = False


@dataclass(slots=True)
class SymbolRules:
    loaded_at: float
    checks: list[tuple[str, Rule]] = field(default_factory=list)  # (owner, enabled rule)
    versions: dict[str, tuple[int, list[Rule]]] = field(default_factory=dict)  # owner -> as read


def number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def observation(event: Event, watched: set[str] | frozenset[str]) -> Observation | None:
    """What `event` gives the rules of a watched symbol, if anything."""
    data = event.data
    symbol = data.get("symbol")
    if symbol not in watched or not isinstance(symbol, str):
        return None
    if event.type == "price:update":
        price = number(data.get("price"))
        return Observation(symbol, event.ms, price) if price is not None else None
    owner = log_user(event.log)
    if owner is None or data.get("snapshot"):
        return None
    if data.get("quantity") == 0:
        return Observation(symbol, event.ms, 0.0, owner, closed=True)
    pnl = number(data.get("unrealizedPnL"))
    return Observation(symbol, event.ms, pnl, owner) if pnl is not None else None


class AlertsProcessor(BaseProcessor):
    name = "alerts"

    def __init__(self, broker: Broker, clock: Clock, *, fired: Fired | None = None) -> None:
        self.broker = broker
        self.clock = clock
        self.windows = Windows()
        self.fired = fired
        self._watched: set[str] = set()
        self._watched_at = float("-inf")
        self._rules: dict[str, SymbolRules] = {}
        self.evaluations = 0  # rule evaluations on this node (bench, tests)

    # -- every node: windows ------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """A delivered event (the sink's hook): price ticks feed the windows."""
        if event.type != "price:update":
            return
        data = event.data
        symbol = data.get("symbol")
        if symbol not in self.windows or not isinstance(symbol, str):  # no rule here needs a window of it
            return
        price = number(data.get("price"))
        volume = number(data.get("volume"))
        if volume is None:
            volume = number(data.get("size")) or 0.0
        self.windows.observe(symbol, event.ms / 1000, price, volume)

    def invalidate(self, symbol: str) -> None:
        """This node's API changed the rules of `symbol`: read them again at its next tick."""
        self._watched.add(symbol)
        self._rules.pop(symbol, None)

    # -- the node a price or position was published on: evaluation ----------------------------

    async def after(self, events: Sequence[Event]) -> FollowUp | None:
        if self.clock.monotonic() - self._watched_at >= FRESH_S:
            await self._refresh_watched()
        watched = self._watched
        if not watched:
            return None
        by_symbol: dict[str, list[Observation]] = {}
        for event in events:
            if event.type == "price:update" or event.type == "position:update":
                seen = observation(event, watched)
                if seen is not None:
                    by_symbol.setdefault(seen.symbol, []).append(seen)
        if not by_symbol:
            return None
        affected: list[tuple[str, str]] = []
        for symbol, mine in by_symbol.items():
            entry = await self._entry(symbol, mine)
            affected += [(owner, symbol) for owner in self._candidates(entry, mine)]
        if not affected:
            return None
        return await self._settle(sorted(affected), by_symbol)

    async def _refresh_watched(self) -> None:
        self._watched = await self.broker.members(WATCHED)
        self._watched_at = self.clock.monotonic()

    async def _entry(self, symbol: str, seen: Sequence[Observation] = ()) -> SymbolRules:
        """The symbol's rules (read again when older than FRESH_S); new windows get `seen`'s
        prices, which they missed (the sink delivered them before the rules were known)."""
        now = self.clock.monotonic()
        entry = self._rules.get(symbol)
        if entry is not None and now - entry.loaded_at < FRESH_S:
            return entry
        owners = await owners_of(self.broker, symbol)
        stored = await self.broker.load([(rules_log(owner), symbol_state(symbol)) for owner in owners])
        before = entry.versions if entry is not None else {}
        entry = SymbolRules(now)
        needs: dict[float, bool] = {}
        for owner, state in zip(owners, stored, strict=True):
            known = before.get(owner)
            if known is not None and known[0] == state.version:
                rules = known[1]  # unchanged since the last read: no decoding
            else:
                rules = [r for r in decode(state).values() if r.enabled and r.symbol == symbol]
            entry.versions[owner] = (state.version, rules)
            entry.checks += [(owner, rule) for rule in rules]
            for rule in rules:
                if rule.windowS is not None:
                    needs[rule.windowS] = needs.get(rule.windowS, False) or rule.kind == "volume_spike"
        for series in self.windows.require(symbol, needs):
            for obs in seen:
                if obs.owner is None:
                    series.add(obs.ms / 1000, obs.value, 0.0)
        self._rules[symbol] = entry
        return entry

    def _value(
        self, rule: Rule, owner: str, seen: Observation, cache: dict[tuple[str, float], float | None]
    ) -> tuple[float, bool] | None:
        """(value, condition) of `rule` on one observation; None when it says nothing to it.
        `cache` keeps the window values of this observation (rules share windows)."""
        kind = rule.kind
        if seen.owner is not None:
            if kind not in PNL_KINDS or seen.owner != owner:
                return None
            return seen.value, not seen.closed and holds(kind, rule.threshold, seen.value)
        if kind in PRICE_KINDS:
            value: float | None = seen.value
        elif kind in PNL_KINDS:
            return None
        else:
            key = (kind, rule.windowS or 0.0)
            if key in cache:
                value = cache[key]
            else:
                series = self.windows.get(seen.symbol, key[1])
                t = seen.ms / 1000
                if series is None:
                    value = None
                elif kind == "pct_move":
                    value = series.move(t, seen.value)
                else:
                    value = series.volume_ratio(t)
                cache[key] = value
        if value is None:
            return None
        return value, holds(kind, rule.threshold, value)

    def _candidates(self, entry: SymbolRules, seen: list[Observation]) -> list[str]:
        """The owners some rule of whom would change state on these observations (from the
        cached state: a fire or suppress when it holds and is armed, a re-arm when not)."""
        found: dict[str, None] = {}
        for obs in seen:
            cache: dict[tuple[str, float], float | None] = {}
            for owner, rule in entry.checks:
                if owner in found:
                    continue
                result = self._value(rule, owner, obs, cache)
                if result is not None and result[1] == rule.armed:
                    found[owner] = None
            self.evaluations += len(entry.checks)
        return list(found)

    async def _settle(
        self, affected: list[tuple[str, str]], by_symbol: dict[str, list[Observation]]
    ) -> FollowUp:
        """The follow-up of the affected (owner, symbol) pairs, from their state read now."""
        refs = [(rules_log(owner), symbol_state(symbol)) for owner, symbol in affected]
        states = await self.broker.load(refs)
        follow = FollowUp()
        for (owner, symbol), stored, (log_name, name) in zip(affected, states, refs, strict=True):
            rules = decode(stored)
            changed = False
            for obs in by_symbol[symbol]:
                cache: dict[tuple[str, float], float | None] = {}
                for rule in rules.values():
                    result = self._value(rule, owner, obs, cache) if rule.symbol == symbol else None
                    outcome = step(rule, result[1] if result is not None else None, obs.ms)
                    if outcome is None or result is None:
                        continue
                    changed = True
                    if outcome == FIRE:
                        follow.pubs.append(self._alert(owner, rule, result[0], obs.ms))
            if changed:
                follow.writes.append(StateWrite(log_name, name, encode(rules), stored.version))
            self._rules.pop(symbol, None)  # read again next time: what was written is newer
        return follow

    def _alert(self, owner: str, rule: Rule, value: float, ms: int) -> Publication:
        payload = alert_payload(rule, value, iso_timestamp(ms))
        if self.fired is not None:
            self.fired(owner, str(payload["alertId"]), payload)
        return Publication("alert:new", payload, user_log(owner))
