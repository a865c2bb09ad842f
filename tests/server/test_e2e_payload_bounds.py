"""End to end: what a published payload may be (depth, types), and the fields an operator
strips from everything delivered (TICKWIRE_STRIP_FIELDS)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from support.e2e import (
    alert,
    assert_error,
    open_stream,
    order,
    poll,
    post_publish,
    publish,
    read_until_type,
    uid,
)
from support.servers import ServerProcess


def _deep_json(body: dict[str, Any], depth: int) -> bytes:
    """The body with data.extra nested `depth` levels (orjson will not write that deep)."""
    deep = '{"n":' * (depth - 1) + '{"leaf":1}' + "}" * (depth - 1)
    return orjson.dumps(body).replace(b'"extra":"X"', b'"extra":' + deep.encode())


@pytest.mark.parametrize("depth", [253, 300])
def test_deep_payloads_are_refused_and_nothing_is_kept(server: ServerProcess, depth: int) -> None:
    user = uid("deep")
    body = order(user, "o1", extra="X")
    response = post_publish(server, None, raw=_deep_json(body, depth))
    message = assert_error(response, 400)["message"]
    assert message.startswith("data.extra.n.n") and message.endswith("is nested deeper than 32 levels")
    assert len(message) < 120
    with open_stream(server, "orders", server.token(user), initial=2) as snap:
        assert snap.events[1].json()["orders"] == []  # the snapshot is served, without it


def test_a_batch_with_one_badly_typed_field_is_refused_whole(server: ServerProcess) -> None:
    user = uid("typed")
    bad = {"type": "price:update", "data": {"symbol": ["A", "B"], "price": 1.0}}
    response = post_publish(server, [alert(user, 1), bad, alert(user, 2)])
    body = assert_error(response, 400)
    assert body["message"].startswith("item 1: ") and "symbol" in body["message"]
    assert poll(server, "alerts", server.token(user)).json()["events"] == []


@pytest.fixture
def stripping() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_STRIP_FIELDS": "internalId,_route", "TICKWIRE_THROTTLE_MS": "0"}).start()
    yield proc
    proc.stop()


def test_stripped_fields_are_absent_from_live_snapshot_replay_and_poll(stripping: ServerProcess) -> None:
    server = stripping
    user = uid("strip")
    token = server.token(user)
    hidden = {"internalId": "db-77", "nested": [{"_route": "r1", "keep": 1}]}
    (first,) = publish(server, order(user, "o1", **hidden))
    with open_stream(server, "orders", token, initial=2) as live:
        snapshot = live.events[1].json()["orders"][0]
        publish(server, order(user, "o2", **hidden))
        update = read_until_type(live, "order:update", lambda d: d.get("orderId") == "o2").json()
    replay = poll(server, "orders", token, after=first).json()["events"]
    fresh = poll(server, "orders", token).json()["events"]
    for payload in (snapshot, update, replay[0]["data"], fresh[0]["data"]["orders"][1]):
        text = orjson.dumps(payload).decode()
        assert "internalId" not in text and "_route" not in text and "db-77" not in text, text
        assert payload["nested"] == [{"keep": 1}]
