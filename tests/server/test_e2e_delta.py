"""End to end: delta prices (SPEC 6) over SSE (`?delta=1`) and WebSocket (`"delta":true`,
tickwire.json and tickwire.msgpack), against a real server."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from support.e2e import get, open_stream, price, publish, read_until_match, sym
from support.servers import ServerProcess


def last_price(stream: Any, value: float) -> dict[str, Any]:
    event = read_until_match(
        stream, lambda e: e.event == "price:update" and orjson.loads(e.data).get("price") == value
    )
    data: dict[str, Any] = orjson.loads(event.data)
    return {**data, "id": event.id}


def test_sse_delta_sends_the_changed_fields_after_a_full_tick(server: ServerProcess) -> None:
    symbol = sym()
    delta = open_stream(server, f"prices?symbols={symbol}&delta=1", initial=2)
    full = open_stream(server, f"prices?symbols={symbol}", initial=2)
    publish(server, price(symbol, 100))
    first = last_price(delta, 100)
    assert "delta" not in first and first["bid"] == pytest.approx(99.99)
    update = price(symbol, 101)
    update["data"]["bid"] = first["bid"]  # only price, ask and the timestamp change
    publish(server, update)
    second = last_price(delta, 101)
    assert second["delta"] is True
    assert set(second) == {"symbol", "price", "ask", "timestamp", "delta", "id"}
    assert second["symbol"] == symbol
    plain = last_price(full, 101)
    assert plain["id"] == second["id"] and "delta" not in plain and plain["bid"] == first["bid"]
    delta.close()
    full.close()


def test_sse_delta_on_a_stream_without_ticks_is_a_400(server: ServerProcess) -> None:
    response = get(server, "/api/stream/agents?delta=1")
    assert response.status_code == 400
    assert response.json()["message"] == "`delta` does not apply to the agents stream"
    response = get(server, "/api/stream/prices?delta=maybe")
    assert response.status_code == 400
    assert "`delta` must be 1 or 0" in response.json()["message"]


class WS:
    def __init__(self, server: ServerProcess, subprotocol: str, query: str = "") -> None:
        self.binary = subprotocol == "tickwire.msgpack"
        self.ws: ClientConnection = connect(
            f"ws://127.0.0.1:{server.port}/api/stream/ws{query}",
            subprotocols=[Subprotocol(subprotocol)],
            proxy=None,
            ping_interval=None,
            open_timeout=5,
        ).__enter__()

    def send(self, obj: Any) -> None:
        self.ws.send(msgpack.packb(obj) if self.binary else orjson.dumps(obj).decode())

    def recv(self) -> dict[str, Any]:
        raw = self.ws.recv(timeout=5)
        message: dict[str, Any] = msgpack.unpackb(raw) if self.binary else orjson.loads(raw)
        return message

    def price(self, value: float) -> dict[str, Any]:
        while True:
            message = self.recv()
            if message.get("event") == "price:update" and message["data"].get("price") == value:
                return message


@pytest.mark.parametrize("subprotocol", ["tickwire.json", "tickwire.msgpack"])
def test_websocket_delta_in_both_codecs(server: ServerProcess, subprotocol: str) -> None:
    symbol = sym()
    client = WS(server, subprotocol)
    client.send(
        {
            "type": "subscribe",
            "rid": "1",
            "streams": [{"stream": "prices", "symbols": [symbol], "delta": True}],
        }
    )
    while (reply := client.recv())["type"] != "subscribed":
        pass
    assert reply["streams"] == [{"stream": "prices", "recovered": True}]
    publish(server, price(symbol, 50))
    first = client.price(50)
    assert "delta" not in first["data"]
    update = price(symbol, 51)
    update["data"]["bid"] = first["data"]["bid"]
    update["data"]["ask"] = first["data"]["ask"]
    ids = publish(server, update)
    second = client.price(51)
    assert second["id"] == ids[0] and second["stream"] == "prices"
    assert second["data"] == {
        "symbol": symbol,
        "price": 51,
        "timestamp": second["data"]["timestamp"],
        "delta": True,
    }
    client.ws.close()


def test_websocket_delta_on_a_user_stream_is_refused(server: ServerProcess) -> None:
    client = WS(server, "tickwire.json")
    client.send({"type": "subscribe", "rid": 7, "streams": [{"stream": "agents", "delta": True}]})
    reply = client.recv()
    assert reply == {
        "type": "error",
        "rid": 7,
        "code": "bad_request",
        "message": "`delta` does not apply to the agents stream",
        "stream": "agents",
    }
    client.ws.close()


# -- the per-connection tick cap ---------------------------------------------------------------


@pytest.fixture(scope="module")
def capped_server() -> Any:
    proc = ServerProcess({"TICKWIRE_THROTTLE_MS": "0", "TICKWIRE_CLIENT_MAX_EVENTS_S": "2"}).start()
    yield proc
    proc.stop()


def test_ticks_beyond_the_client_cap_are_conflated_and_log_events_pass(capped_server: ServerProcess) -> None:
    symbol = sym()
    client = WS(capped_server, "tickwire.json")
    client.send(
        {
            "type": "subscribe",
            "streams": [{"stream": "prices", "symbols": [symbol], "delta": True}, {"stream": "agents"}],
        }
    )
    while client.recv()["type"] != "subscribed":
        pass
    agent = {"type": "agent:status", "data": {"agentId": "cap-test", "status": "running"}}
    publish(capped_server, *[price(symbol, n) for n in range(1, 11)], agent)
    seen: list[tuple[str, Any]] = []
    while not seen or seen[-1] != ("price:update", 10):
        try:
            message = client.recv()
        except TimeoutError:
            raise AssertionError(seen) from None
        if message.get("event") == "price:update" and not message["data"].get("initializing"):
            seen.append(("price:update", message["data"]["price"]))
        elif message.get("event") == "agent:status":
            seen.append(("agent:status", message["data"]["agentId"]))
    # Two ticks fit the cap's burst; the agent's log event is not held back behind the eight
    # others, which wait as one (the latest) and go when the cap allows, sent in full.
    assert seen == [
        ("price:update", 1),
        ("price:update", 2),
        ("agent:status", "cap-test"),
        ("price:update", 10),
    ]
    body = get(capped_server, "/api/stream/metrics").json()
    assert body["dropped"]["clientCap"] >= 7
    client.ws.close()


def test_a_websocket_subscribed_at_connect_gets_deltas_too(server: ServerProcess) -> None:
    symbol = sym()
    client = WS(server, "tickwire.json", query=f"?streams=prices,agents&symbols={symbol}&delta=1")
    while client.recv()["type"] != "subscribed":
        pass
    publish(server, price(symbol, 10))
    assert "delta" not in client.price(10)["data"]
    publish(server, price(symbol, 11))
    assert client.price(11)["data"]["delta"] is True
    client.ws.close()
