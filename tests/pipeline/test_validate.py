from __future__ import annotations

from typing import Any

import pytest

from tickwire.errors import PublishError
from tickwire.pipeline.validate import Validator, parse_publish_body


def test_single_and_batch() -> None:
    one = parse_publish_body({"type": "price:update", "data": {"symbol": "A", "price": 1}})
    assert [(r.type, r.user) for r in one] == [("price:update", None)]
    many = parse_publish_body([{"type": "alert:new", "user": "u1", "data": {"message": "m"}}] * 3)
    assert len(many) == 3 and many[0].user == "u1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "empty"),
        ("x", "JSON object"),
        ({"type": 1, "data": {}}, "`type` must be a string"),
        ({"type": "nope", "data": {}}, "unknown event type"),
        ({"type": "alert:new", "user": "u", "data": []}, "`data` must be a JSON object"),
        ({"type": "alert:new", "data": {"message": "m"}}, "user event"),
        ({"type": "alert:new", "user": "bad user!", "data": {"message": "m"}}, "user event"),
        ({"type": "price:update", "user": "u", "data": {"symbol": "A"}}, "public"),
        ({"type": "price:update", "data": {"price": 1}}, "data.symbol"),
        ({"type": "price:update", "data": {"symbol": "A", "price": "1"}}, "finite number"),
        ({"type": "price:update", "data": {"symbol": "A", "price": -1}}, "negative"),
        ({"type": "order:fill", "user": "u", "data": {"orderId": "o", "filledQty": True}}, "finite number"),
        ({"type": "order:fill", "user": "u", "data": {"orderId": "o", "status": "done"}}, "filled or"),
        (
            {"type": "alert:new", "user": "u", "data": {"message": "m", "level": "fatal"}},
            "alert:new data.level must be info, warning or error",
        ),
        ({"type": "alert:new", "user": "u", "data": {"message": "m", "timestamp": 5}}, "timestamp"),
        ({"type": "alert:new", "user": "u", "data": {"message": "m"}, "extra": 1}, "unknown field"),
    ],
)
def test_invalid_items_say_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(PublishError, match=message):
        parse_publish_body(body)


def test_a_bad_item_in_a_batch_is_named() -> None:
    ok = {"type": "alert:new", "user": "u", "data": {"message": "m"}}
    with pytest.raises(PublishError, match=r"^item 2: unknown event type"):
        parse_publish_body([ok, ok, {"type": "bad", "data": {}}])


def test_batches_are_bounded() -> None:
    ok = {"type": "alert:new", "user": "u", "data": {"message": "m"}}
    with pytest.raises(PublishError, match="at most 1000 events"):
        parse_publish_body([ok] * 1001)
    with pytest.raises(PublishError, match="at most 3 events"):
        Validator(max_batch=3).parse_body([ok] * 4)
