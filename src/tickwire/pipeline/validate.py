"""Stage 1 of the publish pipeline: validation of publish requests (SPEC section 9).

Everything that could make a publish fail half-way is checked here, for every item of
a batch, so a batch is either entirely valid or rejected as a whole with a message
saying which item and what is wrong. What a valid payload is comes from the event
types' declarations (`EventType`: required ids, numbers, choices), not from code here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tickwire.core.event import USER_ID, EventType
from tickwire.domain.catalog import EVENT_TYPES
from tickwire.errors import PublishError

_ALLOWED_FIELDS = frozenset({"type", "user", "data"})


@dataclass(frozen=True, slots=True)
class PublishRequest:
    type: str
    data: dict[str, Any]
    user: str | None = None


class Validator:
    """Turns a publish body (one object or a batch) into requests, or says what is wrong."""

    def __init__(self, types: Mapping[str, EventType] = EVENT_TYPES, max_batch: int = 1000) -> None:
        self.types = types
        self.max_batch = max_batch

    def parse_body(self, body: Any) -> list[PublishRequest]:
        """One request or a batch (JSON array) of them; raises PublishError."""
        if isinstance(body, list):
            if not body:
                raise PublishError("the batch is empty: send at least one event")
            if len(body) > self.max_batch:
                raise PublishError(f"a batch holds at most {self.max_batch} events, got {len(body)}")
            return [self.parse_item(item, i) for i, item in enumerate(body)]
        return [self.parse_item(body, None)]

    def parse_item(self, item: Any, index: int | None) -> PublishRequest:
        if not isinstance(item, dict):
            raise PublishError(
                "an event must be a JSON object with type, data and (for user events) user", index
            )
        unknown = sorted(set(item) - _ALLOWED_FIELDS)
        if unknown:
            raise PublishError(
                f"unknown field(s) {', '.join(map(str, unknown))}: expected type, user, data", index
            )
        type_ = item.get("type")
        if not isinstance(type_, str):
            raise PublishError("`type` must be a string", index)
        spec = self.types.get(type_)
        if spec is None:
            raise PublishError(f"unknown event type {type_[:64]!r}; known: {', '.join(self.types)}", index)
        data = item.get("data")
        if not isinstance(data, dict):
            raise PublishError("`data` must be a JSON object", index)
        user = _user(spec, item.get("user"), index)
        check_data(spec, data, index)
        return PublishRequest(type_, data, user)


def _user(spec: EventType, user: Any, index: int | None) -> str | None:
    if spec.scope == "user":
        if not isinstance(user, str) or not USER_ID.fullmatch(user):
            raise PublishError(
                f"{spec.name} is a user event: `user` must be a user id (1-128 of A-Z a-z 0-9 . _ @ : -)",
                index,
            )
        return user
    if user is not None:
        raise PublishError(f"{spec.name} is public: leave `user` out", index)
    return None


def check_data(spec: EventType, data: dict[str, Any], index: int | None = None) -> None:
    """The payload rules `spec` declares; raises PublishError naming the field."""
    type_ = spec.name
    for field in spec.required:
        value = data.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, str) or not value or len(value) > 128:
            raise PublishError(
                f"{type_} needs data.{field} (a non-empty string of at most 128 characters)", index
            )
    for field in spec.numbers:
        value = data.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PublishError(f"{type_} data.{field} must be a finite number", index)
        if field in spec.non_negative and value < 0:
            raise PublishError(f"{type_} data.{field} must not be negative", index)
    if "timestamp" in data and not isinstance(data["timestamp"], str):
        raise PublishError("data.timestamp must be an ISO 8601 string (or left out)", index)
    for field in spec.texts:
        value = data.get(field)
        if value is not None and not isinstance(value, str):
            raise PublishError(f"{type_} data.{field} must be a string", index)
    for field, allowed in spec.choices:
        if field in data and data[field] not in allowed:
            raise PublishError(f"{type_} data.{field} must be {_alternatives(allowed)}", index)


def _alternatives(allowed: tuple[str, ...]) -> str:
    return allowed[0] if len(allowed) == 1 else ", ".join(allowed[:-1]) + " or " + allowed[-1]


_DEFAULT = Validator()


def parse_publish_body(body: Any) -> list[PublishRequest]:
    """`Validator().parse_body` with the default catalogue and bounds."""
    return _DEFAULT.parse_body(body)


def parse_item(item: Any, index: int | None = None) -> PublishRequest:
    """`Validator().parse_item` with the default catalogue."""
    return _DEFAULT.parse_item(item, index)
