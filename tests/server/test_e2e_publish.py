"""End to end: POST /api/publish (SPEC section 9), redaction (section 5) and the admin
test broadcast."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from support.e2e import (
    ID_RE,
    alert,
    assert_error,
    http,
    open_stream,
    order,
    poll,
    post_publish,
    price,
    publish,
    raw_http,
    read_until_type,
    sym,
    uid,
)
from support.servers import ServerProcess


def test_publish_answers_one_id_per_event_in_order(server: ServerProcess) -> None:
    user = uid("ids")
    response = post_publish(server, [alert(user, 1), price(sym(), 1.0), order(user, "o-1", symbol=sym())])
    assert response.status_code == 200
    ids = response.json()["ids"]
    assert len(ids) == 3
    assert all(ID_RE.match(i) for i in ids)
    assert len(set(ids)) == 3
    single = post_publish(server, alert(user, 2))
    assert single.status_code == 200
    assert len(single.json()["ids"]) == 1
    body = poll(server, "alerts", server.token(user)).json()
    assert [e["id"] for e in body["events"]] == [ids[0], single.json()["ids"][0]]


def test_ids_are_unique_across_users_in_full_batches(server: ServerProcess) -> None:
    """SPEC 1: two users' events stamped in the same millisecond never share an id."""
    prefix = uid("uniq")
    ids: list[str] = []
    for batch in range(10):  # 10,000 events across 1,000 users, 1,000 per request (the bound)
        body = [{"type": "ai:decision", "user": f"{prefix}-{u}", "data": {"n": batch}} for u in range(1000)]
        response = post_publish(server, body)
        assert response.status_code == 200
        ids += response.json()["ids"]
    assert len(ids) == 10_000 and len(set(ids)) == 10_000
    polled = {
        poll(server, "ai-decisions", server.token(f"{prefix}-{u}")).json()["events"][0]["id"] for u in (0, 1)
    }
    assert len(polled) == 2


def test_secrets_are_redacted_at_any_depth(server: ServerProcess) -> None:
    user = uid("redact")
    token = server.token(user)
    data = {
        "alertId": "a-secret",
        "message": "keys rotated",
        "level": "warning",
        "apiKey": "AKIA-123",
        "API_KEY": "k2",
        "nested": {"auth_token": "tok", "keep": "visible", "deeper": {"PrivateKey": "pk", "count": 3}},
        "client-secret": "shh",
        "accounts": [
            {"password": "hunter2", "name": "main"},
            {"name": "alt", "Passwd": "p"},
            [{"refreshToken": "r"}],
        ],
        "authorization": "Bearer abc",
        "credentials": {"user": "u", "pass": "p"},
        "tokenizer": "not a secret",
        "tokens_count": 5,
        "secretary": "Jane",
    }
    with open_stream(server, "alerts", token) as stream:
        post = post_publish(server, {"type": "alert:new", "user": user, "data": data})
        assert post.status_code == 200, post.text
        delivered = read_until_type(stream, "alert:new", lambda d: d.get("alertId") == "a-secret").json()
    polled = poll(server, "alerts", token).json()["events"][0]["data"]
    for got in (delivered, polled):
        assert got["apiKey"] == "[REDACTED]"
        assert got["API_KEY"] == "[REDACTED]"
        assert got["nested"]["auth_token"] == "[REDACTED]"
        assert got["nested"]["keep"] == "visible"
        assert got["nested"]["deeper"] == {"PrivateKey": "[REDACTED]", "count": 3}
        assert got["client-secret"] == "[REDACTED]"
        assert got["accounts"][0] == {"password": "[REDACTED]", "name": "main"}
        assert got["accounts"][1] == {"name": "alt", "Passwd": "[REDACTED]"}
        assert got["accounts"][2] == [{"refreshToken": "[REDACTED]"}]
        assert got["authorization"] == "[REDACTED]"
        assert got["credentials"] == "[REDACTED]"
        assert (got["tokenizer"], got["tokens_count"], got["secretary"]) == ("not a secret", 5, "Jane")
        assert (got["message"], got["level"], got["alertId"]) == ("keys rotated", "warning", "a-secret")
    assert b"AKIA-123" not in stream.raw
    assert b"hunter2" not in stream.raw


def _bad_bodies(user: str) -> dict[str, bytes]:
    good = alert(user, "ok")
    return dict(
        [
            ("invalid-json", b'{"type": "alert:new", '),
            ("empty", b""),
            ("number", b"42"),
            ("string", b'"alert:new"'),
            ("null", b"null"),
            ("empty-batch", b"[]"),
            ("unknown-type", orjson.dumps({"type": "order:teleport", "user": user, "data": {}})),
            ("missing-type", orjson.dumps({"user": user, "data": {"message": "x"}})),
            ("missing-user", orjson.dumps({"type": "alert:new", "data": {"message": "x"}})),
            ("bad-user", orjson.dumps({"type": "alert:new", "user": "a b/c", "data": {"message": "x"}})),
            (
                "user-on-public",
                orjson.dumps({"type": "price:update", "user": user, "data": {"symbol": "A", "price": 1}}),
            ),
            (
                "non-numeric-price",
                orjson.dumps({"type": "price:update", "data": {"symbol": "A", "price": "abc"}}),
            ),
            ("data-not-object", orjson.dumps({"type": "alert:new", "user": user, "data": [1, 2]})),
            (
                "missing-order-id",
                orjson.dumps({"type": "order:update", "user": user, "data": {"symbol": "A"}}),
            ),
            ("unknown-field", orjson.dumps({**good, "extra": 1})),
            ("bad-level", orjson.dumps(alert(user, "x", level="panic"))),
        ]
    )


@pytest.mark.parametrize("name", list(_bad_bodies("u")))
def test_invalid_input_is_400_and_nothing_is_published(server: ServerProcess, name: str) -> None:
    user = uid("bad")
    raw = _bad_bodies(user)[name]
    response = post_publish(server, None, raw=raw)
    body = assert_error(response, 400)
    assert len(body["message"]) > 5, name
    assert poll(server, "alerts", server.token(user)).json()["events"] == [], name


def test_batch_with_an_invalid_third_item_publishes_nothing(server: ServerProcess) -> None:
    user = uid("batch")
    token = server.token(user)
    a, b = sym(), sym()
    with (
        open_stream(server, "alerts", token) as alerts,
        open_stream(server, "orders", token, initial=2) as orders,
        open_stream(server, f"prices?symbols={a}", initial=2) as prices,
    ):
        batch = [
            alert(user, 1),
            price(a, 10.0),
            {"type": "price:update", "data": {"symbol": b, "price": "NaN-ish"}},
            order(user, "o-1", symbol=a),
        ]
        response = post_publish(server, batch)
        body = assert_error(response, 400)
        assert "item" in body["message"].lower(), body
        assert re.search(r"\b[23]\b", body["message"]), body  # names the third item (0- or 1-based)
        # Nothing of the batch was delivered: the next events are the sentinels.
        sentinels = publish(server, alert(user, "end"), order(user, "end", symbol=a), price(a, 11.0))
        read_until_type(alerts, "alert:new", lambda d: d.get("alertId") == "a-end")
        read_until_type(orders, "order:update", lambda d: d.get("orderId") == "end")
        read_until_type(prices, "price:update", lambda d: d.get("price") == 11.0)
        assert [e.id for e in alerts.events[1:]] == [sentinels[0]]
        assert [e.id for e in orders.events[2:]] == [sentinels[1]]
        assert [e.json()["price"] for e in prices.events[2:]] == [11.0]
    # ...nor replayable, nor in state.
    polled = poll(server, "alerts", token).json()
    assert [e["id"] for e in polled["events"]] == [sentinels[0]]
    snapshot = poll(server, "orders", token).json()["events"][0]["data"]
    assert [o["orderId"] for o in snapshot["orders"]] == ["end"]
    prices_snapshot = poll(server, "prices", symbols=f"{a},{b}").json()["events"][0]["data"]["prices"]
    assert [(p["symbol"], p["price"]) for p in prices_snapshot] == [(a, 11.0)]


def test_publish_needs_publisher_or_admin(server: ServerProcess) -> None:
    user = uid("pubauth")
    item = alert(user, 1)
    response = post_publish(server, item, token=None)
    assert_error(response, 401)
    assert_error(post_publish(server, item, token="garbage"), 401)
    assert_error(post_publish(server, item, token=server.token(user)), 403)
    assert post_publish(server, item, token=server.token(uid("p"), "publisher")).status_code == 200
    assert post_publish(server, item, token=server.token(uid("a"), "admin")).status_code == 200
    # The refused ones published nothing.
    assert len(poll(server, "alerts", server.token(user)).json()["events"]) == 2


@pytest.fixture(scope="module")
def small_body_server() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_MAX_BODY": "2048"})
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


def _big_batch(user: str) -> bytes:
    body = orjson.dumps([alert(user, i, note="x" * 200) for i in range(16)])
    assert 3500 < len(body) < 8192
    return body


def test_body_over_max_body_is_413(small_body_server: ServerProcess) -> None:
    proc = small_body_server
    user = uid("big")
    response = post_publish(proc, None, raw=_big_batch(user))
    assert_error(response, 413)
    assert poll(proc, "alerts", proc.token(user)).json()["events"] == []
    # A body under the limit is fine.
    assert post_publish(proc, alert(user, "small")).status_code == 200


def test_chunked_body_over_max_body_is_413(small_body_server: ServerProcess) -> None:
    proc = small_body_server
    user = uid("chunked")
    body = _big_batch(user)
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 512]), body[i : i + 512]) for i in range(0, len(body), 512)
    )
    token = proc.token("test-publisher", "publisher")
    request = (
        b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer "
        + token.encode()
        + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    status, headers, raw = raw_http(proc, request)
    assert status == 413, raw
    assert headers.get("x-correlation-id")
    body = orjson.loads(raw)
    assert body == {"error": "Payload Too Large", "message": body.get("message"), "statusCode": 413}
    assert body["message"]
    assert poll(proc, "alerts", proc.token(user)).json()["events"] == []
    assert http.get(proc.url + "/healthz", timeout=5).status_code == 200


def test_test_broadcast_needs_admin_and_reaches_every_client(server: ServerProcess) -> None:
    user = uid("tb")
    url = server.url + "/api/stream/test"
    assert_error(http.post(url, timeout=10), 401)
    assert_error(http.post(url, headers={"Authorization": f"Bearer {server.token(user, 'publisher')}"}), 403)
    assert_error(http.post(url, headers={"Authorization": f"Bearer {server.token(user)}"}), 403)
    message = "hello-" + uid("m")
    with (
        open_stream(server, "prices", initial=2) as anon,
        open_stream(server, "agents") as agents,
        open_stream(server, "alerts", server.token(user)) as mine,
    ):
        response = http.post(
            url,
            json={"message": message},
            headers={"Authorization": f"Bearer {server.token(uid('root'), 'admin')}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        for stream in (anon, agents, mine):
            event = stream.wait_for("test")
            assert event is not None, stream.events
            assert event.id is None
            assert event.retry is None
            data: dict[str, Any] = event.json()
            assert data["message"] == message
            assert isinstance(data["timestamp"], str)
    # `test` events are not kept.
    assert poll(server, "alerts", server.token(user)).json()["events"] == []
