"""The poll / long-poll / backfill body (SPEC section 7), built in one place.

    {"events":[{"event":...,"id":...,"seq":N,"data":{...}}],"lastEventId":...,"recovered":true|false}

A log event's `seq` (core/event.py) is there as on the other transports; ticks have none.

`lastEventId` is the id of the last returned event that has one, else the `after` the
client gave when it was honoured (so the client keeps its place), else null. A reply to
an `after` that could not be honoured carries `"reason"` (the same as `stream:reset`).
`poll_limit` and `poll_wait` read the request's parameters (400 when out of range).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from tickwire.core.event import Event
from tickwire.errors import Refused


class PolledEvent(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def id(self) -> str | None: ...

    @property
    def data(self) -> Any: ...


def poll_body(
    events: Iterable[PolledEvent], after: str | None, *, recovered: bool, reason: str | None = None
) -> dict[str, Any]:
    items = [_item(e) for e in events]
    last = next((item["id"] for item in reversed(items) if item["id"] is not None), None)
    body: dict[str, Any] = {
        "events": items,
        "lastEventId": last if last is not None else (after if recovered else None),
        "recovered": recovered,
    }
    if reason is not None:
        body["reason"] = reason
    return body


def _item(event: PolledEvent) -> dict[str, Any]:
    if isinstance(event, Event) and event.seq is not None:
        return {"event": event.type, "id": event.id, "seq": event.seq, "data": event.data}
    return {"event": event.type, "id": event.id, "data": event.data}


def poll_limit(raw: str | None, default: int, high: int) -> int:
    """The `limit` parameter: an integer from 1 to `high` (`default` when absent)."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= high:
        raise Refused(400, f"`limit` must be an integer from 1 to {high}")
    return value


def poll_wait(raw: str | None, high: float) -> float:
    """The `wait` parameter: seconds from 0 to `high` (0 when absent)."""
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= high:  # NaN too
        raise Refused(400, f"`wait` must be a number of seconds from 0 to {high:g}")
    return value
