"""The tick cap's token bucket, on a fake clock."""

from __future__ import annotations

import pytest

from tickwire.core.clock import FakeClock
from tickwire.core.pacing import TickPacer


def test_a_burst_of_rate_then_one_per_interval() -> None:
    clock = FakeClock()
    pacer = TickPacer(clock, 10)
    assert [pacer.take() for _ in range(11)] == [True] * 10 + [False]
    assert pacer.next_at() == pytest.approx(clock.monotonic() + 0.1)
    clock.advance(0.1)
    assert pacer.take()
    assert not pacer.take()


def test_tokens_do_not_pile_up_beyond_the_burst() -> None:
    clock = FakeClock()
    pacer = TickPacer(clock, 2)
    clock.advance(60)
    assert sum(pacer.take() for _ in range(10)) == 2


def test_a_rate_below_one_still_lets_one_through() -> None:
    clock = FakeClock()
    pacer = TickPacer(clock, 0.5)
    assert pacer.take()
    assert not pacer.take()
    assert pacer.next_at() == pytest.approx(clock.monotonic() + 2)
    clock.advance(2)
    assert pacer.take()


def test_small_steps_reach_the_next_token() -> None:
    clock = FakeClock()
    pacer = TickPacer(clock, 3)
    for _ in range(3):
        pacer.take()
    for _ in range(10):
        clock.advance(1 / 30)
    assert pacer.take()


def test_no_rate_is_no_pacer() -> None:
    with pytest.raises(ValueError, match="0 means no cap"):
        TickPacer(FakeClock(), 0)


def test_a_ready_token_is_due_before_any_time_read_earlier() -> None:
    clock = FakeClock()
    pacer = TickPacer(clock, 1)
    before = clock.monotonic()
    assert pacer.next_at() <= before
