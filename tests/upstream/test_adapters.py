"""Each adapter fed its provider's messages directly (no server): what it sends, what it
reads, how it classifies the provider's errors."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import pytest

from tickwire.upstream.adapters import make_adapter
from tickwire.upstream.adapters.base import Adapter
from tickwire.upstream.config import UpstreamConfig
from tickwire.upstream.model import PRICE, TRADE, AuthFailed, Frame, HttpRequest, Malformed, UpstreamError

ENV = {"KEY": "k3y", "SECRET": "s3cret"}


def adapter(kind: str, **settings: Any) -> Any:
    base: dict[str, Any] = {"name": "feed", "kind": kind, "token_env": "KEY"}
    if kind == "alpaca":
        base["secret_env"] = "SECRET"
    if kind in ("tickwire", "json"):
        base["url"] = "ws://core:8080/api/stream/ws"
    base.update(settings)
    return make_adapter(UpstreamConfig(**base), ENV)


def sent(frames: list[Frame]) -> list[Any]:
    out = []
    for f in frames:
        out.append(msgpack.unpackb(f.data) if isinstance(f.data, bytes) else orjson.loads(f.data))
    return out


def parse(a: Adapter, message: Any) -> Any:
    return a.parse(orjson.dumps(message), 1_767_366_245_000)


def test_finnhub() -> None:
    a = adapter("finnhub", rest_url="https://finnhub.io")
    assert a.connect().url == "wss://ws.finnhub.io?token=k3y"
    assert sent(a.subscribe(["AAPL", "MSFT"])) == [
        {"type": "subscribe", "symbol": "AAPL"},
        {"type": "subscribe", "symbol": "MSFT"},
    ]
    parsed = parse(
        a, {"type": "trade", "data": [{"s": "AAPL", "p": 187.2, "t": 1700000000000, "v": 3, "c": ["1"]}]}
    )
    update = parsed.updates[0]
    assert (update.type, update.symbol, update.data, update.exchange_ts) == (
        PRICE,
        "AAPL",
        {"price": 187.2, "size": 3},
        1700000000000,
    )
    assert parse(a, {"type": "ping"}).updates == []
    assert (
        parse(a, {"type": "error", "msg": "Subscribing to too many symbols"}).error
        == "Subscribing to too many symbols"
    )
    with pytest.raises(Malformed):
        parse(a, {"type": "news"})
    request = a.poll_requests(["AAPL"])[0]
    assert request.url == "https://finnhub.io/api/v1/quote?symbol=AAPL" and request.headers == {
        "X-Finnhub-Token": "k3y"
    }
    quote = orjson.dumps(
        {"c": 190.1, "d": 1, "dp": 0.5, "h": 191, "l": 189, "o": 190, "pc": 189.1, "t": 1700000000}
    )
    assert a.parse_poll(request, 200, quote, 0)[0].exchange_ts == 1700000000000
    assert a.parse_poll(request, 200, orjson.dumps({"c": 0, "t": 0}), 0) == []
    with pytest.raises(AuthFailed):
        a.parse_poll(request, 401, b'{"error":"Invalid API key"}', 0)
    with pytest.raises(UpstreamError, match="429"):
        a.parse_poll(request, 429, b'{"error":"API limit reached"}', 0)


def test_alpaca() -> None:
    a = adapter("alpaca", options={"feed": "sip"})
    assert a.url == "wss://stream.data.alpaca.markets/v2/sip"
    assert sent(a.on_open()) == [{"action": "auth", "key": "k3y", "secret": "s3cret"}]
    assert sent(a.subscribe(["AAPL", "MSFT"])) == [
        {"action": "subscribe", "trades": ["AAPL", "MSFT"], "quotes": ["AAPL", "MSFT"]}
    ]
    assert parse(a, [{"T": "success", "msg": "connected"}]).ready is False
    assert parse(a, [{"T": "success", "msg": "authenticated"}]).ready is True
    assert (
        parse(a, [{"T": "error", "code": 402, "msg": "auth failed"}]).fatal == "Alpaca error 402: auth failed"
    )
    assert parse(a, [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]).retry is not None
    assert parse(a, [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]).error is not None
    both = parse(
        a,
        [
            {"T": "t", "S": "AAPL", "p": 1.5, "s": 100, "t": "2026-01-02T15:04:05.123456789Z"},
            {"T": "q", "S": "AAPL", "bp": 1.4, "ap": 1.6, "bs": 1, "as": 2, "t": "2026-01-02T15:04:05.2Z"},
            {"T": "subscription", "trades": ["AAPL"], "quotes": ["AAPL"], "bars": []},
        ],
    )
    assert [u.data for u in both.updates] == [{"price": 1.5, "size": 100}, {"bid": 1.4, "ask": 1.6}]
    assert both.updates[0].exchange_ts == 1767366245123
    with pytest.raises(Malformed):
        parse(a, {"T": "t"})
    with pytest.raises(Malformed):
        parse(a, [{"T": "t", "S": "AAPL"}])


def test_birdeye() -> None:
    a = adapter("birdeye", options={"chain": "ethereum", "chart_type": "15s"})
    spec = a.connect()
    assert spec.url == "wss://public-api.birdeye.so/socket/ethereum?x-api-key=k3y"
    assert spec.subprotocols == ("echo-protocol",) and spec.origin == "ws://public-api.birdeye.so"
    assert sent(a.replace(["A"], True)) == [
        {
            "type": "SUBSCRIBE_PRICE",
            "data": {"queryType": "simple", "chartType": "15s", "address": "A", "currency": "usd"},
        }
    ]
    frames = sent(a.replace(["A", "B"], False))
    assert frames[0] == {"type": "UNSUBSCRIBE_PRICE"}
    assert frames[1]["data"] == {
        "queryType": "complex",
        "query": "(address = A AND chartType = 15s AND currency = usd) OR (address = B AND chartType = 15s AND currency = usd)",
    }
    assert sent(a.replace([], False)) == [{"type": "UNSUBSCRIBE_PRICE"}]
    price = parse(
        a,
        {"type": "PRICE_DATA", "data": {"c": 24.5, "unixTime": 1675506000, "address": "A", "symbol": "SOL"}},
    )
    assert price.updates[0].data == {"price": 24.5} and price.updates[0].exchange_ts is None
    assert parse(a, {"type": "WELCOME"}).ready
    assert "Birdeye error" in parse(a, {"type": "ERROR", "data": {"message": "bad"}}).error
    assert parse(a, {"type": "TXS_DATA", "data": {}}).updates == []


def test_helius_groups_subscriptions_and_regroups_on_removal() -> None:
    a = adapter("helius")
    assert a.feeds == "chain"
    first = sent(a.subscribe(["A", "B", "C"]))[0]
    assert first["method"] == "transactionSubscribe" and first["params"][0]["accountInclude"] == [
        "A",
        "B",
        "C",
    ]
    assert parse(a, {"jsonrpc": "2.0", "result": 77, "id": first["id"]}).updates == []
    frames = sent(a.unsubscribe(["B"]))
    assert frames[0]["method"] == "transactionUnsubscribe" and frames[0]["params"] == [77]
    assert frames[1]["params"][0]["accountInclude"] == ["A", "C"]
    # dropped before its subscribe was answered: unsubscribed (and regrouped) once it is
    pending = sent(a.subscribe(["D", "E"]))[0]
    assert a.unsubscribe(["D"]) == []
    answer = parse(a, {"jsonrpc": "2.0", "result": 78, "id": pending["id"]})
    reply = sent(answer.reply)
    assert reply[0]["params"] == [78] and reply[1]["params"][0]["accountInclude"] == ["E"]
    error = parse(a, {"jsonrpc": "2.0", "error": {"code": -32602, "message": "Invalid params"}, "id": 999})
    assert error.error == "Helius error -32602: Invalid params"
    with pytest.raises(Malformed):
        parse(
            a,
            {
                "jsonrpc": "2.0",
                "method": "transactionNotification",
                "params": {"subscription": 5, "result": {"signature": "s"}},
            },
        )


def test_helius_notification_names_the_accounts_the_transaction_touches() -> None:
    a = adapter("helius")
    request = sent(a.subscribe(["A", "B"]))[0]
    parse(a, {"jsonrpc": "2.0", "result": 5, "id": request["id"]})
    result = {
        "signature": "sig",
        "slot": 9,
        "blockTime": 1700000000,
        "transaction": {
            "meta": {"err": {"x": 1}, "fee": 5000},
            "transaction": {"message": {"accountKeys": [{"pubkey": "B"}, "Z"]}},
        },
    }
    note = parse(
        a,
        {
            "jsonrpc": "2.0",
            "method": "transactionNotification",
            "params": {"subscription": 5, "result": result},
        },
    )
    (update,) = note.updates
    assert (update.type, update.symbol, update.key, update.exchange_ts) == (TRADE, "B", "sig", 1700000000000)
    assert update.data == {
        "tradeId": "sig",
        "signature": "sig",
        "slot": 9,
        "status": "failed",
        "fee": 5000,
        "symbol": "B",
    }


def test_tickwire_resumes_relayed_streams_and_reads_snapshots_and_deltas() -> None:
    a = adapter("tickwire", token_env=None, options={"streams": ["agents"], "codec": "msgpack"})
    spec = a.connect()
    assert spec.subprotocols == ("tickwire.msgpack",) and "Authorization" not in spec.headers
    assert sent(a.on_open())[0]["streams"] == [{"stream": "agents"}]
    event = {
        "type": "event",
        "stream": "agents",
        "event": "agent:status",
        "id": "1767366245000-abc",
        "data": {"agentId": "a1"},
    }
    relayed = a.parse(msgpack.packb(event), 0)
    assert relayed.updates[0].type == "agent:status" and relayed.updates[0].key == "1767366245000-abc"
    assert sent(a.on_open())[0]["streams"] == [{"stream": "agents", "lastEventId": "1767366245000-abc"}]
    assert sent(a.replace(["AAPL"], True))[0]["streams"] == [{"stream": "prices", "symbols": ["AAPL"]}]
    assert sent(a.replace([], False))[0]["type"] == "unsubscribe"
    snapshot = {
        "initializing": True,
        "prices": [{"symbol": "AAPL", "price": 1.5, "timestamp": "2026-01-02T15:04:05.000Z"}],
    }
    full = a.parse(
        msgpack.packb(
            {"type": "event", "stream": "prices", "event": "price:update", "id": "x", "data": snapshot}
        ),
        0,
    )
    assert full.updates[0].full and full.updates[0].exchange_ts == 1767366245000
    delta = {"symbol": "AAPL", "bid": 1.4, "delta": True, "exchangeTs": 5}
    part = a.parse(
        msgpack.packb({"type": "event", "stream": "prices", "event": "price:update", "data": delta}), 0
    )
    assert (
        not part.updates[0].full and part.updates[0].data == {"bid": 1.4} and part.updates[0].exchange_ts == 5
    )
    assert a.parse(msgpack.packb({"type": "error", "code": "forbidden", "message": "no"}), 0).fatal
    assert a.parse(msgpack.packb({"type": "error", "code": "rate_limited", "message": "slow"}), 0).error
    reset = {
        "type": "event",
        "stream": "agents",
        "event": "stream:reset",
        "data": {"recovered": False, "reason": "unknown_epoch"},
    }
    assert "unknown_epoch" in a.parse(msgpack.packb(reset), 0).error
    assert a.closed(4001, "unauthorized") is not None and a.closed(1001, "bye") is None
    with pytest.raises(Malformed):
        a.parse(b"\xc1", 0)


def test_tickwire_sends_its_token_first_and_subscribes_once_the_core_authenticated_it() -> None:
    a = adapter("tickwire", options={"streams": ["agents"]})
    assert a.wait_ready and "Authorization" not in a.connect().headers
    auth, streams = sent(a.on_open())
    assert auth == {"type": "auth", "token": "k3y"} and streams["streams"] == [{"stream": "agents"}]
    assert parse(a, {"type": "authenticated", "userId": "edge", "v": 1}).ready
    assert not adapter("tickwire", token_env=None).wait_ready  # no token: nothing to wait for


def test_tickwire_polls_the_events_endpoint() -> None:
    a = adapter("tickwire", token_env=None, rest_url="http://core:8080", options={"streams": ["agents"]})
    prices, agents = a.poll_requests(["AAPL", "MSFT"])
    assert (
        prices.url == "http://core:8080/api/stream/prices/events?symbols=AAPL%2CMSFT"
        and agents.tag == "agents"
    )
    body = {
        "events": [{"event": "agent:status", "id": "1767366245000-abc", "data": {"agentId": "a1"}}],
        "lastEventId": "x",
    }
    assert a.parse_poll(agents, 200, orjson.dumps(body), 0)[0].data == {"agentId": "a1"}
    assert "after=1767366245000-abc" in a.poll_requests([])[0].url


def test_json_templates_and_mapping() -> None:
    options = {
        "subscribe": {"action": "sub", "channel": "T.{symbol}", "symbol": "$symbol", "auth": "{token}"},
        "fields": {"symbol": "$.sym", "price": "$.px", "ts": "$.ts"},
        "ts_unit": "s",
        "records": "$",
        "ping": {"op": "ping"},
        "rest": {"path": "/q/{symbol}", "records": "$"},
    }
    a = adapter("json", options=options, rest_url="http://feed")
    assert a.batch_limit == 1
    assert sent(a.subscribe(["A", "B"])) == [
        {"action": "sub", "channel": "T.A", "symbol": "A", "auth": "k3y"},
        {"action": "sub", "channel": "T.B", "symbol": "B", "auth": "k3y"},
    ]
    assert a.unsubscribe(["A"]) == []
    assert sent([a.ping(0)]) == [{"op": "ping"}]
    listed = parse(a, [{"sym": "A", "px": "1.5", "ts": 1700000000}, {"sym": "B"}, {"other": 1}])
    assert [(u.symbol, u.data, u.exchange_ts) for u in listed.updates] == [
        ("A", {"price": 1.5}, 1700000000000)
    ]
    request: HttpRequest = a.poll_requests(["A/B"])[0]
    assert request.url == "http://feed/q/A%2FB"
    with pytest.raises(Exception, match="symbol"):
        adapter("json", options={"subscribe": {}, "fields": {"price": "$.p"}})
