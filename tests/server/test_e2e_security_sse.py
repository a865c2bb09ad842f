"""End to end, security: nothing a client or publisher sends can add a field or an event to an
SSE response. Line breaks (LF, CR, CRLF) and colons injected into event types, resume ids
(`Last-Event-ID`, `?lastEventId=`, `after`), stream names, symbols, user ids and payload
strings are checked against the raw bytes of the response: every line must be one of the
fields the server writes, every `data:` line one JSON object, every event exactly one
`event:` and one `data:` line (plus `id:` and `retry:` together, or neither)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from support.e2e import (
    PREFIX,
    alert,
    assert_error,
    get,
    http,
    open_stream,
    poll,
    post_publish,
    publish,
    read_until_type,
    sym,
    uid,
)
from support.e2e_client import SSEClient
from support.servers import ServerProcess

EVIL = [
    "\n\nevent: evil\ndata: {}\n\n",
    "\r\nevent: evil\r\ndata: {}\r\n\r\n",
    "\revent: evil\rdata: {}\r\r",
    "x\nid: 1700000000000-evil\nretry: 1",
    ": not a comment\n: keepalive\n\n",
    "data: {}",
    "\u2028\u2029\x85\x00\x0b\x0c",
]
FIELD_LINE = re.compile(
    rb"^(?:event: [a-z]+(?::[a-z]+)?|data: \{.*\}|id: [0-9]{13}-[0-9A-Za-z]+|seq: [0-9]+|retry: [0-9]+|: keepalive)$"
)
LAYOUTS = (
    [b"event", b"data"],
    [b"event", b"data", b"id", b"retry"],
    [b"event", b"data", b"seq", b"id", b"retry"],
)


@pytest.fixture(scope="module")
def own_server() -> Iterator[ServerProcess]:
    """A server of its own: the odd symbols published here stay out of the shared price state."""
    proc = ServerProcess({"TICKWIRE_KEEPALIVE_S": "1", "TICKWIRE_THROTTLE_MS": "0"})
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


def clean_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The events of a raw SSE body (its complete part), failing on anything the server would
    not write itself."""
    assert b"\r" not in raw, raw[:2000]
    complete = raw[: raw.rfind(b"\n\n") + 2] if b"\n\n" in raw else b""
    events = []
    for block in complete.split(b"\n\n")[:-1]:
        lines = block.split(b"\n")
        for line in lines:
            assert FIELD_LINE.match(line), (line, block)
        fields = [line.partition(b":")[0] for line in lines if not line.startswith(b":")]
        if not fields:
            continue  # a keepalive
        assert fields in LAYOUTS, block
        data = orjson.loads(lines[1].removeprefix(b"data: "))
        assert isinstance(data, dict), block
        events.append((lines[0].removeprefix(b"event: ").decode(), data))
    return events


def _stream(server: ServerProcess, path: str, token: str | None = None, **kwargs: Any) -> SSEClient:
    return open_stream(server, path, token, **kwargs)


def test_payload_strings_stay_inside_their_data_line(own_server: ServerProcess) -> None:
    user = uid("inj")
    payload = {f"k{i}": text for i, text in enumerate(EVIL)}
    with _stream(own_server, "alerts", own_server.token(user)) as stream:
        publish(own_server, alert(user, "x", message=EVIL[0], nested={"list": EVIL}, **payload))
        got = read_until_type(stream, "alert:new", lambda d: d["alertId"] == "a-x").json()
        events = clean_events(stream.raw)
    assert [t for t, _ in events] == ["connected", "alert:new"]
    assert got["message"] == EVIL[0]
    assert got["nested"]["list"] == EVIL
    assert all(got[key] == value for key, value in payload.items())


@pytest.mark.parametrize(
    "event_type",
    ["alert:new\nevent: evil", "alert:new\r\nid: 1", "alert:new\r", "alert:new:evil", "alert: new", "evil"],
)
def test_injected_event_types_are_refused(own_server: ServerProcess, event_type: str) -> None:
    user = uid("type")
    item = {"type": event_type, "user": user, "data": {"alertId": "a-1", "level": "info", "message": "m"}}
    assert_error(post_publish(own_server, item), 400)
    assert_error(post_publish(own_server, [alert(user, 0), item]), 400)  # and nothing of the batch
    assert poll(own_server, "alerts", own_server.token(user)).json()["events"] == []


@pytest.mark.parametrize("evil", EVIL[:4])
def test_resume_ids_cannot_add_fields(own_server: ServerProcess, evil: str) -> None:
    user = uid("rid")
    token = own_server.token(user)
    publish(own_server, alert(user, 1))
    query = f"alerts?lastEventId={quote(evil)}"
    with _stream(own_server, query, token, initial=3) as stream:
        assert [e.event for e in stream.events[:2]] == ["connected", "stream:reset"]
        events = clean_events(stream.raw)
    assert [t for t, _ in events][:3] == ["connected", "stream:reset", "alert:new"]
    header = evil.replace("\r", "").replace("\n", "") + ": id: 1"  # a header cannot carry line breaks
    with _stream(own_server, "alerts", token, initial=3, headers={"Last-Event-ID": header}) as stream:
        assert [t for t, _ in clean_events(stream.raw)][:2] == ["connected", "stream:reset"]
    polled = poll(own_server, "alerts", token, after=evil)
    assert polled.status_code == 200
    assert polled.headers["content-type"].startswith("application/json")
    assert polled.json()["recovered"] is False


@pytest.mark.parametrize("evil", EVIL[:4])
def test_stream_names_and_symbols_cannot_add_fields(own_server: ServerProcess, evil: str) -> None:
    token = own_server.token(uid("names"))
    assert_error(get(own_server, f"{PREFIX}/{quote(evil)}", token), 404)
    assert_error(get(own_server, f"{PREFIX}/strategies/{quote(evil, safe='')}", token), 404)
    assert_error(get(own_server, f"{PREFIX}/me", token, params={"streams": f"orders,{evil}"}), 404)
    response = get(own_server, f"{PREFIX}/prices", params={"symbols": f"AAPL,{evil}"})
    assert_error(response, 400)
    response = get(own_server, f"{PREFIX}/trading", token, params={"userId": evil})
    assert response.status_code in (400, 403), response.text


def test_published_symbols_stay_inside_json(own_server: ServerProcess) -> None:
    odd_symbol = f"{sym()}\nevent: evil\r\n"
    with _stream(own_server, "prices", initial=2) as prices:
        publish(own_server, {"type": "price:update", "data": {"symbol": odd_symbol, "price": 1.5}})
        read_until_type(prices, "price:update", lambda d: d.get("symbol") == odd_symbol)
        assert "evil" not in [t for t, _ in clean_events(prices.raw)]
    with _stream(own_server, "prices", initial=2) as fresh:  # now in the snapshot
        snapshot = fresh.events[1].json()
        assert odd_symbol in [p["symbol"] for p in snapshot["prices"]]
        assert [t for t, _ in clean_events(fresh.raw)] == ["connected", "price:update"]


def test_strategy_updates_with_odd_ids_stay_inside_json(own_server: ServerProcess) -> None:
    user = uid("strat")
    token = own_server.token(user)
    odd = "s\nevent: evil\r\nid: 1"
    with (
        _stream(own_server, "ai-decisions", token) as decisions,
        _stream(own_server, "orders", token, initial=2) as orders,
    ):
        publish(
            own_server,
            {"type": "strategy:update", "user": user, "data": {"strategyId": odd, "status": "running"}},
            {"type": "ai:decision", "user": user, "data": {"decision": EVIL[1], "symbol": EVIL[2]}},
            {
                "type": "order:update",
                "user": user,
                "data": {"orderId": EVIL[0], "symbol": EVIL[2], "side": "buy", "qty": 1, "status": "new"},
            },
        )
        read_until_type(decisions, "ai:decision", lambda d: d.get("decision") == EVIL[1])
        read_until_type(orders, "order:update", lambda d: d.get("orderId") == EVIL[0])
        assert "evil" not in [t for t, _ in clean_events(decisions.raw) + clean_events(orders.raw)]


def test_user_ids_and_test_messages_stay_inside_json(own_server: ServerProcess) -> None:
    odd_user = "u\r\nevent: evil\n\ndata: {}"
    refused = http.get(
        own_server.url + f"{PREFIX}/orders", headers={"Authorization": f"Bearer {own_server.token(odd_user)}"}
    )
    assert refused.status_code == 401  # a user id is never more than A-Z a-z 0-9 . _ @ : -
    user = uid("plain")
    with _stream(own_server, "orders", own_server.token(user), initial=2) as mine:
        connected = mine.events[0].json()
        assert connected["clientId"].startswith(user)
        message = EVIL[0] + EVIL[1]
        admin = own_server.token(uid("root"), "admin")
        response = http.post(
            own_server.url + f"{PREFIX}/test",
            json={"message": message},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert response.status_code == 200, response.text
        event = mine.wait_for("test")
        assert event is not None
        assert event.json()["message"] == message
        types = [t for t, _ in clean_events(mine.raw)]
    assert "evil" not in types
    assert types[0] == "connected"
    assert "test" in types
