"""`tickwire serve --replay` speaks the server's wire: its SSE frames, poll bodies and
WebSocket messages are the bytes the server's own codecs make for the same events (recorded
ids served unchanged), and what it refuses it refuses in the server's error shapes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from support.servers import ServerProcess
from tickwire.client import replay as replay_server
from tickwire.config import Settings
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.wire.codecs import JSON_CODEC, MSGPACK_CODEC
from tickwire.wire.sse import SSECodec, SSEParser

EPOCH = 7
ORDERS = [
    Event(
        "order:update",
        {"orderId": f"o{n}", "symbol": "AAPL", "status": "new"},
        "user:u1",
        Position(EPOCH, n, n),
        1_700_000_000_000 + n,
    )
    for n in (1, 2, 3)
]
URGENT = Event(
    "alert:new",
    {"alertId": "a1", "level": "error", "message": "m1", "urgent": True},
    "user:u1",
    Position(EPOCH, 4, 4),
    1_700_000_000_004,
)
OPAQUE = {
    "stream": "alerts",
    "event": "alert:new",
    "id": "recorded-a2",
    "data": {"alertId": "a2", "message": "m2"},
}
PRICES = [
    {"stream": "prices", "event": "price:update", "id": f"tick-{s}", "data": {"symbol": s, "price": 1.0}}
    for s in ("AAPL", "MSFT")
]
SSE = SSECodec(5000)


def _line(stream: str, event: Event) -> dict[str, Any]:
    return {"stream": stream, "event": event.type, "id": event.id, "data": event.data}


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path: Path = tmp_path_factory.mktemp("replay") / "recording.jsonl"
    lines = [*(_line("orders", e) for e in ORDERS), _line("alerts", URGENT), OPAQUE, *PRICES]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    proc = ServerProcess(args=("--replay", str(path))).start()
    yield proc
    proc.stop()


def read_sse(url: str, until: bytes, headers: dict[str, str] | None = None) -> tuple[httpx.Response, bytes]:
    """The body of an SSE response, read until it ends with `until`."""
    body = b""
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        for chunk in response.iter_bytes():
            body += chunk
            if body.endswith(until):
                return response, body
    raise AssertionError(f"the stream ended early: {body!r}")


def test_sse_frames_are_the_servers_frames(replay: ServerProcess) -> None:
    expected = b"".join(SSE.event_frame(e, "orders") for e in ORDERS)
    response, body = read_sse(f"{replay.url}/api/stream/orders", expected)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    connected, rest = body.split(b"\n\n", 1)
    event = next(iter(SSEParser().feed(connected + b"\n\n")))
    assert event.event == "connected" and event.id is None
    assert event.json()["stream"] == "orders" and event.json()["clientId"].startswith("replay-orders-")
    assert rest == expected

    # A resume gets what follows; an id the recording does not hold gets a reset and everything.
    tail = b"".join(SSE.event_frame(e, "orders") for e in ORDERS[1:])
    _, body = read_sse(f"{replay.url}/api/stream/orders", tail, {"Last-Event-ID": str(ORDERS[0].id)})
    assert body.split(b"\n\n", 1)[1] == tail
    _, body = read_sse(f"{replay.url}/api/stream/orders?lastEventId=nope", expected)
    events = list(SSEParser().feed(body))
    assert [e.event for e in events[:2]] == ["connected", "stream:reset"]
    assert events[1].json()["reason"] == "unknown_position" and events[1].id is None


def test_sse_serves_recorded_ids_unchanged_and_filters_symbols(replay: ServerProcess) -> None:
    opaque = SSE.frame("alert:new", orjson.dumps(OPAQUE["data"]), "recorded-a2")
    _, body = read_sse(f"{replay.url}/api/stream/alerts", opaque)
    assert body.endswith(SSE.event_frame(URGENT, "alerts") + opaque)
    assert b"id: recorded-a2\nretry: 5000\n\n" in body

    msft = SSE.frame("price:update", orjson.dumps(PRICES[1]["data"]), "tick-MSFT")
    _, body = read_sse(f"{replay.url}/api/stream/prices?symbols=MSFT", msft)
    assert b"AAPL" not in body


def test_poll_bodies_and_refusals(replay: ServerProcess) -> None:
    url = f"{replay.url}/api/stream/orders/events"
    body = httpx.get(url, params={"after": ORDERS[0].id, "limit": "1"}).json()
    assert body == {
        "events": [{"event": "order:update", "id": ORDERS[1].id, "data": ORDERS[1].data}],
        "lastEventId": ORDERS[1].id,
        "recovered": True,
    }
    body = httpx.get(url, params={"after": ORDERS[2].id}).json()
    assert body == {"events": [], "lastEventId": ORDERS[2].id, "recovered": True}
    body = httpx.get(url, params={"after": "nope"}).json()
    assert body["recovered"] is False and body["reason"] == "unknown_position"
    assert body["lastEventId"] == ORDERS[2].id and len(body["events"]) == 3

    for params in ({"limit": "0"}, {"limit": "x"}, {"limit": "1001"}, {"wait": "31"}, {"wait": "-1"}):
        response = httpx.get(url, params=params)
        assert response.status_code == 400, params
        refused = response.json()
        assert refused["error"] == "Bad Request" and refused["statusCode"] == 400
        assert next(iter(params)) in refused["message"]


def test_poll_bounds_are_those_of_a_node_with_default_settings() -> None:
    """The fixture answers `limit` and `wait` as a node configured by default does."""
    defaults = Settings.model_validate({})
    bounds = (replay_server.POLL_DEFAULT_LIMIT, replay_server.POLL_MAX_LIMIT, replay_server.POLL_MAX_WAIT_S)
    assert bounds == (defaults.poll_default_limit, defaults.poll_max_limit, defaults.poll_max_wait_s)


def ws_connect(replay: ServerProcess, subprotocol: str = "tickwire.json") -> ClientConnection:
    return connect(
        f"ws://127.0.0.1:{replay.port}/api/stream/ws", subprotocols=[Subprotocol(subprotocol)], open_timeout=5
    )


def test_ws_messages_are_the_servers_frames(replay: ServerProcess) -> None:
    with ws_connect(replay) as ws:
        ws.send(
            orjson.dumps(
                {"type": "subscribe", "streams": [{"stream": "orders"}, {"stream": "alerts"}]}
            ).decode()
        )
        frames = [ws.recv(timeout=5) for _ in range(6)]
        assert [f.encode() if isinstance(f, str) else f for f in frames[:4]] == [
            *(JSON_CODEC.event_frame(e, "orders") for e in ORDERS),
            JSON_CODEC.event_frame(URGENT, "alerts"),  # `urgent` in the envelope, as the server says it
        ]
        assert orjson.loads(frames[4]) == {
            "type": "event",
            "stream": "alerts",
            "event": "alert:new",
            "id": "recorded-a2",
            "data": OPAQUE["data"],
        }
        assert orjson.loads(frames[5]) == {  # no `rid` asked, none echoed
            "type": "subscribed",
            "v": 1,
            "streams": [{"stream": "orders", "recovered": True}, {"stream": "alerts", "recovered": True}],
        }
        ws.send(
            orjson.dumps(
                {"type": "subscribe", "rid": 2, "streams": [{"stream": "orders", "lastEventId": "nope"}]}
            ).decode()
        )
        reset = orjson.loads(ws.recv(timeout=5))
        assert reset["event"] == "stream:reset" and reset["stream"] == "orders"
        assert reset["data"]["reason"] == "unknown_position" and "id" not in reset
        for _ in ORDERS:
            ws.recv(timeout=5)
        assert orjson.loads(ws.recv(timeout=5))["streams"] == [{"stream": "orders", "recovered": False}]


def test_ws_msgpack_frames_are_the_servers_frames(replay: ServerProcess) -> None:
    with ws_connect(replay, "tickwire.msgpack") as ws:
        assert ws.subprotocol == "tickwire.msgpack"
        ws.send(MSGPACK_CODEC.encode({"type": "subscribe", "rid": "1", "streams": [{"stream": "alerts"}]}))
        assert ws.recv(timeout=5) == MSGPACK_CODEC.event_frame(URGENT, "alerts")


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        ("not json", {"type": "error", "code": "bad_request"}),
        (b"{}", {"type": "error", "code": "bad_request", "message": "tickwire.json takes text frames"}),
        ("[]", {"type": "error", "code": "bad_request"}),
        ('{"type":"nope","rid":"9"}', {"type": "error", "rid": "9", "code": "unknown_type"}),
        (
            '{"type":"subscribe","rid":1,"streams":[{"stream":"orders","lastEventID":"x"}]}',
            {"type": "error", "rid": 1, "code": "bad_request"},
        ),
        ('{"type":"ping","rid":"p","ts":5}', {"type": "pong", "ts": 5, "rid": "p"}),
        ('{"type":"auth","token":"t"}', {"type": "authenticated", "userId": "replay"}),
        ('{"type":"unsubscribe","streams":["/orders/"]}', {"type": "unsubscribed", "streams": ["orders"]}),
    ],
)
def test_ws_commands_are_answered_as_the_server_does(
    replay: ServerProcess, sent: str | bytes, answer: dict[str, Any]
) -> None:
    with ws_connect(replay) as ws:
        ws.send(sent)
        got = orjson.loads(ws.recv(timeout=5))
        assert {k: got.get(k) for k in answer} == answer
        if got["type"] == "error":
            assert got["message"]


def test_ws_refuses_an_unknown_subprotocol(replay: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(replay, "chat")
    assert refused.value.response.status_code == 400
    assert orjson.loads(refused.value.response.body or b"{}")["statusCode"] == 400
