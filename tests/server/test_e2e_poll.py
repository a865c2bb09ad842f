"""End to end: poll, long-poll and backfill (SPEC section 7)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from support.e2e import ID_RE, alert, assert_error, order, poll, price, publish, sym, uid
from support.servers import ServerProcess


def _body(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-correlation-id")
    body = response.json()
    assert set(body) >= {"events", "lastEventId", "recovered"}, body
    for event in body["events"]:
        assert set(event) >= {"event", "id", "data"}, event
    return dict(body)


def _publish_later(server: ServerProcess, delay: float, *items: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        publish(server, *items)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_poll_without_after_returns_buffered_events_of_a_log_stream(server: ServerProcess) -> None:
    user = uid("poll")
    ids = publish(server, alert(user, 1), order(user, "o-1", symbol=sym()), alert(user, 2))
    body = _body(poll(server, "alerts", server.token(user)))
    assert body["recovered"] is True
    assert [(e["event"], e["id"]) for e in body["events"]] == [("alert:new", ids[0]), ("alert:new", ids[2])]
    assert body["events"][0]["data"]["alertId"] == "a-1"
    assert body["lastEventId"] == ids[2]
    assert [e["seq"] for e in body["events"]] == [1, 2]  # numbered per type, like on every transport


def test_poll_without_after_returns_the_snapshot_of_a_snapshot_stream(server: ServerProcess) -> None:
    user = uid("pollsnap")
    publish(server, order(user, "o-1", symbol=sym()), order(user, "o-2", symbol=sym()))
    body = _body(poll(server, "orders", server.token(user)))
    assert [e["event"] for e in body["events"]] == ["order:update"]
    snap = body["events"][0]
    assert snap["data"]["snapshot"] is True
    assert {o["orderId"] for o in snap["data"]["orders"]} == {"o-1", "o-2"}
    assert ID_RE.match(snap["id"])
    assert body["lastEventId"] == snap["id"]


def test_poll_prices_is_public_and_filtered(server: ServerProcess) -> None:
    a, b = sym(), sym()
    publish(server, price(a, 1.0), price(b, 2.0))
    body = _body(poll(server, "prices", symbols=a))
    [snap] = body["events"]
    assert snap["data"]["initializing"] is True
    assert [p["symbol"] for p in snap["data"]["prices"]] == [a]


def test_poll_after_returns_the_missed_events_with_limit_and_last_event_id(server: ServerProcess) -> None:
    user = uid("after")
    token = server.token(user)
    ids = publish(server, *(alert(user, i) for i in range(6)))
    body = _body(poll(server, "alerts", token, after=ids[0]))
    assert [e["id"] for e in body["events"]] == ids[1:]
    assert body["recovered"] is True
    assert body["lastEventId"] == ids[-1]

    body = _body(poll(server, "alerts", token, after=ids[0], limit=2))
    assert [e["id"] for e in body["events"]] == ids[1:3]
    assert body["lastEventId"] == ids[2]
    body = _body(poll(server, "alerts", token, after=body["lastEventId"], limit=2))
    assert [e["id"] for e in body["events"]] == ids[3:5]
    body = _body(poll(server, "alerts", token, after=body["lastEventId"], limit=1000))
    assert [e["id"] for e in body["events"]] == ids[5:]

    # Nothing newer: no events, and lastEventId is the `after` given.
    body = _body(poll(server, "alerts", token, after=ids[-1]))
    assert body["events"] == []
    assert body["lastEventId"] == ids[-1]
    assert body["recovered"] is True


def test_long_poll_holds_until_an_event_is_published(server: ServerProcess) -> None:
    user = uid("wait")
    token = server.token(user)
    [last] = publish(server, alert(user, 0))
    # An event of another type on the same log does not end the wait; the alert does.
    thread = _publish_later(server, 0.3, order(user, "o-1", symbol=sym()))
    thread2 = _publish_later(server, 0.6, alert(user, 1))
    started = time.monotonic()
    body = _body(poll(server, "alerts", token, after=last, wait=20))
    elapsed = time.monotonic() - started
    thread.join(5)
    thread2.join(5)
    assert [e["data"]["alertId"] for e in body["events"]] == ["a-1"]
    assert body["lastEventId"] == body["events"][0]["id"]
    assert elapsed < 15, elapsed  # answered when the event came, not at the timeout


def test_long_poll_returns_on_timeout_with_no_events(server: ServerProcess) -> None:
    user = uid("timeout")
    token = server.token(user)
    [last] = publish(server, alert(user, 0))
    started = time.monotonic()
    body = _body(poll(server, "alerts", token, after=last, wait=1))
    elapsed = time.monotonic() - started
    assert body["events"] == []
    assert body["lastEventId"] == last
    assert body["recovered"] is True
    assert elapsed >= 0.9, elapsed


def test_long_poll_with_fractional_wait_on_public_stream(server: ServerProcess) -> None:
    a = sym()
    [tick] = publish(server, price(a, 1.0))
    thread = _publish_later(server, 0.2, price(a, 2.0))
    body = _body(poll(server, "prices", after=tick, wait=10, symbols=a))
    thread.join(5)
    assert [e["data"]["price"] for e in body["events"]] == [2.0]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": -1},
        {"limit": "abc"},
        {"wait": 31},
        {"wait": "abc"},
        {"wait": -1},
        {"wait": "nan"},
    ],
)
def test_out_of_range_limit_or_wait_is_400(server: ServerProcess, params: dict[str, Any]) -> None:
    user = uid("bad")
    response = poll(server, "alerts", server.token(user), **params)
    body = assert_error(response, 400)
    assert next(iter(params)) in body["message"]


def test_limit_and_wait_bounds_are_accepted(server: ServerProcess) -> None:
    user = uid("bounds")
    token = server.token(user)
    assert _body(poll(server, "alerts", token, limit=1)) is not None
    assert _body(poll(server, "alerts", token, limit=1000, wait=0)) is not None


@pytest.mark.parametrize("after", ["garbage", "1735819800000-", "x" * 3000])
def test_malformed_after_is_not_recovered(server: ServerProcess, after: str) -> None:
    user = uid("badafter")
    token = server.token(user)
    ids = publish(server, alert(user, 1), alert(user, 2))
    response = poll(server, "alerts", token, after=after)
    body = _body(response)
    assert body["recovered"] is False
    # What a new connection would get: the buffered events.
    assert [e["id"] for e in body["events"]] == ids


def test_malformed_after_on_snapshot_stream_returns_fresh_snapshot(server: ServerProcess) -> None:
    user = uid("badafter-o")
    publish(server, order(user, "o-1", symbol=sym()))
    body = _body(poll(server, "orders", server.token(user), after="not-an-id", wait=5))
    assert body["recovered"] is False
    assert body["events"][0]["data"]["snapshot"] is True


def test_poll_of_a_user_stream_needs_credentials(server: ServerProcess) -> None:
    response = poll(server, "alerts")
    assert response.status_code == 401
    assert response.json() == {
        "error": "Unauthorized",
        "message": "No valid session found",
        "statusCode": 401,
    }
    assert_error(poll(server, "no-such-stream", server.token(uid("x"))), 404)
