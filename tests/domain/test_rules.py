"""The rule library, pure: validation naming the bad field, crossing, not re-firing while
the condition holds, the throttle and its suppressed count, and the sliding windows."""

from __future__ import annotations

import pytest

from tickwire.domain.rules import (
    FIRE,
    REARM,
    SUPPRESS,
    Rule,
    RuleError,
    alert_payload,
    holds,
    parse_rule,
    patch_rule,
    step,
)
from tickwire.domain.windows import Series, Windows


def rule(kind: str = "price_above", threshold: float = 100.0, **body: object) -> Rule:
    return parse_rule(
        {"kind": kind, "symbol": "AAPL", "threshold": threshold, **body}, rule_id="r1", now_ms=0
    )


def run(r: Rule, values: list[float], start_ms: int = 0, every_ms: int = 1000) -> list[str | None]:
    return [step(r, holds(r.kind, r.threshold, v), start_ms + i * every_ms) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("kind", "threshold", "values", "expected"),
    [
        ("price_above", 100, [99, 101, 102, 99, 100], [None, FIRE, None, REARM, FIRE]),  # >= crosses
        ("price_below", 100, [101, 99, 98, 101, 100], [None, FIRE, None, REARM, FIRE]),
        ("pnl_above", 50, [0, 60, 70, 10], [None, FIRE, None, REARM]),
        ("pnl_below", -50, [0, -60, -70, 10], [None, FIRE, None, REARM]),
        ("pct_move", 2, [0.5, -2.5, 3.0, 1.0], [None, FIRE, None, REARM]),
        ("volume_spike", 3, [1.0, 3.5, 4.0, 2.0], [None, FIRE, None, REARM]),
    ],
)
def test_every_kind_fires_on_crossing_and_not_again_while_it_holds(
    kind: str, threshold: float, values: list[float], expected: list[str | None]
) -> None:
    r = rule(kind, threshold, throttleS=0)
    assert run(r, values) == expected
    assert r.fired == expected.count(FIRE) and r.suppressed == 0


def test_a_new_rule_whose_condition_holds_fires_at_once() -> None:
    r = rule()
    assert run(r, [150]) == [FIRE]


def test_the_throttle_suppresses_crossings_and_counts_them() -> None:
    r = rule(throttleS=30)
    # Crossings at 0 s, 10 s and 20 s: only the first fires; at 40 s the throttle is over.
    outcomes = run(r, [101, 99, 101, 99, 101, 99, 99, 101], every_ms=5000)
    assert outcomes == [FIRE, REARM, SUPPRESS, REARM, SUPPRESS, REARM, None, FIRE]
    assert (r.fired, r.suppressed, r.lastFiredMs) == (2, 2, 35_000)


def test_a_disabled_rule_does_nothing() -> None:
    r = rule(enabled=False)
    assert run(r, [101, 99, 101]) == [None, None, None]


def test_a_patched_condition_rearms_the_rule() -> None:
    r = rule()
    run(r, [101])
    assert not r.armed
    assert not patch_rule(r, {"severity": "error"}).armed  # not a condition
    patched = patch_rule(r, {"threshold": 200})
    assert patched.armed and patched.threshold == 200 and patched.fired == 1


def test_the_alert_payload_maps_severity_to_level_and_error_is_urgent() -> None:
    r = rule(severity="error", throttleS=0)
    run(r, [101.5])
    payload = alert_payload(r, 101.5, "2026-01-01T00:00:00.000Z")
    assert payload["alertId"] == "r1-1"
    assert payload["severity"] == payload["level"] == "error"
    assert payload["urgent"] is True
    assert payload["message"] == "AAPL at 101.5 crossed above 100"
    assert {"ruleId", "kind", "symbol", "value", "threshold", "timestamp"} <= set(payload)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"symbol": "A", "threshold": 1}, "`kind`"),
        ({"kind": "price_above", "threshold": 1}, "`symbol`"),
        ({"kind": "price_above", "symbol": "A"}, "`threshold`"),
        ({"kind": "nope", "symbol": "A", "threshold": 1}, "`kind`"),
        ({"kind": "price_above", "symbol": "A B", "threshold": 1}, "`symbol`"),
        ({"kind": "price_above", "symbol": "A", "threshold": "1"}, "`threshold`"),
        ({"kind": "price_above", "symbol": "A", "threshold": True}, "`threshold`"),
        ({"kind": "price_above", "symbol": "A", "threshold": 1, "severity": "fatal"}, "`severity`"),
        ({"kind": "price_above", "symbol": "A", "threshold": 1, "throttleS": -1}, "`throttleS`"),
        ({"kind": "price_above", "symbol": "A", "threshold": 1, "windowS": 60}, "`windowS`"),
        ({"kind": "pct_move", "symbol": "A", "threshold": 1, "windowS": 0}, "`windowS`"),
        ({"kind": "pct_move", "symbol": "A", "threshold": 0}, "`threshold`"),
        ({"kind": "price_above", "symbol": "A", "threshold": 1, "message": 5}, "`message`"),
        ({"kind": "price_above", "symbol": "A", "threshold": 1, "enabled": "no"}, "`enabled`"),
        ({"kind": "price_above", "symbol": "A", "threshold": 1, "owner": "bob"}, "owner"),
    ],
)
def test_validation_names_the_bad_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(RuleError, match=field):
        parse_rule(body, rule_id="r", now_ms=0)


def test_window_kinds_get_a_default_window() -> None:
    assert rule("pct_move", 2).windowS == 60
    assert rule("pct_move", 2, windowS=300).windowS == 300
    assert rule("price_above").windowS is None


# -- windows --------------------------------------------------------------------------------------


def test_a_move_is_the_largest_change_within_the_window() -> None:
    s = Series(60)  # buckets of 3 s
    s.add(0, 100, 1)
    s.add(10, 95, 1)
    s.add(20, 104, 1)
    assert s.move(20, 104) == pytest.approx((104 - 95) / 95 * 100)  # up from the low
    assert s.move(20, 92) == pytest.approx((92 - 104) / 104 * 100)  # down from the high
    # 70 s later the ticks of 0-10 s are out of the window: only 104 (at 20 s) is left.
    s.add(70, 103, 1)
    assert s.move(70, 103) == pytest.approx((103 - 104) / 104 * 100)
    assert s.move(200, 50) == 0.0  # nothing left in the window but the price itself


def test_the_volume_ratio_needs_a_whole_window_of_history() -> None:
    s = Series(10, baseline=10)  # buckets of 0.5 s
    for t in range(10):  # the first window: 1 per second
        s.add(t, 100, 1)
        assert s.volume_ratio(t) is None
    for t in range(10, 20):  # the second: 4 per second
        s.add(t, 100, 4)
    assert s.volume_ratio(19.9) == pytest.approx(4.0)


def test_windows_keep_bounded_memory_and_only_required_series() -> None:
    w = Windows()
    w.observe("AAPL", 0, 100, 1)  # nobody needs AAPL: nothing kept
    assert len(w) == 0
    w.require("AAPL", {60.0: True})
    for t in range(100_000):
        w.observe("AAPL", t * 0.25, 100 + t % 7, 1)
    series = w.get("AAPL", 60.0)
    assert series is not None and len(series.buckets) <= 20 * 11
    w.require("AAPL", {})
    assert w.get("AAPL", 60.0) is None
