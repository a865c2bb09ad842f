"""WebSocket codecs: one message model, two encodings, chosen by subprotocol.

- `tickwire.json` (the default): JSON in text frames, via orjson.
- `tickwire.msgpack`: the same objects in MessagePack, in binary frames.

Both implement the core's `FrameCodec`. An event's frame for one stream is built once
per (codec, stream name) and cached on the event by `Subscription`, so every subscriber
writes the same bytes. The frame is assembled from bytes the event already holds: the
JSON codec concatenates around `event.json` (the payload encoded once for every
transport); the MessagePack codec packs the payload once per event and concatenates a
map header and the envelope fields around it (MessagePack maps are a header followed by
their keys and values, so the result is exactly `packb(message)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgpack
import orjson

from tickwire.core.event import Event
from tickwire.errors import DecodeError
from tickwire.wire.ws import event_message

__all__ = [
    "CODECS",
    "JSON_CODEC",
    "MSGPACK_CODEC",
    "DecodeError",
    "FramedCodec",
    "JSONCodec",
    "MsgpackCodec",
    "WSCodec",
    "choose_codec",
    "ws_frame",
    "ws_payload",
]

JSON_SUBPROTOCOL = "tickwire.json"
MSGPACK_SUBPROTOCOL = "tickwire.msgpack"


class WSCodec(Protocol):
    """A `FrameCodec` that also encodes replies and decodes client messages."""

    name: str
    subprotocol: str
    binary: bool  # binary frames (True) or text frames (False)

    def cache_key(self, stream: str) -> str: ...

    def event_frame(self, event: Event, stream: str) -> bytes: ...

    def control_frame(self, type_: str, data: dict[str, Any], stream: str | None) -> bytes: ...

    def keepalive_frame(self) -> bytes | None: ...

    def encode(self, message: Mapping[str, Any]) -> bytes: ...

    def decode(self, frame: bytes | str) -> Any: ...


class JSONCodec:
    name = "ws-json"
    subprotocol = JSON_SUBPROTOCOL
    binary = False

    def cache_key(self, stream: str) -> str:
        return "wsj:" + stream

    def event_frame(self, event: Event, stream: str) -> bytes:
        head = b'{"type":"event","stream":' + orjson.dumps(stream) + b',"event":' + orjson.dumps(event.type)
        if event.id is not None:
            head += b',"id":' + orjson.dumps(event.id)
        if event.seq is not None:
            head += b',"seq":%d' % event.seq
        if event.urgent:  # SPEC 6: error-level alerts say so in the envelope
            head += b',"urgent":true'
        return head + b',"data":' + event.json + b"}"

    def control_frame(self, type_: str, data: dict[str, Any], stream: str | None) -> bytes:
        return orjson.dumps(event_message(stream, type_, None, data))

    def keepalive_frame(self) -> bytes | None:
        return None  # WebSocket ping frames keep the connection alive

    def encode(self, message: Mapping[str, Any]) -> bytes:
        return orjson.dumps(message)

    def decode(self, frame: bytes | str) -> Any:
        try:
            return orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not valid JSON: {exc}") from None


_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_KEY_TYPE_EVENT = _packb("type") + _packb("event")
_KEY_STREAM = _packb("stream")
_KEY_EVENT = _packb("event")
_KEY_ID = _packb("id")
_KEY_DATA = _packb("data")
_KEY_URGENT = _packb("urgent") + _packb(True)
_KEY_SEQ = _packb("seq")
_DATA_FORMAT = "msgpack"


def _pack_data(event: Event) -> bytes:
    return bytes(_packb(event.data))


def _reject_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"MessagePack extension type {code} is not part of the protocol")


class MsgpackCodec:
    name = "ws-msgpack"
    subprotocol = MSGPACK_SUBPROTOCOL
    binary = True

    def cache_key(self, stream: str) -> str:
        return "wsm:" + stream

    def event_frame(self, event: Event, stream: str) -> bytes:
        data = event.wire(_DATA_FORMAT, _pack_data)  # the payload, packed once per event
        has_id = event.id is not None
        has_seq = event.seq is not None
        out = bytearray(((0x84 + has_id + has_seq + event.urgent),))  # a fixmap of 4 to 7 entries
        out += _KEY_TYPE_EVENT
        out += _KEY_STREAM
        out += _packb(stream)
        out += _KEY_EVENT
        out += _packb(event.type)
        if event.id is not None:
            out += _KEY_ID
            out += _packb(event.id)
        if event.seq is not None:
            out += _KEY_SEQ
            out += _packb(event.seq)
        if event.urgent:
            out += _KEY_URGENT
        out += _KEY_DATA
        out += data
        return bytes(out)

    def control_frame(self, type_: str, data: dict[str, Any], stream: str | None) -> bytes:
        return self.encode(event_message(stream, type_, None, data))

    def keepalive_frame(self) -> bytes | None:
        return None

    def encode(self, message: Mapping[str, Any]) -> bytes:
        return bytes(_packb(message))

    def decode(self, frame: bytes | str) -> Any:
        if isinstance(frame, str):
            raise DecodeError("tickwire.msgpack takes binary frames")
        try:
            return msgpack.unpackb(frame, raw=False, strict_map_key=True, ext_hook=_reject_ext)
        except DecodeError:
            raise
        except Exception as exc:  # FormatError, StackError, ExtraData, UnicodeDecodeError, ...
            raise DecodeError(f"not valid MessagePack: {type(exc).__name__} {exc}".strip()) from None


JSON_CODEC = JSONCodec()
MSGPACK_CODEC = MsgpackCodec()
CODECS: dict[str, WSCodec] = {c.subprotocol: c for c in (JSON_CODEC, MSGPACK_CODEC)}


def choose_codec(offered: list[str]) -> WSCodec | None:
    """The codec of the first offered subprotocol we speak; JSON when none was offered;
    None when subprotocols were offered and none is ours."""
    if not offered:
        return JSON_CODEC
    for name in offered:
        codec = CODECS.get(name)
        if codec is not None:
            return codec
    return None


def ws_frame(payload: bytes, binary: bool) -> bytes:
    """One complete, unmasked RFC 6455 server frame (FIN set, no extension)."""
    opcode = 0x82 if binary else 0x81
    n = len(payload)
    if n < 126:
        return bytes((opcode, n)) + payload
    if n < 65536:
        return bytes((opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((opcode, 127)) + n.to_bytes(8, "big") + payload


def ws_payload(frame: bytes) -> bytes:
    """The payload of a frame made by `ws_frame`."""
    n = frame[1]
    return frame[2 + (2 if n == 126 else 8 if n == 127 else 0) :]


class FramedCodec:
    """A codec whose frames are complete WebSocket frames, header included.

    With no per-connection extension (permessage-deflate) the header of a frame depends
    only on its payload, so the whole frame is built once per event and stream and the
    same bytes are written to every subscriber's socket.
    """

    def __init__(self, inner: WSCodec) -> None:
        self.inner = inner
        self.name = inner.name
        self.subprotocol = inner.subprotocol
        self.binary = inner.binary

    def cache_key(self, stream: str) -> str:
        return "framed:" + self.inner.cache_key(stream)

    def event_frame(self, event: Event, stream: str) -> bytes:
        return ws_frame(self.inner.event_frame(event, stream), self.binary)

    def control_frame(self, type_: str, data: dict[str, Any], stream: str | None) -> bytes:
        return ws_frame(self.inner.control_frame(type_, data, stream), self.binary)

    def keepalive_frame(self) -> bytes | None:
        return None

    def encode(self, message: Mapping[str, Any]) -> bytes:
        return ws_frame(self.inner.encode(message), self.binary)

    def decode(self, frame: bytes | str) -> Any:
        return self.inner.decode(frame)
