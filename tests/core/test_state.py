from __future__ import annotations

from tickwire.core.ids import Position
from tickwire.core.state import KeyedState


def p(offset: int, tick: int) -> Position:
    return Position(1, offset, tick)


def test_delta_merge_keeps_fields_not_in_the_delta() -> None:
    state = KeyedState()
    state.merge(
        "AAPL", {"symbol": "AAPL", "price": 1.0, "bid": 0.9}, p(0, 1), tick=True, type_="price:update", ms=1
    )
    merged = state.merge("AAPL", {"price": 2.0}, p(0, 2), tick=True, type_="price:update", ms=2)
    assert merged == {"symbol": "AAPL", "price": 2.0, "bid": 0.9}


def test_merge_does_not_mutate_the_published_payload() -> None:
    state = KeyedState()
    first = {"symbol": "A", "price": 1}
    state.merge("A", first, p(0, 1), tick=True, type_="price:update", ms=1)
    state.merge("A", {"price": 2}, p(0, 2), tick=True, type_="price:update", ms=2)
    assert first == {"symbol": "A", "price": 1}


def test_ticks_after_lists_only_tick_changes_after_the_position() -> None:
    state = KeyedState()
    state.merge("A", {"v": 1}, p(1, 1), tick=True, type_="t", ms=1)
    state.merge("B", {"v": 1}, p(1, 3), tick=True, type_="t", ms=1)
    state.merge("C", {"v": 1}, p(2, 4), tick=False, type_="t", ms=1)  # a log event: replayed instead
    assert [e.value for e in state.ticks_after(p(1, 2))] == [{"v": 1}]
    assert state.ticks_after(p(2, 4)) == []


def test_capacity_evicts_finished_entries_first() -> None:
    state = KeyedState(capacity=3, finished=lambda value: value.get("status") == "filled")
    state.merge("o1", {"status": "filled"}, p(1, 1), tick=False, type_="order:update", ms=1)
    state.merge("o2", {"status": "new"}, p(2, 2), tick=False, type_="order:update", ms=1)
    state.merge("o3", {"status": "new"}, p(3, 3), tick=False, type_="order:update", ms=1)
    state.merge("o4", {"status": "new"}, p(4, 4), tick=False, type_="order:update", ms=1)
    assert "o1" not in state
    assert {"o2", "o3", "o4"} == {k for k, _ in state.items()}
    state.merge("o5", {"status": "new"}, p(5, 5), tick=False, type_="order:update", ms=1)
    assert "o2" not in state  # nothing finished: the oldest goes
    assert len(state) == 3
