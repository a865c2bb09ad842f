from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwire.core.ids import (
    EPOCH_MAX,
    ID_PATTERN,
    MalformedId,
    Position,
    b62decode,
    b62encode,
    format_id,
    parse_id,
)

positions = st.builds(
    Position,
    st.integers(1, EPOCH_MAX),
    st.integers(0, 2**48 - 1),
    st.integers(0, 2**48 - 1),
)


@given(positions, st.integers(0, 9_999_999_999_999))
def test_id_round_trip(pos: Position, ms: int) -> None:
    event_id = format_id(ms, pos)
    assert ID_PATTERN.fullmatch(event_id)
    assert event_id.startswith(f"{ms:013d}-")
    assert parse_id(event_id) == pos


@given(st.integers(0, 2**200))
def test_base62_round_trip(n: int) -> None:
    assert b62decode(b62encode(n)) == n


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "1735819800000",
        "1735819800000-",
        "173581980000-abc",
        "1735819800000-abc!",
        "1735819800000-" + "z" * 40,
        "1735819800000-0",  # epoch 0 is never issued
        "1735819800000-abc\n",
        "x" * 10_000,
    ],
)
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(MalformedId):
        parse_id(bad)


def test_positions_order_by_offset_then_tick() -> None:
    a = Position(7, 3, 10)
    assert Position(7, 3, 11).after(a)
    assert Position(7, 4, 10).after(a)
    assert not Position(7, 3, 10).after(a)
    assert not Position(7, 2, 99).after(a)
