from __future__ import annotations

import pytest

from tickwire.core.clock import FakeClock
from tickwire.core.throttle import Throttle


def test_first_tick_goes_at_once_then_latest_wins_at_window_end() -> None:
    clock = FakeClock()
    t: Throttle[int] = Throttle(clock, 0.1)
    assert t.offer("AAPL", 1) == 1
    clock.advance(0.02)
    assert t.offer("AAPL", 2) is None
    clock.advance(0.02)
    assert t.offer("AAPL", 3) is None
    assert t.due() == []
    assert t.next_due() == pytest.approx(clock.monotonic() - 0.04 + 0.1)
    clock.advance(0.06)
    assert t.due() == [3]
    assert t.conflated == 1
    assert t.due() == []


def test_keys_are_independent() -> None:
    clock = FakeClock()
    t: Throttle[str] = Throttle(clock, 0.1)
    assert t.offer("A", "a1") == "a1"
    assert t.offer("B", "b1") == "b1"
    assert t.offer("A", "a2") is None
    clock.advance(0.1)
    assert t.due() == ["a2"]


def test_a_quiet_key_goes_immediately_again() -> None:
    clock = FakeClock()
    t: Throttle[int] = Throttle(clock, 0.1)
    assert t.offer("A", 1) == 1
    clock.advance(0.5)
    assert t.offer("A", 2) == 2


def test_window_zero_disables_throttling() -> None:
    t: Throttle[int] = Throttle(FakeClock(), 0)
    assert [t.offer("A", i) for i in range(3)] == [0, 1, 2]
    assert t.next_due() is None


def test_rate_is_bounded_under_a_burst() -> None:
    clock = FakeClock()
    t: Throttle[int] = Throttle(clock, 0.1)
    sent = 0
    for i in range(10_000):  # 10k updates/s for one second
        if t.offer("A", i) is not None:
            sent += 1
        clock.advance(0.0001)
        sent += len(t.due())
    assert 9 <= sent <= 11


def test_discard_forgets_the_waiting_item_but_keeps_the_window() -> None:
    clock = FakeClock()
    t: Throttle[int] = Throttle(clock, 0.1)
    assert t.offer("A", 1) == 1
    assert t.offer("A", 2) is None
    t.discard("A")
    t.discard("B")  # nothing waits: nothing happens
    assert t.next_due() is None
    assert t.offer("A", 3) is None  # still within the window of 1
    clock.advance(0.1)
    assert t.due() == [3]
