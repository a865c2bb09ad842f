from __future__ import annotations

from tickwire.core.clock import FakeClock
from tickwire.core.ratelimit import RateLimiter


def test_allows_the_limit_then_refuses_with_a_wait() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock, 5)
    assert [rl.attempt("ip") for _ in range(5)] == [None] * 5
    wait = rl.attempt("ip")
    assert wait is not None and 59 < wait <= 60
    assert rl.retry_after(wait) == 60


def test_the_window_slides() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock, 2)
    rl.attempt("ip")
    clock.advance(30)
    rl.attempt("ip")
    assert rl.attempt("ip") is not None
    clock.advance(31)  # the first attempt left the window, the refused one has not
    assert rl.attempt("ip") is not None
    clock.advance(60)
    assert rl.attempt("ip") is None


def test_refused_attempts_count() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock, 1)
    rl.attempt("ip")
    for _ in range(10):
        clock.advance(10)
        assert rl.attempt("ip") is not None


def test_ips_are_independent_and_zero_disables() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock, 1)
    assert rl.attempt("a") is None
    assert rl.attempt("b") is None
    off = RateLimiter(clock, 0)
    assert all(off.attempt("a") is None for _ in range(100))


def test_memory_stays_bounded_under_a_flood() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock, 5, max_keys=100)
    for i in range(10_000):
        rl.attempt("same")
        rl.attempt(f"ip{i}")
        clock.advance(1)
    assert len(rl._attempts["same"]) <= 10
    assert len(rl._attempts) <= 200
