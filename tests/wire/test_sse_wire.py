from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.wire.sse import KEEPALIVE, ChunkedSSECodec, GzipStream, SSECodec, SSEParser, chunk


def feed_bytewise(parser: SSEParser, data: bytes) -> list[tuple[str, str, str | None]]:
    out = []
    for i in range(len(data)):
        out += [(e.event, e.data, e.id) for e in parser.feed(data[i : i + 1])]
    return out


def test_event_frame_matches_the_spec_layout() -> None:
    event = Event("order:update", {"orderId": "ord-123"}, "user:a", Position(5, 1, 1), 1735819800000)
    frame = SSECodec(5000).event_frame(event, "orders")
    assert frame == (
        b'event: order:update\ndata: {"orderId":"ord-123"}\nid: ' + event.id.encode() + b"\nretry: 5000\n\n"  # type: ignore[union-attr]
    )


def test_a_log_event_carries_its_seq_between_data_and_id() -> None:
    event = Event("alert:new", {"m": 1}, "user:a", Position(5, 1, 1), 1735819800000)
    event.seq = 12
    frame = SSECodec(5000).event_frame(event, "alerts")
    assert frame == (
        b'event: alert:new\ndata: {"m":1}\nseq: 12\nid: ' + event.id.encode() + b"\nretry: 5000\n\n"  # type: ignore[union-attr]
    )
    (parsed,) = list(SSEParser().feed(frame))
    assert (parsed.event, parsed.seq, parsed.id) == ("alert:new", 12, event.id)


def test_parser_ignores_a_seq_that_is_not_a_number() -> None:
    assert [e.seq for e in SSEParser().feed(b"data: 1\nseq: -3\nseq: x\n\n")] == [None]
    assert [e.seq for e in SSEParser().feed(b"seq: 4\ndata: 1\n\ndata: 2\n\n")] == [4, None]


def test_events_without_position_carry_no_id_or_retry() -> None:
    event = Event("order:update", {"snapshot": True}, "user:a", None, 0)
    assert SSECodec().event_frame(event, "orders") == b'event: order:update\ndata: {"snapshot":true}\n\n'
    assert SSECodec().control_frame("connected", {"a": 1}, None) == b'event: connected\ndata: {"a":1}\n\n'


def test_parser_handles_every_line_ending_and_comments_byte_by_byte() -> None:
    stream = b": keepalive\n\nevent: a\r\ndata: 1\r\nid: x\r\n\r\nevent: b\rdata: 2\rdata: 3\r\rdata: 4\n\n"
    assert feed_bytewise(SSEParser(), stream) == [
        ("a", "1", "x"),
        ("b", "2\n3", None),
        ("message", "4", None),
    ]


def test_parser_remembers_the_last_id_for_resume() -> None:
    parser = SSEParser()
    list(parser.feed(b"id: 1\ndata: a\n\ndata: b\n\n"))
    assert parser.last_event_id == "1"
    assert parser.comments == 0
    list(parser.feed(KEEPALIVE))
    assert parser.comments == 1


texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=40)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["order:update", "price:update", "alert:new"]), st.dictionaries(texts, texts)
        ),
        max_size=8,
    ),
    st.integers(1, 17),
)
def test_codec_and_parser_round_trip_at_any_split(
    items: list[tuple[str, dict[str, str]]], split: int
) -> None:
    codec = SSECodec()
    events = [Event(t, d, "user:a", Position(3, i + 1, i + 1), 1000 + i) for i, (t, d) in enumerate(items)]
    data = b"".join(codec.event_frame(e, "s") for e in events)
    parser = SSEParser()
    got = []
    for i in range(0, len(data), split):
        got += list(parser.feed(data[i : i + split]))
    assert [(g.event, g.json(), g.id) for g in got] == [(e.type, e.data, e.id) for e in events]


def test_gzip_flushes_every_write_so_each_event_decodes_at_once() -> None:
    gz = GzipStream()
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for i in range(5):
        frame = f"event: x\ndata: {i}\n\n".encode()
        assert inflate.decompress(gz.compress(frame)) == frame
    inflate.decompress(gz.finish())
    assert inflate.eof


def test_chunked_frames_are_the_sse_frames_as_http_chunks_built_once_per_event() -> None:
    sse = SSECodec(5000)
    chunked = ChunkedSSECodec(sse)
    event = Event(
        "price:update", {"symbol": "AAPL", "price": 1.5}, "prices", Position(5, 1, 1), 1735819800000
    )
    frame = sse.event_frame(event, "prices")
    assert chunk(frame) == b"%x\r\n" % len(frame) + frame + b"\r\n"
    first = event.wire(chunked.cache_key("prices"), lambda e: chunked.event_frame(e, "prices"))
    assert first == chunk(frame)
    again = event.wire(chunked.cache_key("agents"), lambda e: chunked.event_frame(e, "agents"))
    assert again is first  # one chunk per event, shared by every stream and connection
    assert chunked.keepalive_frame() == chunk(KEEPALIVE)
    assert chunked.control_frame("connected", {"a": 1}, None) == chunk(
        sse.control_frame("connected", {"a": 1}, None)
    )
