"""WebSocket codecs: frames decode to the SPEC section 6 objects, in JSON and MessagePack,
and each event's frame is built once per (codec, stream) and shared."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.streams import StreamReader

from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection
from tickwire.core.event import Event
from tickwire.core.hub import Hub
from tickwire.core.ids import Position
from tickwire.core.streams import Stream
from tickwire.domain.catalog import STREAMS
from tickwire.wire.codecs import (
    JSON_CODEC,
    MSGPACK_CODEC,
    DecodeError,
    WSCodec,
    choose_codec,
)

CODECS = [JSON_CODEC, MSGPACK_CODEC]


def decode_frame(codec: WSCodec, frame: bytes) -> Any:
    return codec.decode(frame if codec.binary else frame.decode())


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.subprotocol)
def test_event_frame_is_the_spec_event_message(codec: WSCodec) -> None:
    event = Event(
        "order:update", {"orderId": "ord-123", "qty": 1.5}, "user:a", Position(5, 1, 1), 1735819800000
    )
    assert decode_frame(codec, codec.event_frame(event, "orders")) == {
        "type": "event",
        "stream": "orders",
        "event": "order:update",
        "id": event.id,
        "data": {"orderId": "ord-123", "qty": 1.5},
    }


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.subprotocol)
def test_events_without_a_position_and_connection_wide_controls_leave_fields_out(codec: WSCodec) -> None:
    snapshot = Event("order:update", {"snapshot": True, "orders": []}, "user:a", None, 0)
    assert decode_frame(codec, codec.event_frame(snapshot, "strategies/s1")) == {
        "type": "event",
        "stream": "strategies/s1",
        "event": "order:update",
        "data": {"snapshot": True, "orders": []},
    }
    reset = codec.control_frame("stream:reset", {"recovered": False, "reason": "x"}, "orders")
    assert decode_frame(codec, reset) == {
        "type": "event",
        "stream": "orders",
        "event": "stream:reset",
        "data": {"recovered": False, "reason": "x"},
    }
    limit = codec.control_frame("connection:limit", {"limit": 10}, None)
    assert decode_frame(codec, limit) == {"type": "event", "event": "connection:limit", "data": {"limit": 10}}
    assert codec.keepalive_frame() is None


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.subprotocol)
def test_a_log_event_carries_its_seq_after_its_id(codec: WSCodec) -> None:
    event = Event("alert:new", {"level": "error", "urgent": True}, "user:a", Position(5, 1, 1), 1)
    event.seq = 7
    decoded = decode_frame(codec, codec.event_frame(event, "alerts"))
    assert list(decoded) == ["type", "stream", "event", "id", "seq", "urgent", "data"]
    assert decoded["seq"] == 7


def test_json_frames_are_text_and_msgpack_frames_are_binary() -> None:
    assert not JSON_CODEC.binary
    assert MSGPACK_CODEC.binary
    event = Event("price:update", {"symbol": "AAPL", "price": 1.0}, "prices", Position(1, 0, 1), 1)
    JSON_CODEC.event_frame(event, "prices").decode("utf-8")  # valid UTF-8 for a text frame


def test_msgpack_frame_is_exactly_packb_of_the_message() -> None:
    event = Event("alert:new", {"message": "hi", "n": [1, None, True]}, "user:a", Position(2, 3, 4), 1)
    expected = {"type": "event", "stream": "alerts", "event": "alert:new", "id": event.id, "data": event.data}
    assert MSGPACK_CODEC.event_frame(event, "alerts") == msgpack.packb(expected)


def test_event_frames_are_encoded_once_per_codec_and_stream_and_shared() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock, throttle_s=0)
    conns = []
    for codec in (JSON_CODEC, JSON_CODEC, MSGPACK_CODEC):
        conn = Connection(
            client_id="c",
            user="a",
            transport="ws",
            codec=codec,
            clock=clock,
            outbox_limit=1 << 20,
            notify=lambda: None,
        )
        hub.add_connection(conn)
        for name in ("orders", "trading"):
            hub.subscribe(conn, Stream(name, STREAMS[name], "user:a"), name).go_live(None)
        conns.append(conn)
    event = Event("order:update", {"orderId": "o1"}, "user:a", Position(1, 1, 1), 1)
    assert hub.dispatch(event) == 6
    frames = [c.outbox.drain_frames() for c in conns]
    assert frames[0][0] is frames[1][0]  # same bytes object for two JSON subscribers of "orders"
    assert frames[0][1] is frames[1][1]
    assert frames[0][0] != frames[0][1]  # each stream name has its own frame
    assert sorted(event._wire) == ["msgpack", "wsj:orders", "wsj:trading", "wsm:orders", "wsm:trading"]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.subprotocol)
@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"[1,2",
        b"\xc1",
        b"\x81\x01\x02",
        b"\x91" * 5000 + b"\xc0",
        b"\xd4\x05\x00",
        b"{}x",
    ],
)
def test_garbage_is_a_decode_error_never_something_else(codec: WSCodec, garbage: bytes) -> None:
    frame: bytes | str = garbage if codec.binary else garbage.decode("utf-8", "replace")
    try:
        codec.decode(frame)
    except DecodeError:
        return
    # Some byte strings are valid in one of the encodings (e.g. b"\xc0" prefixes); then they decode.


def test_msgpack_refuses_text_frames_and_extension_types() -> None:
    with pytest.raises(DecodeError, match="binary"):
        MSGPACK_CODEC.decode('{"type":"ping"}')
    with pytest.raises(DecodeError, match="extension type 5"):
        MSGPACK_CODEC.decode(b"\xd4\x05\x00")
    with pytest.raises(DecodeError, match="not valid MessagePack"):
        MSGPACK_CODEC.decode(b"\x91" * 5000 + b"\xc0")  # nesting too deep


def test_json_nesting_too_deep_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="not valid JSON"):
        JSON_CODEC.decode("[" * 2000 + "]" * 2000)


def test_subprotocol_choice() -> None:
    assert choose_codec([]) is JSON_CODEC
    assert choose_codec(["tickwire.msgpack"]) is MSGPACK_CODEC
    assert choose_codec(["other", "tickwire.msgpack", "tickwire.json"]) is MSGPACK_CODEC
    assert choose_codec(["tickwire.json", "tickwire.msgpack"]) is JSON_CODEC
    assert choose_codec(["graphql-ws"]) is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
stream_names = st.sampled_from(["orders", "prices", "strategies/s-1", "trading", "agents"])
event_types = st.sampled_from(["order:update", "price:update", "alert:new", "strategy:update"])


@given(
    data=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    stream=stream_names,
    type_=event_types,
    pos=st.none()
    | st.builds(Position, st.integers(1, 2**40 - 1), st.integers(0, 2**48 - 1), st.integers(0, 2**48 - 1)),
    seq=st.none() | st.integers(1, 2**53),
)
def test_event_frames_round_trip_in_both_codecs(
    data: dict[str, Any], stream: str, type_: str, pos: Position | None, seq: int | None
) -> None:
    event = Event(type_, data, "user:a", pos, 1735819800000)
    event.seq = seq
    expected: dict[str, Any] = {"type": "event", "stream": stream, "event": type_}
    if event.id is not None:
        expected["id"] = event.id
    if seq is not None:
        expected["seq"] = seq
    expected["data"] = data
    for codec in CODECS:
        decoded = decode_frame(codec, codec.event_frame(event, stream))
        assert decoded == expected
        assert list(decoded) == list(expected)  # same field order in both encodings
    assert orjson.loads(JSON_CODEC.event_frame(event, stream)) == msgpack.unpackb(
        MSGPACK_CODEC.event_frame(event, stream)
    )


@given(message=st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_messages_round_trip_in_both_codecs(message: dict[str, Any]) -> None:
    for codec in CODECS:
        encoded = codec.encode(message)
        assert decode_frame(codec, encoded) == message


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("binary", [False, True])
def test_prebuilt_frames_parse_as_one_final_unmasked_frame(size: int, binary: bool) -> None:
    from websockets.frames import Frame, Opcode

    from tickwire.wire.codecs import ws_frame, ws_payload

    payload = bytes(i % 251 for i in range(size))
    frame = ws_frame(payload, binary)
    reader = StreamReader()
    reader.feed_data(frame)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        parsed = done.value
    assert parsed.fin
    assert parsed.opcode is (Opcode.BINARY if binary else Opcode.TEXT)
    assert parsed.data == payload
    assert ws_payload(frame) == payload
