"""Where alert rules live: processor state in the broker, shared by every node.

Each user's rules are kept on a log of their own, `alertrules:{user}` (never a user log, so
they outlive the user's history and state TTL), as processor states:

- `rules`: the user's catalogue, rule id -> symbol (listing, the per-user bound);
- `sym:{symbol}`: the user's rules on that symbol with their evaluation state (armed, last
  fired, counts): what the engine loads for a tick and writes with the alert it fires.

Two broker sets find them: `alerts:sym:{symbol}` holds the `alertrules:` logs with rules on
the symbol, `alerts:watched` the symbols some rule watches (a symbol stays listed after its
last rule went: one spare lookup a second, no race with a rule being added).

Every change is one batch of versioned writes (`Batch.writes`) derived again when another
node changed the same state meanwhile, so the API, the engines of every node and a firing
never overwrite each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from tickwire.brokers.base import Batch, Broker, IndexChange, StateWrite, Stored
from tickwire.core.clock import Clock
from tickwire.domain.rules import Rule, RuleError, parse_rule, patch_rule
from tickwire.errors import BrokerUnavailable, StateConflict

RULES_LOG = "alertrules:"
CATALOGUE = "rules"
WATCHED = "alerts:watched"
ATTEMPTS = 8


def rules_log(user: str) -> str:
    return RULES_LOG + user


def rules_owner(log: str) -> str | None:
    return log[len(RULES_LOG) :] if log.startswith(RULES_LOG) else None


def symbol_state(symbol: str) -> str:
    return f"sym:{symbol}"


def symbol_index(symbol: str) -> str:
    return f"alerts:sym:{symbol}"


def decode(stored: Stored) -> dict[str, Rule]:
    """A `sym:{symbol}` state's rules, by id."""
    raw = (stored.value or {}).get("rules", {})
    return {rid: Rule.from_json(value) for rid, value in raw.items()}


def encode(rules: dict[str, Rule]) -> dict[str, Any] | None:
    return {"rules": {rid: rule.to_json() for rid, rule in rules.items()}} if rules else None


class RuleLimit(RuleError):
    """The user has as many rules as allowed."""


class RuleStore:
    """The rules API's storage (server/alerts.py); `changed(symbol)` tells this node's engine."""

    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        *,
        max_rules: int,
        changed: Callable[[str], None] | None = None,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.max_rules = max_rules
        self.changed = changed or (lambda symbol: None)

    async def _catalogue(self, user: str) -> tuple[Stored, dict[str, str]]:
        (stored,) = await self.broker.load([(rules_log(user), CATALOGUE)])
        return stored, dict((stored.value or {}).get("rules", {}))

    async def rules_of(self, user: str) -> list[Rule]:
        _, catalogue = await self._catalogue(user)
        symbols = sorted(set(catalogue.values()))
        states = await self.broker.load([(rules_log(user), symbol_state(s)) for s in symbols])
        by_id = {rid: rule for stored in states for rid, rule in decode(stored).items()}
        return [by_id[rid] for rid in catalogue if rid in by_id]  # in the order they were created

    async def get(self, user: str, rule_id: str) -> Rule | None:
        _, catalogue = await self._catalogue(user)
        symbol = catalogue.get(rule_id)
        if symbol is None:
            return None
        (stored,) = await self.broker.load([(rules_log(user), symbol_state(symbol))])
        return decode(stored).get(rule_id)

    async def create(self, user: str, body: Any) -> Rule:
        rule = parse_rule(body, rule_id=f"r-{uuid.uuid4().hex[:12]}", now_ms=self.clock.wall_ms())
        result = await self._change(user, rule.ruleId, lambda _old: rule, new=True)
        assert result is not None
        return result

    async def patch(self, user: str, rule_id: str, body: Any) -> Rule | None:
        return await self._change(user, rule_id, lambda old: patch_rule(old, body))

    async def delete(self, user: str, rule_id: str) -> bool:
        return await self._change(user, rule_id, lambda _old: None) is not None

    async def _change(
        self, user: str, rule_id: str, make: Callable[[Rule], Rule | None], *, new: bool = False
    ) -> Rule | None:
        """Apply `make` to the stored rule (a placeholder for a new one) and write what it
        returns (None deletes); the rule before a delete, after anything else; None when
        the user has no such rule."""
        for _attempt in range(ATTEMPTS):
            cat_stored, catalogue = await self._catalogue(user)
            if new and len(catalogue) >= self.max_rules:
                raise RuleLimit(f"at most {self.max_rules} rules per user: delete one first")
            old_symbol = catalogue.get(rule_id)
            if old_symbol is None and not new:
                return None
            old_rules = await self._rules(user, old_symbol)
            old = old_rules[1].get(rule_id) if old_symbol else None
            result = make(old) if old is not None else make(Rule(rule_id, "price_above", "", 0.0))
            writes, index = self._writes(user, cat_stored, catalogue, old_symbol, old_rules, rule_id, result)
            if result is not None and result.symbol != old_symbol:
                new_rules = await self._rules(user, result.symbol)
                new_rules[1][rule_id] = result
                writes.append(self._write(user, result.symbol, new_rules))
                index += [
                    IndexChange(symbol_index(result.symbol), rules_log(user), True),
                    IndexChange(WATCHED, result.symbol, True),
                ]
            try:
                await self.broker.submit(Batch([], self.clock.wall_ms(), writes=writes, index=index))
            except StateConflict:
                continue
            for symbol in {old_symbol, result.symbol if result else None} - {None}:
                self.changed(str(symbol))
            return result if result is not None else old
        raise BrokerUnavailable("the user's rules kept changing under this request: retry")

    async def _rules(self, user: str, symbol: str | None) -> tuple[Stored, dict[str, Rule]]:
        if symbol is None:
            return Stored(), {}
        (stored,) = await self.broker.load([(rules_log(user), symbol_state(symbol))])
        return stored, decode(stored)

    def _write(self, user: str, symbol: str, rules: tuple[Stored, dict[str, Rule]]) -> StateWrite:
        stored, by_id = rules
        return StateWrite(rules_log(user), symbol_state(symbol), encode(by_id), stored.version)

    def _writes(
        self,
        user: str,
        cat_stored: Stored,
        catalogue: dict[str, str],
        old_symbol: str | None,
        old_rules: tuple[Stored, dict[str, Rule]],
        rule_id: str,
        result: Rule | None,
    ) -> tuple[list[StateWrite], list[IndexChange]]:
        """The catalogue, and the old symbol's rules without (or with the changed) rule."""
        if result is None:
            catalogue.pop(rule_id, None)
        else:
            catalogue[rule_id] = result.symbol
        log = rules_log(user)
        writes = [StateWrite(log, CATALOGUE, {"rules": catalogue} if catalogue else None, cat_stored.version)]
        index: list[IndexChange] = []
        if old_symbol is not None:
            by_id = old_rules[1]
            if result is not None and result.symbol == old_symbol:
                by_id[rule_id] = result
            else:
                by_id.pop(rule_id, None)
                if not by_id:
                    index.append(IndexChange(symbol_index(old_symbol), log, False))
            writes.append(self._write(user, old_symbol, old_rules))
        return writes, index


async def owners_of(broker: Broker, symbol: str) -> Sequence[str]:
    """The users with rules on `symbol`."""
    logs = await broker.members(symbol_index(symbol))
    return sorted(u for u in (rules_owner(log) for log in logs) if u is not None)
