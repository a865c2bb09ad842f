"""Fuzzing of every parser, in-process: whatever the input, a parser returns a value or
raises the one documented error type of tickwire.errors, never anything else.

    event ids ................... tickwire.core.ids.parse_id        -> MalformedId
    SSE ......................... tickwire.wire.sse.SSEParser       -> never raises, any split
    WebSocket frames ............ codecs' decode + wire.ws.parse_command -> DecodeError / ProtocolError
    `?streams=` of a WebSocket .. server.ws.endpoint.query_subscription  -> ProtocolError
    publish bodies .............. pipeline Validator, then the node's pipeline -> PublishError
    `limit`, `wait` ............. wire.poll                          -> Refused (400)
    stream paths and parameters . the catalogue's resolve            -> StreamError
    credentials and headers ..... server.auth, server.http, server.sse -> never raise
    configuration ............... config.load_settings (YAML file, env) -> ConfigError

Example counts: tests/support/fuzzing.py (small in `make test`, large in `make fuzz`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from support.fuzzing import (
    Nested,
    budget,
    commands,
    event_ids,
    json_like,
    msgpack_values,
    numbers,
    outcome,
    pack,
    packed_commands,
    publish_bodies,
    stream_paths,
    texts,
)
from tickwire.codes import ERROR_CODES
from tickwire.config import Settings, load_settings
from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection
from tickwire.core.ids import EPOCH_MAX, format_id, parse_id
from tickwire.core.streams import ANONYMOUS, Principal
from tickwire.domain.catalog import catalog
from tickwire.errors import (
    ConfigError,
    DecodeError,
    MalformedId,
    ProtocolError,
    PublishError,
    Refused,
    StreamError,
)
from tickwire.node import Node
from tickwire.pipeline import Validator
from tickwire.server.auth import cookie_allowed, token_from_headers, verify_token, websocket_token
from tickwire.server.http import correlation_id, cors_headers
from tickwire.server.sse import accepts_gzip
from tickwire.server.ws.endpoint import query_subscription
from tickwire.wire.codecs import JSON_CODEC, MSGPACK_CODEC
from tickwire.wire.poll import poll_limit, poll_wait
from tickwire.wire.sse import SSECodec, SSEParser
from tickwire.wire.ws import Ping, error_message, parse_command, pong

SECRET = "s" * 32
SETTINGS = load_settings(env={"TICKWIRE_SECRET": SECRET})


# -- event ids -----------------------------------------------------------------------------------


@budget(300)
@given(event_ids)
@example("9999999999999-" + "z" * 32)
@example("0000000000000-0")
@example("1735819800000-" + "1" * 33)
def test_event_ids_parse_or_raise_malformed_id(text: str) -> None:
    try:
        pos = parse_id(text)
    except MalformedId:
        return
    assert 0 < pos.epoch <= EPOCH_MAX
    assert 0 <= pos.offset < 2**48 and 0 <= pos.tick < 2**48
    assert parse_id(format_id(int(text[:13]), pos)) == pos  # what it names, it names again


# -- SSE -----------------------------------------------------------------------------------------

sse_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"",
                b":",
                b": keepalive",
                b"data",
                b"data:",
                b"data: x",
                b"id: 1",
                b"id",
                b"id:\x00z",
                b"retry: 10",
            ]
        ),
        st.sampled_from([b"event: ", b"data: ", b"id: ", b"retry: ", b": ", b"x: "]).flatmap(
            lambda head: st.binary(max_size=20).map(lambda tail: head + tail)
        ),
        st.binary(max_size=30),
    ),
    max_size=20,
)
line_ends = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    lines = draw(sse_lines)
    return b"".join(line + draw(line_ends) for line in lines) + draw(st.binary(max_size=10))


def parse_all(chunks: list[bytes]) -> tuple[list[tuple[str, str, str | None, int | None]], str | None]:
    parser = SSEParser()
    out = []
    for chunk in chunks:
        out += [(e.event, e.data, e.id, e.retry) for e in parser.feed(chunk)]
    return out, parser.last_event_id


@budget(300)
@given(sse_streams(), st.lists(st.integers(0, 400), max_size=12))
@example(b"data: a\r", [8])  # a CR at the end of one chunk, its LF in the next
@example(b"data: \xe2\x82\xac\n\n", [7])  # a UTF-8 character split across chunks
def test_sse_parser_takes_any_bytes_at_any_split(data: bytes, cuts: list[int]) -> None:
    whole = parse_all([data])
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert parse_all(chunks) == whole
    assert parse_all([bytes([b]) for b in data]) == whole


# -- WebSocket -----------------------------------------------------------------------------------


def check_frame(codec: Any, frame: bytes | str) -> None:
    """One client frame: a command the server can answer, or an error it can send."""
    command, error = outcome(lambda: parse_command(codec.decode(frame)), (DecodeError, ProtocolError))
    if isinstance(error, ProtocolError):
        assert error.code in ERROR_CODES, error.code
        for c in (JSON_CODEC, MSGPACK_CODEC):
            c.encode(error_message(error))  # the answer can be sent in either encoding
    elif isinstance(error, DecodeError):
        assert str(error)
    elif isinstance(command, Ping):
        codec.encode(pong(command.ts, command.rid))


def to_json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits: spelt out, as a client could
        return repr(value) if not isinstance(value, dict | list) else "{}"


@budget(150)
@given(commands)
def test_ws_json_commands_parse_or_answer_an_error(value: Any) -> None:
    check_frame(JSON_CODEC, to_json_text(value))


@budget(200)
@given(
    st.one_of(st.text(max_size=200), st.binary(max_size=200), st.just("[" * 5000), st.just('{"a":' * 3000))
)
@example('{"type":"ping","type":"subscribe","streams":["orders"]}')  # a duplicated key
@example('{"type":"ping","ts":1e999}')
@example('{"type":"ping","ts":123456789012345678901234567890}')
@example(b'{"type":"ping","ts":"\xff"}')
def test_ws_json_frames_of_any_text(frame: str | bytes) -> None:
    check_frame(JSON_CODEC, frame)


@budget(300)
@given(st.one_of(packed_commands, msgpack_values.map(pack), st.binary(max_size=200)))
@example(b"\xc1")  # never used
@example(b"\xd4\x01\x00")  # an extension type
@example(b"\x81\x01\x02")  # an integer map key
@example(b"\x91" * 5000)  # deep nesting
@example(b"\xdd\xff\xff\xff\xff")  # an array claiming 4 billion items
@example(pack({"type": "ping"}) + b"\x00")  # trailing bytes
def test_ws_msgpack_frames_of_any_bytes(frame: bytes) -> None:
    check_frame(MSGPACK_CODEC, frame)
    with pytest.raises(DecodeError):
        MSGPACK_CODEC.decode(frame.decode("latin-1"))  # text frames are refused


@budget(200)
@given(st.one_of(st.binary(max_size=120), st.text(max_size=120).map(str.encode)))
@example(b"streams=prices&symbols=" + b",".join(b"S%d" % i for i in range(300)))
@example(b"streams=%ff%fe&symbols=%00")
@example(b"streams=orders,orders")
def test_ws_query_subscription_is_a_subscribe_or_a_protocol_error(raw: bytes) -> None:
    _, error = outcome(lambda: query_subscription(raw, catalog(), SETTINGS), ProtocolError)
    assert error is None or error.code in ERROR_CODES


# -- publish bodies ------------------------------------------------------------------------------


@budget(150)
@given(publish_bodies)
def test_publish_bodies_validate_or_raise_publish_error(body: Any) -> None:
    requests, error = outcome(lambda: Validator().parse_body(body), PublishError)
    assert requests or str(error)


class Reading:
    """A node on the memory broker, kept across examples (state accumulates, as it would),
    with a reader on every stream of u1 and u2 and on the public ones, so that everything
    published is also encoded and queued for delivery."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.node = Node(SETTINGS, clock=FakeClock())
        self.run(self.node.start())
        self.conns: list[Connection] = []
        for user in ("u1", "u2"):
            for path in ("alerts", "orders", "positions", "trading", "ai-decisions"):
                self.attach(user, path)
        for path in ("prices", "agents"):
            self.attach(None, path)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def attach(self, user: str | None, path: str) -> None:
        conn = Connection(
            client_id=f"{user}-{path}",
            user=user,
            transport="sse",
            codec=SSECodec(),
            clock=self.node.clock,
            outbox_limit=1 << 24,
            notify=lambda: None,
        )
        self.node.sessions.register(conn)
        principal = Principal(user) if user is not None else ANONYMOUS
        self.run(self.node.sessions.attach(conn, catalog().resolve(path, {}, principal), None))
        self.conns.append(conn)

    def publish(self, body: Any) -> list[str | None]:
        ids: list[str | None] = self.run(self.node.pipeline.publish_body(body))
        for conn in self.conns:
            assert not conn.closing, (conn.client_id, conn.close_reason)
            list(SSEParser().feed(conn.outbox.drain()))  # what was queued is valid SSE
        return ids

    def close(self) -> None:
        self.run(self.node.stop())
        self.run(self.loop.shutdown_asyncgens())
        self.loop.close()


@pytest.fixture(scope="module")
def reading() -> Iterator[Reading]:
    node = Reading()
    yield node
    node.close()


@budget(300)
@given(publish_bodies)
@example(
    {
        "type": "order:fill",
        "user": "u1",
        "data": {"orderId": "o", "filledQty": 1e308, "filledAvgPrice": 1e308},
    }
)
@example(
    [
        {
            "type": "order:update",
            "user": "u1",
            "data": {"orderId": "x", "symbol": "S", "side": "buy", "qty": 2**70},
        }
    ]
)
@example(
    {
        "type": "position:update",
        "user": "u1",
        "data": {"symbol": "S", "quantity": 1e308, "currentPrice": 1e308},
    }
)
@example({"type": "price:update", "data": {"symbol": "S", "price": 1e308}})
@example({"type": "alert:new", "user": "u1", "data": {"message": "m", "extra": Nested(300)}})
@example({"type": "agent:status", "data": {"agentId": "a", "nested": Nested(2000)}})
def test_the_pipeline_publishes_or_refuses_any_body(reading: Reading, body: Any) -> None:
    ids, error = outcome(lambda: reading.publish(body), PublishError)
    assert ids or str(error)
    for event_id in ids or ():
        assert event_id is None or parse_id(event_id)


@budget(200)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
@example(b'{"type":"alert:new","type":"price:update","data":{"symbol":"S","price":1}}')
@example(b'{"type":"price:update","data":{"symbol":"S","price":NaN}}')
@example(b'{"type":"price:update","data":{"symbol":"S","price":1e400}}')
@example(b'{"type":"price:update","data":{"symbol":"S","price":123456789012345678901234567890}}')
@example(b'{"type":"alert:new","user":"u\xff","data":{"message":"\xed\xa0\x80"}}')
@example(b"[" * 100_000)
def test_the_pipeline_takes_any_json_text(reading: Reading, raw: bytes) -> None:
    body, error = outcome(lambda: orjson.loads(raw), orjson.JSONDecodeError)
    if error is None:  # else the endpoint answers 400 (tests/fuzz/test_fuzz_http.py)
        outcome(lambda: reading.publish(body), PublishError)


# -- poll parameters, streams, headers -------------------------------------------------------------

params = st.one_of(
    st.none(), texts, numbers.map(str), st.sampled_from(["1", "0", "-1", "1000", "1001", "1e3", "0.5"])
)


@budget(300)
@given(params, params)
@example("1_0", "3_0")
@example("nan", "inf")
@example(" 5 ", "\u0665")  # an Arabic-Indic digit: int() and float() read it
def test_poll_limit_and_wait_are_numbers_or_400(limit: str | None, wait: str | None) -> None:
    value, error = outcome(lambda: poll_limit(limit, 100, 1000), Refused)
    assert (error is not None and error.status == 400) or (value is not None and 1 <= value <= 1000)
    seconds, error = outcome(lambda: poll_wait(wait, 30.0), Refused)
    assert (error is not None and error.status == 400) or (seconds is not None and 0 <= seconds <= 30)


principals = st.sampled_from([ANONYMOUS, Principal("u1"), Principal("admin", frozenset({"admin"}))])


@budget(300)
@given(
    stream_paths,
    st.dictionaries(st.sampled_from(["symbols", "userId", "lastEventId", "x"]), texts, max_size=3),
    principals,
)
@example("prices", {"symbols": ",".join(f"S{i}" for i in range(201))}, ANONYMOUS)
@example("trading", {"userId": "../u2"}, Principal("admin", frozenset({"admin"})))
@example("strategies/" + "s" * 200, {}, Principal("u1"))
def test_streams_resolve_or_raise_stream_error(
    path: str, query: dict[str, str], principal: Principal
) -> None:
    stream, error = outcome(lambda: catalog().resolve(path, query, principal), StreamError)
    if error is not None:
        assert error.status in (400, 401, 403, 404), error.status
        assert error.message
    else:
        assert stream is not None and stream.log


header_values = st.one_of(texts, st.binary(max_size=80).map(lambda b: b.decode("latin-1")))
header_names = st.sampled_from(
    ["authorization", "cookie", "origin", "host", "x-correlation-id", "accept-encoding"]
)


@budget(300)
@given(st.dictionaries(header_names, header_values, max_size=6))
@example({"authorization": "Bearer " + "x" * 10_000})
@example({"cookie": 'session="unterminated; a=b'})
@example({"cookie": "session=" + "a" * 9000})
@example({"origin": "http://[::1", "host": "h"})
@example({"accept-encoding": "gzip;q=1e999, gzip;q=nan"})
def test_credentials_and_headers_never_raise(headers: dict[str, str]) -> None:
    token = token_from_headers(headers)
    assert verify_token(SECRET, token or "") is None  # nothing here is signed with the secret
    websocket_token(headers, SETTINGS)
    cookie_allowed(headers, SETTINGS)
    assert correlation_id(headers)
    cors_headers(SETTINGS, headers.get("origin"), "GET, OPTIONS")
    accepts_gzip(headers.get("accept-encoding", ""))


# -- configuration -------------------------------------------------------------------------------

setting_names = st.sampled_from(sorted(Settings.model_fields))
yaml_values = st.one_of(json_like, st.lists(texts, max_size=3), texts)


@st.composite
def yaml_texts(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:  # settings with values of any type
        mapping = draw(st.dictionaries(st.one_of(setting_names, texts), yaml_values, max_size=5))
        try:
            return yaml.safe_dump(mapping, allow_unicode=True).encode()
        except yaml.YAMLError:
            return b""
    if kind == 1:  # a line per setting, as a person writes it
        lines = draw(st.lists(st.tuples(setting_names, texts), max_size=5))
        return "\n".join(f"{k}: {v}" for k, v in lines).encode("utf-8", "surrogatepass")
    if kind == 2:
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=200))


@budget(100)
@given(yaml_texts())
@example(b"port: \xff\xfe")  # not UTF-8
@example(b"\xef\xbb\xbfport: 1")  # a byte order mark
@example(b"port: !!python/object/apply:os.system ['true']")
@example(b"a: &a [*a]")
@example(b"[" * 5000)
@example(b"? [a, b]\n: 1")
@example(b"port: .inf\nthrottle_ms: .nan\nuser_buffer: 1e999")
@example(b"cors_origins: {a: 1}")
@example(b"secret: short")
@example(b"1: 2\nnull: 3")
def test_yaml_configuration_loads_or_raises_config_error(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    path: Path = tmp_path_factory.mktemp("cfg") / "tickwire.yaml"
    path.write_bytes(raw)
    settings, error = outcome(lambda: load_settings(file=path, env={"TICKWIRE_SECRET": SECRET}), ConfigError)
    assert isinstance(settings, Settings) or str(error)


@budget(200)
@given(st.dictionaries(setting_names, st.one_of(texts, numbers.map(str)), max_size=4))
@example({"port": "99999999999999999999999"})
@example({"keepalive_s": "nan"})
@example({"throttle_ms": "1e3"})
@example({"cors_origins": ",,,"})
@example({"prefix": "/"})
def test_environment_values_load_or_raise_config_error(values: dict[str, str]) -> None:
    env = {"TICKWIRE_SECRET": SECRET} | {f"TICKWIRE_{k.upper()}": v for k, v in values.items()}
    settings, error = outcome(lambda: load_settings(env=env), ConfigError)
    assert isinstance(settings, Settings) or str(error)
