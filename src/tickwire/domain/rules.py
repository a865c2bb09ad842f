"""Alert rules (SPEC 13), pure: the kinds, a rule's definition and evaluation state, the
validation of API bodies (a `RuleError` names the bad field), and how a rule steps.

A rule watches one symbol and a value derived from the flow: the price (`price_above`,
`price_below`), the largest move within `windowS` in percent (`pct_move`), the volume within
`windowS` as a multiple of its average (`volume_spike`), or the unrealized P&L of the
owner's position (`pnl_above`, `pnl_below`). Computing those values is the engine's part
(domain/alerts.py, windows.py); here a rule only learns whether its condition holds.

It fires on crossing: when the condition holds and the rule is armed (a new rule is armed,
so one whose condition already holds fires at its first evaluation), then stays disarmed
while the condition holds and re-arms once it does not. At most one firing per `throttleS`:
a crossing within it is suppressed and counted (`suppressed`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Self, cast

from tickwire.errors import TickwireError

KINDS = ("price_above", "price_below", "pct_move", "volume_spike", "pnl_above", "pnl_below")
PRICE_KINDS = frozenset({"price_above", "price_below"})
WINDOW_KINDS = frozenset({"pct_move", "volume_spike"})
PNL_KINDS = frozenset({"pnl_above", "pnl_below"})
SEVERITIES = ("info", "warning", "error")
DEFAULT_THROTTLE_S = 30.0
DEFAULT_WINDOW_S = 60.0
MAX_WINDOW_S = 86_400.0
MAX_THROTTLE_S = 7 * 86_400.0
MAX_MESSAGE = 500
SYMBOL = re.compile(r"^[A-Za-z0-9._:/^=-]{1,32}$")  # as `?symbols=` (core/streams.py)
EDITABLE = ("kind", "symbol", "threshold", "windowS", "severity", "throttleS", "message", "enabled")
FIRE, SUPPRESS, REARM = "fire", "suppress", "rearm"


class RuleError(TickwireError, ValueError):
    """An invalid rule body; the message names the field."""


class JsonRecord:
    """A dataclass kept as JSON in the broker (camelCase, as the API shows it); keys it does
    not know (written by another version) are left out when read."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(cast(Any, self))

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cast(Any, cls))}
        return cls(**{k: v for k, v in value.items() if k in known})


@dataclass(slots=True)
class Rule(JsonRecord):
    """A rule's definition (camelCase as the API shows it) and its evaluation state."""

    ruleId: str  # camelCase: the names of the API and of the stored JSON
    kind: str
    symbol: str
    threshold: float
    windowS: float | None = None
    severity: str = "info"
    throttleS: float = DEFAULT_THROTTLE_S
    message: str | None = None
    enabled: bool = True
    createdMs: int = 0
    # Evaluation state: written with the batch that carries the alert (domain/alerts.py).
    armed: bool = True
    lastFiredMs: int | None = None
    fired: int = 0
    suppressed: int = 0

    def condition_key(self) -> tuple[Any, ...]:
        return (self.kind, self.symbol, self.threshold, self.windowS, self.enabled)


def holds(kind: str, threshold: float, value: float) -> bool:
    if kind in ("price_above", "pnl_above", "volume_spike"):
        return value >= threshold
    if kind in ("price_below", "pnl_below"):
        return value <= threshold
    return abs(value) >= threshold  # pct_move


def step(rule: Rule, cond: bool | None, ms: int) -> str | None:
    """Advance `rule` on one evaluation at `ms` (None: nothing to evaluate); what happened."""
    if cond is None or not rule.enabled:
        return None
    if not cond:
        if rule.armed:
            return None
        rule.armed = True
        return REARM
    if not rule.armed:
        return None
    rule.armed = False
    if rule.lastFiredMs is not None and ms - rule.lastFiredMs < rule.throttleS * 1000:
        rule.suppressed += 1
        return SUPPRESS
    rule.lastFiredMs = ms
    rule.fired += 1
    return FIRE


# -- alerts ------------------------------------------------------------------------------------


def fmt(x: float) -> str:
    return f"{round(x, 4):g}"


def describe(rule: Rule, value: float) -> str:
    """The default message of a firing."""
    s, t, w = rule.symbol, rule.threshold, fmt(rule.windowS or DEFAULT_WINDOW_S)
    if rule.kind == "price_above":
        return f"{s} at {fmt(value)} crossed above {fmt(t)}"
    if rule.kind == "price_below":
        return f"{s} at {fmt(value)} crossed below {fmt(t)}"
    if rule.kind == "pct_move":
        return f"{s} moved {value:+.2f}% within {w} s (threshold {fmt(t)}%)"
    if rule.kind == "volume_spike":
        return f"{s} volume at {value:.2f}x its average over {w} s (threshold {fmt(t)}x)"
    side = "above" if rule.kind == "pnl_above" else "below"
    return f"{s} unrealized P&L {fmt(value)} went {side} {fmt(t)}"


def alert_id(rule: Rule) -> str:
    """Unique per firing, and the same when a firing is derived again after a conflict."""
    return f"{rule.ruleId}-{rule.fired}"


def alert_payload(rule: Rule, value: float, ts: str) -> dict[str, Any]:
    """The `alert:new` of a firing (SPEC 13; `level` too, for SPEC 3's consumers)."""
    payload: dict[str, Any] = {
        "alertId": alert_id(rule),
        "ruleId": rule.ruleId,
        "kind": rule.kind,
        "symbol": rule.symbol,
        "severity": rule.severity,
        "level": rule.severity,
        "message": rule.message or describe(rule, value),
        "value": round(value, 6),
        "threshold": rule.threshold,
        "timestamp": ts,
    }
    if rule.windowS is not None:
        payload["windowS"] = rule.windowS
    if rule.severity == "error":
        payload["urgent"] = True  # SPEC 5: error alerts bypass batching and conflation
    return payload


# -- validation ----------------------------------------------------------------------------------


def parse_rule(body: Any, *, rule_id: str, now_ms: int) -> Rule:
    """A new rule from a POST body; `RuleError` names what is wrong."""
    if not isinstance(body, dict):
        raise RuleError("the body must be a JSON object describing the rule")
    _no_unknown(body)
    for name in ("kind", "symbol", "threshold"):
        if name not in body:
            raise RuleError(f"`{name}` is required")
    rule = Rule(ruleId=rule_id, kind="price_above", symbol="", threshold=0.0, createdMs=now_ms)
    return _apply(rule, body)


def patch_rule(rule: Rule, body: Any) -> Rule:
    """`rule` with the fields of a PATCH body; a changed condition re-arms it."""
    if not isinstance(body, dict) or not body:
        raise RuleError('the body must be a JSON object with the fields to change, e.g. {"enabled": false}')
    _no_unknown(body)
    updated = _apply(replace(rule), body)
    if updated.condition_key() != rule.condition_key():
        updated.armed = True
    return updated


def _no_unknown(body: dict[str, Any]) -> None:
    unknown = sorted(str(k) for k in body if k not in EDITABLE)
    if unknown:
        raise RuleError(f"unknown field(s) {', '.join(unknown)[:200]}: expected {', '.join(EDITABLE)}")


def _apply(rule: Rule, body: dict[str, Any]) -> Rule:
    if "kind" in body:
        if body["kind"] not in KINDS:
            raise RuleError(f"`kind` must be one of {', '.join(KINDS)}")
        rule.kind = body["kind"]
    if "symbol" in body:
        symbol = body["symbol"]
        if not isinstance(symbol, str) or not SYMBOL.fullmatch(symbol):
            raise RuleError("`symbol` must be 1-32 of A-Z a-z 0-9 . _ : / ^ = -")
        rule.symbol = symbol
    if "threshold" in body:
        rule.threshold = _number(body["threshold"], "threshold")
    if "severity" in body:
        if body["severity"] not in SEVERITIES:
            raise RuleError(f"`severity` must be one of {', '.join(SEVERITIES)}")
        rule.severity = body["severity"]
    if "throttleS" in body:
        rule.throttleS = _number(body["throttleS"], "throttleS", low=0, high=MAX_THROTTLE_S)
    if "message" in body:
        message = body["message"]
        if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE):
            raise RuleError(f"`message` must be a string of at most {MAX_MESSAGE} characters (or null)")
        rule.message = message or None
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise RuleError("`enabled` must be true or false")
        rule.enabled = body["enabled"]
    _window(rule, body)
    if rule.kind in ("pct_move", "volume_spike") and rule.threshold <= 0:
        raise RuleError(f"`threshold` of {rule.kind} must be above 0")
    return rule


def _window(rule: Rule, body: dict[str, Any]) -> None:
    given = body.get("windowS")
    if rule.kind not in WINDOW_KINDS:
        if given is not None:
            raise RuleError("`windowS` applies to pct_move and volume_spike only")
        rule.windowS = None
    elif given is not None:
        rule.windowS = _number(given, "windowS", low=1, high=MAX_WINDOW_S)
    elif rule.windowS is None:
        rule.windowS = DEFAULT_WINDOW_S


def _number(value: Any, name: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(f"`{name}` must be a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise RuleError(f"`{name}` must be between {fmt(low or 0)} and {fmt(high or 0)}")
    return float(value)
