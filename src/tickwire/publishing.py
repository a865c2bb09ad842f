"""Validation of publish requests (SPEC section 9), before anything is stamped.

Everything that could make a publish fail half-way is checked here, for every item
of a batch, so a batch is either entirely valid or rejected as a whole with a
message saying which item and what is wrong.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from tickwire.core.event import EVENT_TYPES
from tickwire.errors import PublishError

MAX_BATCH = 1000
USER_PATTERN = re.compile(r"^[A-Za-z0-9._@:-]{1,128}$")
_ALLOWED_FIELDS = frozenset({"type", "user", "data"})
_NUMERIC = {
    "order:fill": ("filledQty", "filledAvgPrice"),
    "position:update": ("quantity", "entryPrice", "currentPrice"),
    "price:update": ("price", "bid", "ask"),
    "order:update": ("qty",),
}
_NON_NEGATIVE = {"filledQty", "filledAvgPrice", "price", "bid", "ask", "entryPrice", "currentPrice", "qty"}
ALERT_LEVELS = ("info", "warning", "error")


@dataclass(frozen=True, slots=True)
class PublishRequest:
    type: str
    data: dict[str, Any]
    user: str | None = None


def parse_publish_body(body: Any) -> list[PublishRequest]:
    """One request or a batch (JSON array) of them; raises PublishError."""
    if isinstance(body, list):
        if not body:
            raise PublishError("the batch is empty: send at least one event")
        if len(body) > MAX_BATCH:
            raise PublishError(f"a batch holds at most {MAX_BATCH} events, got {len(body)}")
        return [parse_item(item, i) for i, item in enumerate(body)]
    return [parse_item(body, None)]


def parse_item(item: Any, index: int | None) -> PublishRequest:
    if not isinstance(item, dict):
        raise PublishError("an event must be a JSON object with type, data and (for user events) user", index)
    unknown = sorted(set(item) - _ALLOWED_FIELDS)
    if unknown:
        raise PublishError(
            f"unknown field(s) {', '.join(map(str, unknown))}: expected type, user, data", index
        )
    type_ = item.get("type")
    if not isinstance(type_, str):
        raise PublishError("`type` must be a string", index)
    spec = EVENT_TYPES.get(type_)
    if spec is None:
        raise PublishError(f"unknown event type {type_[:64]!r}; known: {', '.join(EVENT_TYPES)}", index)
    data = item.get("data")
    if not isinstance(data, dict):
        raise PublishError("`data` must be a JSON object", index)
    user = item.get("user")
    if spec.scope == "user":
        if not isinstance(user, str) or not USER_PATTERN.match(user):
            raise PublishError(
                f"{type_} is a user event: `user` must be a user id (1-128 of A-Z a-z 0-9 . _ @ : -)", index
            )
    elif user is not None:
        raise PublishError(f"{type_} is public: leave `user` out", index)
    for field in spec.required:
        value = data.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, str) or not value or len(value) > 128:
            raise PublishError(
                f"{type_} needs data.{field} (a non-empty string of at most 128 characters)", index
            )
    for field in _NUMERIC.get(type_, ()):
        if field in data and data[field] is not None:
            _check_number(type_, field, data[field], index)
    if "timestamp" in data and not isinstance(data["timestamp"], str):
        raise PublishError("data.timestamp must be an ISO 8601 string (or left out)", index)
    if type_ == "alert:new" and data.get("level", "info") not in ALERT_LEVELS:
        raise PublishError("alert level must be info, warning or error", index)
    if type_ == "order:fill" and data.get("status", "filled") not in ("filled", "partially_filled"):
        raise PublishError("order:fill status must be filled or partially_filled", index)
    return PublishRequest(type_, data, user if isinstance(user, str) else None)


def _check_number(type_: str, field: str, value: Any, index: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PublishError(f"{type_} data.{field} must be a finite number", index)
    if field in _NON_NEGATIVE and value < 0:
        raise PublishError(f"{type_} data.{field} must not be negative", index)
