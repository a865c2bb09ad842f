from __future__ import annotations

import pytest

from tickwire.core.clock import FakeClock
from tickwire.core.outbox import SLOW_CONSUMER, Outbox
from tickwire.core.pacing import TickPacer


class Recorder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_notify_only_when_going_from_empty_to_non_empty() -> None:
    rec = Recorder()
    box = Outbox(1000, rec)
    box.put(b"a")
    box.put(b"b")
    assert rec.calls == 1
    assert box.drain() == b"ab"
    box.put(b"c")
    assert rec.calls == 2


def test_drain_keeps_order_and_empties() -> None:
    box = Outbox(1000, Recorder())
    for frame in (b"1", b"2", b"3"):
        box.put(frame)
    assert box.drain() == b"123"
    assert box.drain() == b""
    assert not box


def test_a_tick_supersedes_the_unsent_tick_of_its_key_and_moves_to_the_end() -> None:
    box = Outbox(1000, Recorder())
    box.put(b"[AAPL=1]", key="p|AAPL", tick=True)
    box.put(b"[order]")
    box.put(b"[MSFT=1]", key="p|MSFT", tick=True)
    box.put(b"[AAPL=2]", key="p|AAPL", tick=True)
    assert box.drain() == b"[order][MSFT=1][AAPL=2]"
    assert box.stats.conflated == 1


def test_a_log_event_with_the_same_key_supersedes_an_unsent_tick() -> None:
    box = Outbox(1000, Recorder())
    box.put(b"[mark]", key="pos|AAPL", tick=True)
    box.put(b"[fill-position]", key="pos|AAPL", tick=False)
    box.put(b"[fill-position-2]", key="pos|AAPL", tick=False)
    # Log events are never conflated with each other.
    assert box.drain() == b"[fill-position][fill-position-2]"


def test_log_events_are_never_conflated() -> None:
    box = Outbox(1000, Recorder())
    box.put(b"a", key="order|1")
    box.put(b"b", key="order|1")
    assert box.drain() == b"ab"


def test_over_the_bound_ticks_are_dropped_first() -> None:
    box = Outbox(100, Recorder())
    for i in range(5):
        box.put(b"t" * 15, key=f"k{i}", tick=True)
    box.put(b"L" * 40)  # 115 bytes > 100: the 75 bytes of ticks go
    assert box.closed is None
    assert box.drain() == b"L" * 40
    assert box.stats.dropped_slow == 5


def test_when_dropping_ticks_is_not_enough_the_outbox_closes() -> None:
    rec = Recorder()
    box = Outbox(100, rec)
    box.put(b"x" * 60)
    assert box.put(b"y" * 60) is False
    assert box.closed == SLOW_CONSUMER
    assert box.drain() == b""  # discarded: the client resumes from history
    assert box.put(b"z") is False
    assert box.stats.slow_closes == 1
    assert rec.calls == 2  # the writer is woken to close the connection


def test_a_graceful_close_still_drains_what_was_queued() -> None:
    box = Outbox(100, Recorder())
    box.put(b"bye")
    box.close("connection_limit")
    assert box.put(b"more") is False
    assert box.drain() == b"bye"


def test_memory_is_bounded_by_the_limit() -> None:
    box = Outbox(10_000, Recorder())
    for i in range(100_000):
        box.put(b"p" * 50, key=f"k{i % 7}", tick=True)
        assert box.pending_bytes <= 10_000
    assert box.closed is None


def test_oldest_ms_is_the_first_event_of_the_batch() -> None:
    box = Outbox(1000, Recorder())
    box.put(b"a", ms=5)
    box.put(b"b", ms=9)
    assert box.oldest_ms == 5
    box.drain()
    box.put(b"c", ms=12)
    assert box.oldest_ms == 12


def test_drain_frames_keeps_message_boundaries() -> None:
    box = Outbox(1000, Recorder())
    box.put(b"m1", key="k", tick=True)
    box.put(b"m2")
    box.put(b"m3", key="k", tick=True)
    assert box.drain_frames() == [b"m2", b"m3"]
    assert box.drain_frames() == []


def test_replayed_bytes_do_not_count_against_the_bound_until_drained() -> None:
    box = Outbox(100, Recorder())
    for _ in range(10):
        assert box.put(b"r" * 50, replay=True)
    assert box.put(b"live" * 10)  # 540 bytes queued, 500 of them replay: fine
    assert box.closed is None
    box.drain()
    box.put(b"x" * 60)
    assert box.put(b"y" * 60) is False  # the allowance ended with the drain


def test_with_conflation_off_every_tick_is_kept_but_still_shed_first() -> None:
    box = Outbox(100, Recorder(), conflate=False)
    box.put(b"[A1]", key="A", tick=True)
    box.put(b"[A2]", key="A", tick=True)
    assert box.drain() == b"[A1][A2]"
    for _ in range(5):
        box.put(b"t" * 15, key="A", tick=True)
    box.put(b"L" * 40)
    assert box.closed is None
    assert box.drain() == b"L" * 40


# -- rule 5: the per-connection tick cap ------------------------------------------------------


def capped(rate: float, clock: FakeClock, conflate: bool = True) -> tuple[Outbox, Recorder]:
    held = Recorder()
    box = Outbox(1000, Recorder(), conflate=conflate, pacer=TickPacer(clock, rate))
    box.on_held = held
    return box, held


def test_ticks_beyond_the_cap_wait_one_per_key_and_log_events_pass() -> None:
    clock = FakeClock()
    box, held = capped(2, clock)
    box.put(b"[A1]", key="A", tick=True)
    box.put(b"[B1]", key="B", tick=True)
    box.put(b"[C1]", key="C", tick=True)  # third in the second: waits
    box.put(b"[C2]", key="C", tick=True)  # replaces it
    box.put(b"[D1]", key="D", tick=True)
    box.put(b"[order]", key="order|1")  # never capped
    assert box.drain() == b"[A1][B1][order]"
    assert held.calls == 1  # once, when the first tick began to wait
    assert box.stats.capped == 1
    assert box.holds_tick("C") and box.holds_tick("D") and not box.holds_tick("A")


def test_waiting_ticks_go_oldest_first_as_the_cap_allows() -> None:
    clock = FakeClock()
    box, _ = capped(2, clock)
    for key in "ABCD":
        box.put(f"[{key}]".encode(), key=key, tick=True)
    box.drain()
    box.put(b"[C-newer]", key="C", tick=True)  # keeps C's place in the line
    release = box.release_at()
    assert release == pytest.approx(clock.monotonic() + 0.5)
    clock.advance(0.5)
    assert box.release() == 1
    assert box.drain() == b"[C-newer]"
    clock.advance(0.5)
    box.put(b"[E]", key="E", tick=True)  # a new key waits behind D, though a token is free
    assert box.release() == 1
    assert box.drain() == b"[D]"
    assert box.release_at() is not None
    clock.advance(0.5)
    box.release()
    assert box.drain() == b"[E]"
    assert box.release_at() is None


def test_a_tick_replacing_a_queued_tick_takes_no_share_of_the_cap() -> None:
    clock = FakeClock()
    box, _ = capped(1, clock)
    box.put(b"[A1]", key="A", tick=True)
    box.put(b"[A2]", key="A", tick=True)  # the unsent A1 is replaced: still one tick on the wire
    assert box.drain() == b"[A2]"
    assert box.stats.capped == 0


def test_a_log_event_of_the_key_supersedes_a_waiting_tick() -> None:
    clock = FakeClock()
    box, _ = capped(1, clock)
    box.put(b"[m1]", key="pos|A", tick=True)
    box.drain()
    box.put(b"[m2]", key="pos|A", tick=True)
    box.put(b"[opened]", key="pos|A")
    assert box.drain() == b"[opened]"
    assert box.release_at() is None


def test_the_cap_conflates_even_when_conflation_is_off() -> None:
    clock = FakeClock()
    box, _ = capped(1, clock, conflate=False)
    for n in range(4):
        box.put(b"[A%d]" % n, key="A", tick=True)
    assert box.drain() == b"[A0]"
    clock.advance(1)
    box.release()
    assert box.drain() == b"[A3]"


def test_closing_forgets_waiting_ticks() -> None:
    clock = FakeClock()
    box, _ = capped(1, clock)
    box.put(b"[A1]", key="A", tick=True)
    box.put(b"[B1]", key="B", tick=True)
    box.close("done")
    clock.advance(5)
    assert box.release_at() is None and box.release() == 0
    assert box.drain() == b"[A1]"
