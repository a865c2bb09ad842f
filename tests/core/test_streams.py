"""The generic stream rules of core/streams.py, on a catalogue made up for the test (the
SPEC's own streams are tested in tests/domain/test_catalog.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.core.streams import ANONYMOUS, Catalog, Principal, SnapshotPart, StreamDef
from tickwire.errors import StreamError


def _latest(values: list[dict[str, Any]], ts: str) -> tuple[str, dict[str, Any]]:
    return "reading", {"all": values, "timestamp": ts}


CATALOG = Catalog(
    [
        StreamDef(
            "sensors",
            "public",
            frozenset({"reading"}),
            public_log="sensors",
            snapshot=(SnapshotPart("readings", _latest),),
            key_field="sensor",
            key_param="ids",
        ),
        StreamDef("inbox", "user", frozenset({"mail"}), owner_param="of"),
        StreamDef("boards", "user", frozenset({"note"}), item_field="boardId", item_label="Board"),
    ],
    max_keys=3,
)
ALICE = Principal("alice")


def event(type_: str, **data: object) -> Event:
    return Event(type_, dict(data), "sensors", Position(1, 0, 1), 0)


def test_keys_narrow_events_and_snapshots() -> None:
    stream = CATALOG.resolve("sensors", {"ids": "a, b"}, ANONYMOUS)
    assert stream.keys == frozenset({"a", "b"}) and stream.log == "sensors"
    assert stream.matches(event("reading", sensor="a"))
    assert not stream.matches(event("reading", sensor="c"))
    assert not stream.matches(event("other", sensor="a"))
    ((type_, data),) = stream.snapshot_payloads({"readings": [{"sensor": "a"}, {"sensor": "c"}]}, 0)
    assert type_ == "reading" and data["all"] == [{"sensor": "a"}]


@pytest.mark.parametrize(("raw", "message"), [("a,b,c,d", "at most 3"), ("a b", "invalid value")])
def test_bad_keys_are_400_naming_the_parameter(raw: str, message: str) -> None:
    with pytest.raises(StreamError, match=f"`ids`: {message}") as err:
        CATALOG.resolve("sensors", {"ids": raw}, ANONYMOUS)
    assert err.value.status == 400


def test_owner_parameter_needs_the_owner_or_an_admin() -> None:
    assert CATALOG.resolve("inbox", {}, ALICE).log == "user:alice"
    with pytest.raises(StreamError) as err:
        CATALOG.resolve("inbox", {"of": "bob"}, ALICE)
    assert err.value.status == 403 and "inbox" in err.value.message
    assert CATALOG.resolve("inbox", {"of": "bob"}, Principal("root", frozenset({"admin"}))).log == "user:bob"


def test_items_are_named_in_the_path_and_filter_on_their_field() -> None:
    stream = CATALOG.resolve("boards/b1", {}, ALICE)
    assert (stream.name, stream.path, stream.item) == ("boards.b1", "boards/b1", "b1")
    assert stream.matches(Event("note", {"boardId": "b1"}, "user:alice", None, 0))
    assert not stream.matches(Event("note", {"boardId": "b2"}, "user:alice", None, 0))
    with pytest.raises(StreamError, match="Board not found"):
        CATALOG.resolve("boards/bad id", {}, ALICE)


@pytest.mark.parametrize("path", ["nope", "inbox/x", "boards", ""])
def test_unknown_paths_are_404(path: str) -> None:
    with pytest.raises(StreamError) as err:
        CATALOG.resolve(path, {}, ALICE)
    assert err.value.status == 404


def test_user_streams_need_a_user() -> None:
    with pytest.raises(StreamError) as err:
        CATALOG.resolve("inbox", {}, ANONYMOUS)
    assert err.value.status == 401
