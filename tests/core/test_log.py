from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tickwire.core.ids import Position
from tickwire.core.log import AHEAD, TOO_OLD, UNKNOWN_EPOCH, EventLog


def filled(n: int, capacity: int = 100) -> EventLog:
    log = EventLog("user:a", epoch=42, capacity=capacity)
    for i in range(n):
        log.append("alert:new", {"i": i}, 1000 + i)
    return log


def test_offsets_start_at_one_and_increase() -> None:
    log = filled(3)
    assert [e.pos.offset for e in log.tail(3)] == [1, 2, 3]  # type: ignore[union-attr]
    assert log.end == Position(42, 3, 3)


def test_ticks_get_unique_positions_without_taking_offsets() -> None:
    log = filled(1)
    t1 = log.stamp_tick("price:update", {}, 5, "k")
    t2 = log.stamp_tick("price:update", {}, 6, "k")
    e = log.append("alert:new", {}, 7)
    assert t1.pos == Position(42, 1, 2)
    assert t2.pos == Position(42, 1, 3)
    assert e.pos == Position(42, 2, 4)
    assert len({t1.id, t2.id, e.id}) == 3
    assert len(log) == 2  # ticks are not kept


def test_log_events_are_numbered_per_sequence_key() -> None:
    log = EventLog("user:a", epoch=42, capacity=2)
    numbered = [
        log.append("alert:new", {}, 1).seq,
        log.append("order:update", {}, 2).seq,
        log.append("alert:new", {}, 3).seq,
        log.append("strategy:update", {}, 4, seq_key="strategy:update:s1").seq,
        log.append("strategy:update", {}, 5, seq_key="strategy:update:s2").seq,
        log.stamp_tick("price:update", {}, 6, None).seq,
        log.append("alert:new", {}, 7).seq,  # beyond the capacity: numbering goes on
    ]
    assert numbered == [1, 1, 2, 1, 1, None, 3]


def test_read_after_returns_exactly_the_later_events() -> None:
    log = filled(10)
    events = log.read_after(Position(42, 4, 4))
    assert isinstance(events, list)
    assert [e.data["i"] for e in events] == [4, 5, 6, 7, 8, 9]


def test_read_after_from_a_tick_position_replays_the_following_log_events() -> None:
    log = filled(2)
    tick = log.stamp_tick("price:update", {}, 5, "k")
    log.append("alert:new", {"i": "after"}, 6)
    assert tick.pos is not None
    events = log.read_after(tick.pos)
    assert isinstance(events, list)
    assert [e.data["i"] for e in events] == ["after"]


def test_read_after_the_end_is_empty() -> None:
    log = filled(5)
    assert log.read_after(log.end) == []


def test_unknown_epoch_is_a_reset() -> None:
    assert filled(3).read_after(Position(43, 1, 1)) == UNKNOWN_EPOCH


def test_position_ahead_of_the_log_is_a_reset() -> None:
    assert filled(3).read_after(Position(42, 9, 9)) == AHEAD


def test_trimmed_history_is_a_reset_but_the_boundary_is_not() -> None:
    log = filled(15, capacity=10)  # keeps offsets 6..15
    assert log.first_offset == 6
    assert log.read_after(Position(42, 4, 4)) == TOO_OLD
    events = log.read_after(Position(42, 5, 5))
    assert isinstance(events, list)
    assert [e.pos.offset for e in events] == list(range(6, 16))  # type: ignore[union-attr]


def test_clear_keeps_counting_and_old_ids_reset() -> None:
    log = filled(5)
    log.clear()
    assert log.read_after(Position(42, 2, 2)) == TOO_OLD
    assert log.read_after(log.end) == []  # a client that had everything is fine
    e = log.append("alert:new", {}, 1)
    assert e.pos is not None and e.pos.offset == 6


@given(st.integers(1, 60), st.integers(1, 20), st.data())
def test_replay_boundaries(n: int, capacity: int, data: st.DataObject) -> None:
    log = filled(n, capacity)
    k = data.draw(st.integers(0, n))
    result = log.read_after(Position(42, k, k))
    if k + 1 < log.first_offset:
        assert result == TOO_OLD
    else:
        assert isinstance(result, list)
        assert [e.pos.offset for e in result] == list(range(k + 1, n + 1))  # type: ignore[union-attr]
