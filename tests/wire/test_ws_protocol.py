"""WebSocket protocol messages (SPEC section 6): command parsing with precise errors,
server message builders, and the per-connection command rate."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwire.codes import CLOSE_CODES, ERROR_CODES
from tickwire.core.clock import FakeClock
from tickwire.errors import ProtocolError
from tickwire.wire.codecs import JSON_CODEC, MSGPACK_CODEC
from tickwire.wire.ws import (
    DEFAULT_LIMITS,
    Auth,
    Command,
    Ping,
    StreamRequest,
    Subscribe,
    TokenBucket,
    Unsubscribe,
    authenticated,
    error,
    error_message,
    event_message,
    parse_command,
    pong,
    subscribed,
    unsubscribed,
)


def test_the_spec_examples_parse() -> None:
    assert parse_command({"type": "auth", "token": "t"}) == Auth("t")
    assert parse_command(
        {
            "type": "subscribe",
            "rid": "1",
            "streams": [
                {"stream": "orders", "lastEventId": "1735819800000-3kf9a"},
                {"stream": "prices", "symbols": ["AAPL"]},
                {"stream": "strategies/s1"},
            ],
        }
    ) == Subscribe(
        (
            StreamRequest("orders", "1735819800000-3kf9a"),
            StreamRequest("prices", symbols=("AAPL",)),
            StreamRequest("strategies/s1"),
        ),
        "1",
    )
    assert parse_command({"type": "unsubscribe", "rid": "2", "streams": ["prices"]}) == Unsubscribe(
        ("prices",), "2"
    )
    assert parse_command({"type": "ping", "ts": 1735819800000}) == Ping(1735819800000)


def test_optional_fields_and_normalization() -> None:
    command = parse_command(
        {
            "type": "subscribe",
            "rid": 7,
            "streams": [{"stream": "/trading/", "userId": "bob", "lastEventId": ""}],
        }
    )
    assert command == Subscribe((StreamRequest("trading", None, None, "bob"),), 7)
    assert isinstance(command, Subscribe)
    assert command.streams[0].params() == {"userId": "bob"}
    prices = StreamRequest("prices", symbols=("A", "B"))
    assert prices.params() == {"symbols": "A,B"}
    assert parse_command({"type": "ping"}) == Ping(None)
    assert parse_command({"type": "ping", "ts": "abc", "rid": "r"}) == Ping("abc", "r")
    # Duplicate symbols and unsubscribe names collapse, in order.
    sub = parse_command({"type": "subscribe", "streams": [{"stream": "prices", "symbols": ["B", "A", "B"]}]})
    assert isinstance(sub, Subscribe)
    assert sub.streams[0].symbols == ("B", "A")
    assert parse_command({"type": "unsubscribe", "streams": ["a", "b", "a"]}) == Unsubscribe(("a", "b"))


def test_an_overlong_last_event_id_is_cut_so_it_resets_like_on_sse() -> None:
    command = parse_command(
        {"type": "subscribe", "streams": [{"stream": "orders", "lastEventId": "9" * 10_000}]}
    )
    assert isinstance(command, Subscribe)
    assert command.streams[0].last_event_id == "9" * DEFAULT_LIMITS.max_last_event_id


def _error(obj: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_command(obj)
    assert info.value.code in ERROR_CODES
    return info.value


@pytest.mark.parametrize(
    ("obj", "code", "fragment"),
    [
        ([1, 2], "bad_request", "got a list"),
        ("ping", "bad_request", "got a string"),
        (None, "bad_request", "got null"),
        (3, "bad_request", "got a number"),
        ({}, "bad_request", "`type` must be a string"),
        ({"type": 5}, "bad_request", "`type` must be a string"),
        ({"type": "subscribe!"}, "unknown_type", "unknown message type 'subscribe!'"),
        ({"type": "publish"}, "unknown_type", "expected one of: auth, subscribe, unsubscribe, ping"),
        ({"type": "auth"}, "bad_request", "`token` must be a non-empty string"),
        ({"type": "auth", "token": ""}, "bad_request", "`token` must be a non-empty string"),
        ({"type": "auth", "token": "x" * 9000}, "bad_request", "longer than 8192"),
        ({"type": "auth", "token": "t", "user": "u"}, "bad_request", "unknown field(s) user in auth"),
        ({"type": "subscribe"}, "bad_request", "`streams` must be a non-empty list"),
        ({"type": "subscribe", "streams": []}, "bad_request", "`streams` must be a non-empty list"),
        ({"type": "subscribe", "streams": "orders"}, "bad_request", "`streams` must be a non-empty list"),
        ({"type": "subscribe", "streams": ["orders"]}, "bad_request", "streams[0] must be an object"),
        ({"type": "subscribe", "streams": [{}]}, "bad_request", "streams[0]: `stream` must be a string"),
        ({"type": "subscribe", "streams": [{"stream": "ORDERS"}]}, "bad_request", "is not a stream name"),
        (
            {"type": "subscribe", "streams": [{"stream": "strategies/a b"}]},
            "bad_request",
            "is not a stream name",
        ),
        ({"type": "subscribe", "streams": [{"stream": "a/b/c"}]}, "bad_request", "is not a stream name"),
        (
            {"type": "subscribe", "streams": [{"stream": "orders", "lastEventID": "x"}]},
            "bad_request",
            "unknown field(s) lastEventID in streams[0]",
        ),
        (
            {"type": "subscribe", "streams": [{"stream": "orders"}, {"stream": "orders/"}]},
            "bad_request",
            "streams[1]: stream 'orders' appears twice",
        ),
        (
            {"type": "subscribe", "streams": [{"stream": "orders", "lastEventId": 5}]},
            "bad_request",
            "streams[0].lastEventId must be a string",
        ),
        (
            {"type": "subscribe", "streams": [{"stream": "prices", "symbols": "AAPL"}]},
            "bad_request",
            "streams[0].symbols must be a non-empty list",
        ),
        (
            {"type": "subscribe", "streams": [{"stream": "prices", "symbols": []}]},
            "bad_request",
            "streams[0].symbols must be a non-empty list",
        ),
        (
            {"type": "subscribe", "streams": [{"stream": "prices", "symbols": ["A", 3]}]},
            "bad_request",
            "streams[0].symbols[1] must be a symbol",
        ),
        (
            {"type": "subscribe", "streams": [{"stream": "prices", "symbols": ["A,B"]}]},
            "bad_request",
            "streams[0].symbols[0] must be a symbol",
        ),
        (
            {
                "type": "subscribe",
                "streams": [{"stream": "prices", "symbols": [f"S{i}" for i in range(201)]}],
            },
            "bad_request",
            "at most 200 symbols",
        ),
        (
            {"type": "subscribe", "streams": [{"stream": "trading", "userId": "a b"}]},
            "bad_request",
            "streams[0].userId must be a user id",
        ),
        (
            {
                "type": "subscribe",
                "streams": [{"stream": f"s{i}"} for i in range(DEFAULT_LIMITS.max_subscriptions + 1)],
            },
            "too_many_subscriptions",
            "at most 100 streams",
        ),
        ({"type": "unsubscribe", "streams": [5]}, "bad_request", "streams[0]: `stream` must be a string"),
        ({"type": "ping", "ts": {"a": 1}}, "bad_request", "`ts` must be a number or a string"),
        ({"type": "ping", "ts": True}, "bad_request", "`ts` must be a number or a string"),
        ({"type": "ping", "ts": "x" * 65}, "bad_request", "`ts` is longer than 64"),
        ({"type": "ping", "rid": [1]}, "bad_request", "`rid` must be a string or an integer"),
        ({"type": "ping", "rid": True}, "bad_request", "`rid` must be a string or an integer"),
        ({"type": "ping", "rid": "r" * 65}, "bad_request", "`rid` is longer than 64"),
        ({"type": "ping", "rid": 2**60}, "bad_request", "JavaScript"),
    ],
)
def test_bad_commands_get_a_precise_error(obj: Any, code: str, fragment: str) -> None:
    exc = _error(obj)
    assert exc.code == code
    assert fragment in exc.message, exc.message


def test_errors_carry_the_rid_and_stream_when_known() -> None:
    exc = _error({"type": "subscribe", "rid": "9", "streams": [{"stream": "orders", "lastEventId": 1}]})
    assert exc.rid == "9"
    assert exc.stream == "orders"
    assert error_message(exc) == {
        "type": "error",
        "rid": "9",
        "code": "bad_request",
        "message": "streams[0].lastEventId must be a string",
        "stream": "orders",
    }
    assert _error({"type": "nope", "rid": 4}).rid == 4
    assert _error({"type": "ping", "rid": {}}).rid is None


def test_server_messages_have_the_spec_shapes() -> None:
    assert subscribed("1", [("orders", True), ("prices", False)]) == {
        "type": "subscribed",
        "v": 1,
        "rid": "1",
        "streams": [{"stream": "orders", "recovered": True}, {"stream": "prices", "recovered": False}],
    }
    assert unsubscribed(None, ["prices"]) == {"type": "unsubscribed", "streams": ["prices"]}
    assert error("forbidden", "no", "1") == {
        "type": "error",
        "rid": "1",
        "code": "forbidden",
        "message": "no",
    }
    assert pong(123) == {"type": "pong", "ts": 123}
    assert pong("x", 5) == {"type": "pong", "ts": "x", "rid": 5}
    assert authenticated("alice") == {"type": "authenticated", "v": 1, "userId": "alice"}
    assert event_message("orders", "order:update", "1-a", {"a": 1}) == {
        "type": "event",
        "stream": "orders",
        "event": "order:update",
        "id": "1-a",
        "data": {"a": 1},
    }


def test_close_codes_are_the_spec_ones() -> None:
    assert sorted(CLOSE_CODES) == [1000, 1001, 1008, 1011, 4001, 4008, 4029]
    assert all(len(c.reason.encode()) <= 123 for c in CLOSE_CODES.values())
    assert CLOSE_CODES[4008].reconnect and not CLOSE_CODES[4001].reconnect and not CLOSE_CODES[4029].reconnect


def test_token_bucket_allows_the_rate_with_bursts_and_refills_on_the_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock, rate=50)
    assert sum(bucket.take() for _ in range(80)) == 50  # a full burst, then nothing
    assert not bucket.take()
    clock.advance(0.1)
    assert sum(bucket.take() for _ in range(10)) == 5  # 50/s for 0.1 s
    clock.advance(10)
    assert sum(bucket.take() for _ in range(100)) == 50  # never more than the burst


# -- round trip: any command, encoded by a client in either codec, parses back to itself ------------

rids = st.none() | st.text(max_size=64) | st.integers(-(2**53) + 1, 2**53 - 1)
names = st.from_regex(r"[a-z][a-z-]{0,10}(/[A-Za-z0-9._:-]{1,12})?", fullmatch=True)
symbols = st.lists(st.from_regex(r"[A-Z0-9.]{1,6}", fullmatch=True), min_size=1, max_size=5, unique=True)
stream_requests = st.builds(
    StreamRequest,
    names,
    st.none() | st.from_regex(r"[0-9]{13}-[0-9A-Za-z]{1,20}", fullmatch=True),
    st.none() | symbols.map(tuple),
    st.none() | st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True),
)
commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(Auth, st.text(min_size=1, max_size=100), rids),
    st.builds(
        Subscribe,
        st.lists(stream_requests, min_size=1, max_size=5, unique_by=lambda r: r.stream).map(tuple),
        rids,
    ),
    st.builds(Unsubscribe, st.lists(names, min_size=1, max_size=5, unique=True).map(tuple), rids),
    st.builds(
        Ping,
        st.none()
        | st.integers(0, 2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=64),
        rids,
    ),
)


def client_encoding(command: Command) -> dict[str, Any]:
    """What a client sends for `command` (the inverse of parse_command)."""
    out: dict[str, Any]
    if isinstance(command, Auth):
        out = {"type": "auth", "token": command.token}
    elif isinstance(command, Subscribe):
        streams = []
        for r in command.streams:
            item: dict[str, Any] = {"stream": r.stream}
            if r.last_event_id is not None:
                item["lastEventId"] = r.last_event_id
            if r.symbols is not None:
                item["symbols"] = list(r.symbols)
            if r.user_id is not None:
                item["userId"] = r.user_id
            streams.append(item)
        out = {"type": "subscribe", "streams": streams}
    elif isinstance(command, Unsubscribe):
        out = {"type": "unsubscribe", "streams": list(command.streams)}
    else:
        out = {"type": "ping", "ts": command.ts}
    if command.rid is not None:
        out["rid"] = command.rid
    return out


@given(commands)
def test_commands_round_trip_through_both_codecs(command: Command) -> None:
    for codec in (JSON_CODEC, MSGPACK_CODEC):
        frame = codec.encode(client_encoding(command))
        assert parse_command(codec.decode(frame if codec.binary else frame.decode())) == command


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda x: st.lists(x, max_size=3) | st.dictionaries(st.text(max_size=6), x, max_size=4),
        max_leaves=12,
    )
)
def test_any_decoded_value_parses_or_is_a_protocol_error(value: Any) -> None:
    code = None
    try:
        parse_command(value)
    except ProtocolError as exc:  # never anything else (TypeError, KeyError...)
        code = exc.code
    assert code is None or code in ERROR_CODES


def test_a_stream_may_ask_for_delta_ticks() -> None:
    command = parse_command(
        {"type": "subscribe", "streams": [{"stream": "prices", "symbols": ["AAPL"], "delta": True}]}
    )
    assert isinstance(command, Subscribe)
    request = command.streams[0]
    assert request.delta
    assert request.params() == {"delta": "1", "symbols": "AAPL"}  # what SSE's ?delta=1 resolves
    plain = parse_command({"type": "subscribe", "streams": [{"stream": "prices", "delta": False}]})
    assert isinstance(plain, Subscribe) and plain.streams[0].params() == {}


@pytest.mark.parametrize("value", [1, "true", None, [True]])
def test_delta_must_be_a_boolean(value: Any) -> None:
    exc = _error({"type": "subscribe", "rid": 3, "streams": [{"stream": "prices", "delta": value}]})
    assert (exc.code, exc.rid, exc.stream) == ("bad_request", 3, "prices")
    assert "streams[0].delta must be true or false" in exc.message
