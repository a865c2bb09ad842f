"""Server-Sent Events: framing (SPEC section 3), per-connection gzip, and a parser.

The parser is incremental (fed any split of the byte stream) and follows the
WHATWG rules: LF, CRLF or CR line ends, `data` lines joined with LF, comments
ignored, an event dispatched at a blank line.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from tickwire.core.event import Event

KEEPALIVE = b": keepalive\n\n"


def chunk(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk (never the last, empty one)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def _field(value: str) -> bytes:
    # Event names and ids never contain line breaks in our catalogue; strip any.
    return value.replace("\r", "").replace("\n", "").encode()


class SSECodec:
    """Frames for SSE connections; the same bytes serve every stream of a log."""

    name = "sse"

    def __init__(self, retry_ms: int = 5000) -> None:
        self._retry = b"retry: %d\n\n" % retry_ms

    def cache_key(self, stream: str) -> str:
        return "sse"

    def event_frame(self, event: Event, stream: str) -> bytes:
        # Built once per event (Event.wire caches it) and shared by every subscriber.
        return self.frame(event.type, event.json, event.id, event.seq)

    def frame(self, type_: str, data: bytes, event_id: str | None, seq: int | None = None) -> bytes:
        """The frame of an event given by its parts (type, payload as JSON, id, and for a log
        event its `seq`, a field EventSource ignores): also what the replay server
        (client/replay.py) serves recorded events with."""
        head = b"event: " + _field(type_) + b"\ndata: " + data
        if event_id is None:
            return head + b"\n\n"
        if seq is not None:
            head += b"\nseq: %d" % seq
        return head + b"\nid: " + _field(event_id) + b"\n" + self._retry

    def control_frame(self, type_: str, data: dict[str, Any], stream: str | None) -> bytes:
        return b"event: " + _field(type_) + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def keepalive_frame(self) -> bytes | None:
        return KEEPALIVE


class ChunkedSSECodec:
    """SSE frames as HTTP/1.1 chunks, for the native driver (drivers/native.py): an event's
    chunk is built once, from its SSE frame, and shared; any run of them is a valid body."""

    name = "sse"

    def __init__(self, sse: SSECodec) -> None:
        self._sse = sse
        self._keepalive = chunk(KEEPALIVE)

    def cache_key(self, stream: str) -> str:
        return "sse-chunk"

    def event_frame(self, event: Event, stream: str) -> bytes:
        return chunk(event.wire("sse", self._encode_sse))

    def _encode_sse(self, event: Event) -> bytes:
        return self._sse.event_frame(event, "")

    def control_frame(self, type_: str, data: dict[str, Any], stream: str | None) -> bytes:
        return chunk(self._sse.control_frame(type_, data, stream))

    def keepalive_frame(self) -> bytes | None:
        return self._keepalive


class GzipStream:
    """gzip (level 6) for one response, flushed after every write so nothing waits."""

    def __init__(self, level: int = 6) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def compress(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._z.flush(zlib.Z_FINISH)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str
    id: str | None
    retry: int | None = None
    seq: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


class SSEParser:
    """Incremental SSE parser: `feed(bytes)` yields the events completed so far."""

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._seq: int | None = None
        self._pending_cr = False
        self.last_event_id: str | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> Iterator[SSEEvent]:
        buf = self._buf + chunk
        if self._pending_cr and buf.startswith(b"\n"):
            buf = buf[1:]
        self._pending_cr = False
        start = 0
        n = len(buf)
        while True:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start)
            if lf < 0 and cr < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                end, nxt = cr, cr + 1
                if nxt < n and buf[nxt : nxt + 1] == b"\n":
                    nxt += 1
                elif nxt == n:
                    self._pending_cr = True
            else:
                end, nxt = lf, lf + 1
            line = buf[start:end].decode("utf-8", "replace")
            start = nxt
            event = self._line(line)
            if event is not None:
                yield event
        self._buf = buf[start:]

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data:
                self._event, self._id, self._seq = "", None, None
                return None
            event = SSEEvent(
                self._event or "message", "\n".join(self._data), self._id, self._retry, self._seq
            )
            self._event, self._data, self._id, self._retry, self._seq = "", [], None, None, None
            return event
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        elif name == "seq" and value.isdigit():
            self._seq = int(value)
        return None
