"""Demo pacing (tickwire.demo.feed): the `every` loop on an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from demo.helpers import run
from tickwire.core.clock import FakeClock
from tickwire.demo.feed import MAX_CATCH_UP, every


def test_every_catches_up_on_its_own_clock_and_survives_a_failing_step() -> None:
    """The schedule follows the injected clock: steps report how many intervals were due."""
    clock = FakeClock()
    calls: list[int] = []
    jumps = iter([0.35, 1000.0, 0.0])

    async def step(due: int) -> None:
        calls.append(due)
        if len(calls) == 2:
            raise RuntimeError("a bad tick")
        if len(calls) == 5:
            raise asyncio.CancelledError
        clock.advance(next(jumps))

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await every(0.1, clock, step, "test")

    run(main())
    # on time; 0.35 s later two were due (that step failed, and the loop went on); on time;
    # 1000 s later the backlog is capped and dropped; the schedule restarts from then
    assert calls == [1, 2, 1, MAX_CATCH_UP, 1]
    with pytest.raises(ValueError, match="positive"):
        run(every(0, clock, step, "test"))
