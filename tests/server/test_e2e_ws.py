"""End to end: the WebSocket transport of SPEC section 6 over real sockets, with the
`websockets` client library (and its sans-I/O client where a test must misbehave: never
answer pings, stop reading)."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgpack
import orjson
import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

from support.drivers import server_per_driver  # noqa: F401 (the `server` fixture, per driver)
from support.e2e import alert, open_stream, order, price, sym, uid
from support.servers import ServerProcess
from tickwire.core.ids import EPOCH_MAX, Position, format_id, parse_id

WS_PATH = "/api/stream/ws"


class WSClient:
    """A blocking WebSocket client speaking tickwire.json or tickwire.msgpack."""

    def __init__(
        self,
        server: ServerProcess,
        token: str | None = None,
        *,
        subprotocol: str | None = "tickwire.json",
        headers: dict[str, str] | None = None,
        origin: str | None = None,
        sock: socket.socket | None = None,
        query: str = "",
        compression: str | None = "deflate",
    ) -> None:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        self.ws: ClientConnection = connect(
            f"ws://127.0.0.1:{server.port}{WS_PATH}{query}",
            additional_headers=all_headers,
            subprotocols=[Subprotocol(subprotocol)] if subprotocol else None,
            origin=Origin(origin) if origin else None,
            sock=sock,
            proxy=None,
            ping_interval=None,
            open_timeout=5,
            close_timeout=2,
            max_size=1 << 22,
            compression=compression,
        ).__enter__()  # the context-manager form (a bare connect() is deprecated)
        self.binary = subprotocol == "tickwire.msgpack"
        self.messages: list[dict[str, Any]] = []
        self.pings = 0

    def send(self, obj: Any) -> None:
        self.ws.send(msgpack.packb(obj) if self.binary else orjson.dumps(obj).decode())

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = self.ws.recv(timeout=timeout)
        assert isinstance(raw, bytes) == self.binary, raw[:100]
        message: dict[str, Any] = msgpack.unpackb(raw) if self.binary else orjson.loads(raw)
        self.messages.append(message)
        return message

    def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for message in self.messages:
            if predicate(message):
                return message
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = self.recv(max(0.01, remaining))
            except (TimeoutError, ConnectionClosed) as exc:
                seen = [
                    (m.get("type"), m.get("stream"), m.get("event"), m.get("code")) for m in self.messages
                ]
                raise AssertionError(f"no matching message ({exc!r}); got {seen}") from None
            if predicate(message):
                return message

    def subscribe(self, *streams: dict[str, Any] | str, rid: str = "s") -> dict[str, Any]:
        items = [{"stream": s} if isinstance(s, str) else s for s in streams]
        self.send({"type": "subscribe", "rid": rid, "streams": items})
        return self.until(lambda m: m["type"] == "subscribed" and m.get("rid") == rid)

    def error(self, rid: str | int | None = None, timeout: float = 5.0) -> dict[str, Any]:
        return self.until(lambda m: m["type"] == "error" and m.get("rid") == rid, timeout)

    def events(self, stream: str | None = None, type_: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if m["type"] == "event" and stream in (None, m.get("stream")) and type_ in (None, m["event"])
        ]

    def event(
        self,
        stream: str,
        type_: str,
        check: Callable[[dict[str, Any]], bool] = lambda d: True,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        return self.until(
            lambda m: (
                m["type"] == "event"
                and m.get("stream") == stream
                and m["event"] == type_
                and check(m["data"])
            ),
            timeout,
        )

    def ping(self, ts: Any = 1) -> None:
        """A ping command; returns once its pong (so everything queued before it) has arrived."""
        self.pings += 1
        rid = f"p{self.pings}"
        self.send({"type": "ping", "ts": ts, "rid": rid})
        assert self.until(lambda m: m["type"] == "pong" and m.get("rid") == rid)["ts"] == ts

    def closed_with(self, timeout: float = 5.0) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.recv(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd is not None else None
        raise AssertionError(f"still open; got {[(m['type'], m.get('event')) for m in self.messages]}")

    def drop(self) -> None:
        """Lose the connection without a close handshake (a network drop)."""
        self.ws.socket.shutdown(socket.SHUT_RDWR)
        self.ws.close()

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> WSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RawWS:
    """A WebSocket client that does only what it is told: it answers no pings and reads only
    when asked (the sans-I/O protocol of `websockets` over a plain socket)."""

    def __init__(self, server: ServerProcess, token: str | None = None, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", server.port))
        self.proto = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{server.port}{WS_PATH}"), subprotocols=[Subprotocol("tickwire.json")]
        )
        request = self.proto.connect()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        self.proto.send_request(request)
        self.sock.sendall(b"".join(self.proto.data_to_send()))
        self.frames: list[Frame] = []
        self.response: Response | None = None
        while self.response is None:
            self._read(5)

    def send(self, obj: Any) -> None:
        """Send a message. (This also flushes the protocol's queued pongs.)"""
        self.proto.send_text(orjson.dumps(obj))
        self.sock.sendall(b"".join(self.proto.data_to_send()))

    def _read(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1 << 16)
        except TimeoutError:
            return True
        except OSError:
            chunk = b""
        if chunk:
            self.proto.receive_data(chunk)
        else:
            self.proto.receive_eof()
        for event in self.proto.events_received():
            if isinstance(event, Response):
                self.response = event
            else:
                self.frames.append(event)
        return bool(chunk)

    def read_until_closed(self, timeout: float) -> int | None:
        """Read everything until the server's close frame; its code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.frames:
                if frame.opcode is Opcode.CLOSE:
                    return Close.parse(frame.data).code
            if not self._read(max(0.01, deadline - time.monotonic())):
                break
        closes = [Close.parse(f.data).code for f in self.frames if f.opcode is Opcode.CLOSE]
        return closes[0] if closes else None

    def texts(self) -> list[dict[str, Any]]:
        return [orjson.loads(f.data) for f in self.frames if f.opcode is Opcode.TEXT]

    def close(self) -> None:
        self.sock.close()


def metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def strategy(user: str, strategy_id: str, **data: Any) -> dict[str, Any]:
    return {
        "type": "strategy:update",
        "user": user,
        "data": {"strategyId": strategy_id, "status": "running", **data},
    }


@pytest.fixture(scope="module")
def ping_server() -> Iterator[ServerProcess]:
    """Pings every 0.3 s."""
    proc = ServerProcess({"TICKWIRE_WS_PING_S": "0.3", "TICKWIRE_THROTTLE_MS": "0"}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def limits_server() -> Iterator[ServerProcess]:
    """A 256 KiB outbox, and 3 connection attempts per minute per IP."""
    proc = ServerProcess(
        {"TICKWIRE_OUTBOX_BYTES": "262144", "TICKWIRE_CONNECT_RATE": "3", "TICKWIRE_THROTTLE_MS": "0"}
    ).start()
    yield proc
    proc.stop()


# -- streams ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_one_socket_carries_several_streams(server: ServerProcess, compression: str | None) -> None:
    """Without compression the server writes shared pre-built frames; with
    permessage-deflate it re-encodes them per connection: both must be exact."""
    user = uid("mux")
    s1, s2, other = sym(), sym(), sym()
    sid = uid("strat")
    server.publish(order(user, "o-1", symbol=s1), strategy(user, sid), price(s1, 10.0), price(other, 5.0))
    with WSClient(server, server.token(user), compression=compression) as ws:
        ack = ws.subscribe(
            "orders",
            {"stream": "prices", "symbols": [s1, s2]},
            "alerts",
            f"strategies/{sid}",
            "trading",
            rid="1",
        )
        assert ack == {
            "type": "subscribed",
            "v": 1,
            "rid": "1",
            "streams": [
                {"stream": name, "recovered": True}
                for name in ("orders", "prices", "alerts", f"strategies/{sid}", "trading")
            ],
        }
        # Snapshots arrive as events of their stream, with the SSE payloads.
        [snap] = ws.events("orders")
        assert snap["event"] == "order:update"
        assert snap["data"]["snapshot"] is True
        assert [o["orderId"] for o in snap["data"]["orders"]] == ["o-1"]
        [init] = ws.events("prices")
        assert init["data"]["initializing"] is True
        assert [p["symbol"] for p in init["data"]["prices"]] == [s1]  # the filter applies to the snapshot
        assert [e["event"] for e in ws.events("trading")] == ["order:update", "position:update"]
        assert [e["data"]["strategyId"] for e in ws.events(f"strategies/{sid}")] == [sid]
        # Live: each event on the streams that select it, tagged with the stream.
        [order_id, alert_id, strategy_id] = server.publish(
            order(user, "o-2", symbol=s1), alert(user, 1), strategy(user, sid, signal="buy")
        )
        server.publish(price(other, 6.0), price(s2, 20.0))
        on_orders = ws.event("orders", "order:update", lambda d: d.get("orderId") == "o-2")
        on_trading = ws.event("trading", "order:update", lambda d: d.get("orderId") == "o-2")
        assert on_orders["id"] == on_trading["id"] == order_id
        assert on_orders["data"] == on_trading["data"]
        assert ws.event("alerts", "alert:new")["id"] == alert_id
        assert (
            ws.event(f"strategies/{sid}", "strategy:update", lambda d: d.get("signal") == "buy")["id"]
            == strategy_id
        )
        assert ws.event("prices", "price:update", lambda d: d.get("symbol") == s2)["data"]["price"] == 20.0
        assert all(e["data"].get("symbol") != other for e in ws.events("prices"))


def test_unsubscribe_stops_one_stream_and_keeps_the_others(server: ServerProcess) -> None:
    user = uid("unsub")
    with WSClient(server, server.token(user)) as ws:
        ws.subscribe("alerts", "orders")
        ws.send({"type": "unsubscribe", "rid": "u", "streams": ["alerts", "positions"]})
        assert ws.until(lambda m: m["type"] == "unsubscribed") == {
            "type": "unsubscribed",
            "rid": "u",
            "streams": ["alerts", "positions"],
        }
        server.publish(alert(user, 1), order(user, "o-1", symbol=sym()))
        ws.event("orders", "order:update", lambda d: d.get("orderId") == "o-1")
        ws.ping()
        assert ws.events("alerts") == []


def test_resume_of_several_streams_after_a_drop_is_exactly_once_in_order(server: ServerProcess) -> None:
    user = uid("wsresume")
    token = server.token(user)
    s = sym()
    sid = uid("strat")
    server.publish(strategy(user, sid))
    streams = ("orders", "alerts", f"strategies/{sid}")
    with WSClient(server, token) as ws:
        ws.subscribe(*streams)
        server.publish(order(user, "o-1", symbol=s), alert(user, 1), strategy(user, sid, n=1), alert(user, 2))
        ws.event("alerts", "alert:new", lambda d: d["alertId"] == "a-2")
        ws.event(f"strategies/{sid}", "strategy:update", lambda d: d.get("n") == 1)
        ws.event("orders", "order:update", lambda d: d.get("orderId") == "o-1")
        last = {name: [e["id"] for e in ws.events(name) if "id" in e][-1] for name in streams}
        ws.drop()
    missed = server.publish(
        alert(user, 3),
        order(user, "o-2", symbol=s),
        strategy(user, sid, n=2),
        alert(user, 4),
        order(user, "o-1", symbol=s, status="canceled", reason="test"),
        strategy(user, sid, n=3),
    )
    expected = {
        "alerts": [missed[0], missed[3]],
        "orders": [missed[1], missed[4]],
        f"strategies/{sid}": [missed[2], missed[5]],
    }
    with WSClient(server, token) as ws:
        ack = ws.subscribe(*({"stream": name, "lastEventId": last[name]} for name in streams), rid="r")
        assert ack["streams"] == [{"stream": name, "recovered": True} for name in streams]
        live_ids = server.publish(alert(user, 5), order(user, "o-3", symbol=s), strategy(user, sid, n=4))
        live = {"alerts": live_ids[0], "orders": live_ids[1], f"strategies/{sid}": live_ids[2]}
        ws.event("alerts", "alert:new", lambda d: d["alertId"] == "a-5")
        ws.event("orders", "order:update", lambda d: d.get("orderId") == "o-3")
        ws.event(f"strategies/{sid}", "strategy:update", lambda d: d.get("n") == 4)
        ws.ping()  # anything else queued before the pong has arrived
        for name in streams:
            got = ws.events(name)
            assert [e["id"] for e in got] == [*expected[name], live[name]], name
            assert not any(e["data"].get("snapshot") for e in got)
        assert ws.events(type_="stream:reset") == []


def test_lost_history_gets_recovered_false_a_reset_and_a_snapshot(server: ServerProcess) -> None:
    user = uid("wsreset")
    token = server.token(user)
    s = sym()
    [real, _] = server.publish(order(user, "o-1", symbol=s), alert(user, 1))
    pos = parse_id(real)
    wrong_epoch = format_id(int(real[:13]), Position(pos.epoch % EPOCH_MAX + 1, pos.offset, pos.tick))
    with WSClient(server, token) as ws:
        ack = ws.subscribe(
            {"stream": "orders", "lastEventId": wrong_epoch},
            {"stream": "alerts", "lastEventId": "garbage"},
            {"stream": "positions", "lastEventId": real},
        )
        assert ack["streams"] == [
            {"stream": "orders", "recovered": False},
            {"stream": "alerts", "recovered": False},
            {"stream": "positions", "recovered": True},
        ]
        orders = ws.events("orders")
        assert [e["event"] for e in orders] == ["stream:reset", "order:update"]
        assert orders[0]["data"]["recovered"] is False
        assert orders[0]["data"]["reason"]
        assert "id" not in orders[0]
        assert orders[1]["data"]["snapshot"] is True
        assert [o["orderId"] for o in orders[1]["data"]["orders"]] == ["o-1"]
        alerts = ws.events("alerts")
        assert [e["event"] for e in alerts] == ["stream:reset", "alert:new"]  # then the buffered alerts
        assert alerts[1]["data"]["alertId"] == "a-1"


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_msgpack_round_trip(server: ServerProcess, compression: str | None) -> None:
    user = uid("msgpack")
    s = sym()
    server.publish(order(user, "o-1", symbol=s, qty=1.5))
    with WSClient(server, server.token(user), subprotocol="tickwire.msgpack", compression=compression) as ws:
        assert ws.ws.subprotocol == "tickwire.msgpack"
        ws.subscribe("orders", rid="m")
        [publish_id] = server.publish(
            order(user, "o-2", symbol=s, note="ünïcode", nested={"a": [1, None, True]})
        )
        event = ws.event("orders", "order:update", lambda d: d.get("orderId") == "o-2")
        assert event["id"] == publish_id
        assert event["data"]["note"] == "ünïcode"
        assert event["data"]["nested"] == {"a": [1, None, True]}
        assert ws.events("orders")[0]["data"]["orders"][0]["qty"] == 1.5
        ws.ping(ts=12345678901234)
        ws.ws.send('{"type":"ping"}')  # a text frame on a binary protocol
        assert "binary frames" in ws.error()["message"]
        ws.ws.send(b"\xc1\x00garbage")
        assert ws.error()["code"] == "bad_request"
        ws.ping()


@pytest.mark.parametrize("subprotocol", ["tickwire.json", "tickwire.msgpack"])
def test_log_events_carry_their_seq_per_type(server: ServerProcess, subprotocol: str) -> None:
    user = uid("wsseq")
    with WSClient(server, server.token(user), subprotocol=subprotocol) as ws:
        ws.subscribe("orders", rid="s")
        server.publish(order(user, "o-1"), alert(user, 1), order(user, "o-1", status="filled"))
        ws.event("orders", "order:update", lambda d: d.get("status") == "filled")
        numbered = [(e["event"], e.get("seq")) for e in ws.events("orders")]
        assert numbered == [("order:update", None), ("order:update", 1), ("order:update", 2)]


def test_default_subprotocol_is_json_and_unknown_ones_are_refused(server: ServerProcess) -> None:
    with WSClient(server, subprotocol=None) as ws:
        assert ws.ws.subprotocol is None
        ws.ping(ts="x")
    with pytest.raises(InvalidStatus) as info:
        WSClient(server, subprotocol="graphql-ws")
    assert info.value.response.status_code == 400
    assert b"tickwire.json" in info.value.response.body


def test_streams_in_the_query_are_subscribed_at_connect(server: ServerProcess) -> None:
    s, other = sym(), sym()
    server.publish(price(s, 3.0), price(other, 4.0))
    with WSClient(server, query=f"?streams=prices,agents,orders&symbols={s}") as ws:
        assert ws.until(lambda m: m["type"] == "subscribed") == {
            "type": "subscribed",
            "v": 1,
            "streams": [{"stream": "prices", "recovered": True}, {"stream": "agents", "recovered": True}],
        }
        assert ws.error()["stream"] == "orders"  # anonymous: unauthorized
        [init] = ws.events("prices")
        assert [p["symbol"] for p in init["data"]["prices"]] == [s]
        server.publish(price(other, 5.0), price(s, 6.0))
        assert ws.event("prices", "price:update", lambda d: "symbol" in d)["data"]["symbol"] == s
    with pytest.raises(InvalidStatus) as info:
        WSClient(server, query="?streams=NOT%20A%20STREAM")
    assert info.value.response.status_code == 400
    assert b"is not a stream name" in info.value.response.body


# -- ping / pong --------------------------------------------------------------------------------


def test_ping_command_answers_pong_with_the_same_ts(server: ServerProcess) -> None:
    with WSClient(server) as ws:
        ws.send({"type": "ping", "ts": 1735819800000})
        assert ws.recv() == {"type": "pong", "ts": 1735819800000}
        ws.send({"type": "ping", "ts": 1.5, "rid": 9})
        assert ws.recv() == {"type": "pong", "ts": 1.5, "rid": 9}


def test_server_ping_frames_measure_rtt_and_keep_answering_clients_open(ping_server: ServerProcess) -> None:
    before = metric(ping_server, "tickwire_ws_rtt_seconds_count")
    with WSClient(ping_server) as ws:  # the library answers ping frames by itself
        time.sleep(1.2)  # four intervals
        ws.ping()
    assert metric(ping_server, "tickwire_ws_rtt_seconds_count") >= before + 3
    assert metric(ping_server, "tickwire_ws_rtt_seconds_sum") < 1.0


def test_two_missed_pongs_close_the_connection(ping_server: ServerProcess) -> None:
    raw = RawWS(ping_server)
    try:
        start = time.monotonic()
        code = raw.read_until_closed(5)
        elapsed = time.monotonic() - start
        assert code == 1011
        assert 0.5 <= elapsed < 3.0, elapsed  # pings at 0.3 s and 0.6 s, the close at 0.9 s
        pings = [f.data for f in raw.frames if f.opcode is Opcode.PING]
        assert len(pings) == 2
        now_ms = time.time() * 1000
        for payload in pings:  # unix ms
            assert re.fullmatch(rb"[0-9]{13}", payload)
            assert abs(int(payload) - now_ms) < 10_000
    finally:
        raw.close()
    assert metric(ping_server, "tickwire_ws_missed_pongs_total") >= 2


# -- closes and limits --------------------------------------------------------------------------


def test_slow_consumer_is_closed_with_4008_and_others_are_not_slowed(limits_server: ServerProcess) -> None:
    """The client stops reading: the kernel's buffers fill (a few MB on loopback), the server's
    writer blocks in its send, the outbox (256 KiB here) overflows, and the connection is closed
    with 4008 queued behind what the server had buffered."""
    user = uid("slow")
    token = limits_server.token(user)
    closes = 'tickwire_slow_consumer_closes_total{transport="ws"}'
    raw = RawWS(limits_server, token, rcvbuf=4096)
    try:
        raw.send({"type": "subscribe", "rid": "1", "streams": [{"stream": "alerts"}]})
        with WSClient(limits_server) as bystander:
            bystander.subscribe("agents")
            before = metric(limits_server, closes)
            published = 0
            for _ in range(200):  # batches of ~150 KB, each under the outbox bound
                limits_server.publish(*(alert(user, published + i, padding="x" * 6000) for i in range(25)))
                published += 25
                if metric(limits_server, closes) > before:
                    break
            else:
                pytest.fail("the slow consumer was never closed")
            bystander.ping()  # another client on the same server is served as usual
        assert published > 400  # it took full kernel buffers, not one burst, to close it
        assert raw.read_until_closed(10) == 4008
        texts = raw.texts()
        assert texts[0]["type"] == "subscribed"
        delivered = [t["data"]["alertId"] for t in texts if t["type"] == "event"]
        assert 0 < len(delivered) < published
        assert delivered == [f"a-{i}" for i in range(len(delivered))]  # in order, no holes, then the close
    finally:
        raw.close()


def test_connect_rate_is_counted_on_the_handshake(limits_server: ServerProcess) -> None:
    def from_second_address() -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))  # an address of its own, so other tests' attempts do not count
        sock.connect(("127.0.0.1", limits_server.port))
        return sock

    for _ in range(3):
        WSClient(limits_server, sock=from_second_address()).close()
    with pytest.raises(InvalidStatus) as info:
        WSClient(limits_server, sock=from_second_address())
    response = info.value.response
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert orjson.loads(response.body)["statusCode"] == 429


def test_per_user_cap_counts_sse_and_websocket_together(server: ServerProcess) -> None:
    user = uid("cap")
    token = server.token(user)
    streams = [open_stream(server, "alerts", token) for _ in range(10)]
    try:
        with WSClient(server, token) as ws:  # the 11th connection of the user
            assert streams[0].wait_for("connection:limit", 5) is not None
            assert streams[0].wait_closed(5)
            assert all(s.wait_for("connection:limit", 0.1) is None for s in streams[1:])
            ws.ping()
            streams.append(
                open_stream(server, "alerts", token)
            )  # the 12th evicts the 2nd SSE, not the socket
            assert streams[1].wait_for("connection:limit", 5) is not None
            ws.ping()
    finally:
        for s in streams:
            s.close()


def test_an_evicted_socket_gets_connection_limit_then_4029(server: ServerProcess) -> None:
    user = uid("cap-ws")
    token = server.token(user)
    anonymous = WSClient(server)  # anonymous sockets are not counted for anyone
    anonymous.subscribe("agents")
    with WSClient(server, token) as ws:
        ws.subscribe("alerts")
        streams = [open_stream(server, "alerts", token) for _ in range(10)]
        try:
            limit = ws.until(lambda m: m["type"] == "event" and m["event"] == "connection:limit")
            assert "stream" not in limit
            assert limit["data"]["limit"] == 10
            assert ws.closed_with() == 4029
            assert all(s.wait_for("connection:limit", 0.1) is None for s in streams)
        finally:
            for s in streams:
                s.close()
    anonymous.ping()
    anonymous.close()


def test_shutdown_closes_with_1001() -> None:
    proc = ServerProcess().start()
    try:
        with WSClient(proc) as ws:
            ws.subscribe("agents")
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGTERM)
            assert ws.closed_with() == 1001
    finally:
        proc.stop()


# -- auth ---------------------------------------------------------------------------------------


def test_anonymous_sockets_get_public_streams_and_may_authenticate_later(server: ServerProcess) -> None:
    user = uid("late-auth")
    with WSClient(server) as ws:
        ack = ws.subscribe("agents", "orders", rid="1")
        assert ack["streams"] == [{"stream": "agents", "recovered": True}]
        err = ws.error("1")
        assert err["code"] == "unauthorized"
        assert err["stream"] == "orders"
        ws.send({"type": "auth", "rid": "a", "token": server.token(user)})
        assert ws.until(lambda m: m["type"] == "authenticated") == {
            "type": "authenticated",
            "v": 1,
            "rid": "a",
            "userId": user,
        }
        ws.subscribe("orders", rid="2")
        server.publish(order(user, "o-1", symbol=sym()))
        ws.event("orders", "order:update", lambda d: d.get("orderId") == "o-1")
        ws.send({"type": "auth", "rid": "b", "token": server.token(uid("someone-else"))})
        assert ws.error("b")["code"] == "forbidden"


def test_bad_token_in_auth_closes_4001(server: ServerProcess) -> None:
    with WSClient(server) as ws:
        ws.send({"type": "auth", "token": "not-a-jwt"})
        assert ws.closed_with() == 4001


def test_bad_bearer_at_the_handshake_closes_4001(server: ServerProcess) -> None:
    expired = server.token("someone", ttl=-10)
    with WSClient(server, expired) as ws:
        assert ws.closed_with() == 4001


def test_session_cookie_counts_only_from_an_allowed_origin(server: ServerProcess) -> None:
    user = uid("cookie")
    cookie = {"Cookie": f"session={server.token(user)}"}
    with WSClient(server, headers=cookie, origin=f"http://127.0.0.1:{server.port}") as ws:
        ws.subscribe("orders")
    with WSClient(server, headers=cookie, origin="https://evil.example") as ws:
        ws.send({"type": "subscribe", "rid": "x", "streams": [{"stream": "orders"}]})
        assert ws.error("x")["code"] == "unauthorized"


def test_stream_access_errors(server: ServerProcess) -> None:
    owner, intruder = uid("owner"), uid("intruder")
    sid = uid("strat")
    server.publish(strategy(owner, sid))
    with WSClient(server, server.token(intruder)) as ws:
        ws.send(
            {
                "type": "subscribe",
                "rid": "1",
                "streams": [
                    {"stream": f"strategies/{sid}"},
                    {"stream": "strategies/nope-nope"},
                    {"stream": "nonsense"},
                    {"stream": "trading", "userId": owner},
                    {"stream": "orders", "symbols": ["AAPL"]},
                    {"stream": "prices", "symbols": ["BAD SYMBOL"]},
                    {"stream": "alerts"},
                ],
            }
        )
        ack = ws.until(lambda m: m["type"] == "subscribed")
        assert ack["streams"] == [{"stream": "alerts", "recovered": True}]
        errors = {m["stream"]: m["code"] for m in ws.messages if m["type"] == "error"}
        assert errors == {
            f"strategies/{sid}": "forbidden",
            "strategies/nope-nope": "not_found",
            "nonsense": "not_found",
            "trading": "forbidden",
            "orders": "bad_request",
            "prices": "bad_request",
        }
        assert all(m.get("rid") == "1" for m in ws.messages if m["type"] == "error")


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_request"),
        ("[1,2,3]", "bad_request"),
        ('"just a string"', "bad_request"),
        ('{"type":"launch"}', "unknown_type"),
        ('{"type":"subscribe","rid":"r","streams":[{"stream":"orders","lastEventID":"x"}]}', "bad_request"),
        ('{"type":"subscribe","streams":[]}', "bad_request"),
        (b"\x00\x01binary on a text protocol", "bad_request"),
        ("[" * 5000 + "]" * 5000, "bad_request"),
    ],
)
def test_bad_input_gets_an_error_and_the_socket_stays_usable(
    server: ServerProcess, frame: str | bytes, code: str
) -> None:
    with WSClient(server) as ws:
        ws.ws.send(frame)
        err = ws.until(lambda m: m["type"] == "error")
        assert err["code"] == code
        assert err["message"]
        ws.ping()


def test_oversize_message_closes_1008(server: ServerProcess) -> None:
    with WSClient(server) as ws, WSClient(server) as bystander:
        bystander.subscribe("agents")
        ws.ws.send(orjson.dumps({"type": "ping", "ts": "x" * 70_000}).decode())
        assert ws.closed_with() == 1008
        bystander.ping()


def test_command_rate_is_bounded(server: ServerProcess) -> None:
    with WSClient(server) as ws:
        for i in range(70):
            ws.send({"type": "ping", "ts": i})
        for _ in range(70):
            ws.recv()
        pongs = [m for m in ws.messages if m["type"] == "pong"]
        limited = [m for m in ws.messages if m["type"] == "error"]
        assert len(pongs) >= 50  # the burst
        assert len(limited) >= 5  # refilled at 50/s while 70 commands arrived within milliseconds
        assert len(pongs) + len(limited) == 70
        assert {m["code"] for m in limited} == {"rate_limited"}
        time.sleep(0.1)
        ws.ping()  # the bucket refills
    with WSClient(server) as flood:
        for i in range(300):
            try:
                flood.send({"type": "ping", "ts": i})
            except ConnectionClosed:
                break
        assert flood.closed_with() == 1008


def test_subscription_limit(server: ServerProcess) -> None:
    user = uid("many")
    ids = [f"s{i}" + uid("") for i in range(100)]
    server.publish(*(strategy(user, sid) for sid in ids))
    with WSClient(server, server.token(user)) as ws:
        ack = ws.subscribe(*(f"strategies/{sid}" for sid in ids))
        assert len(ack["streams"]) == 100
        ws.subscribe(f"strategies/{ids[0]}", rid="again")  # re-subscribing replaces, it does not add
        ws.send({"type": "subscribe", "rid": "101", "streams": [{"stream": "orders"}]})
        assert ws.error("101")["code"] == "too_many_subscriptions"
        ws.send({"type": "unsubscribe", "streams": [f"strategies/{ids[1]}"]})
        assert ws.subscribe("orders", rid="ok")["streams"] == [{"stream": "orders", "recovered": True}]
