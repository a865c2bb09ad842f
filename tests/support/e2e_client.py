"""An SSE client over a raw socket, for end-to-end tests.

It owns the socket (http.client's socket file refuses to read again after a timeout):
it waits with `select`, decodes chunked transfer coding and gzip itself, and feeds the
tickwire SSE parser, so a quiet period never ends a stream.
"""

from __future__ import annotations

import select
import socket
import time
import zlib
from typing import Any

import orjson

from tickwire.wire.sse import SSEEvent, SSEParser


class _Chunked:
    """Incremental decoder of HTTP/1.1 chunked transfer coding."""

    def __init__(self) -> None:
        self.buf = b""
        self.left = -1  # bytes left in the current chunk; -1 = expecting a size line
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = []
        while not self.done:
            if self.left < 0:  # a size line
                line_end = self.buf.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(self.buf[:line_end].split(b";")[0], 16)
                self.buf = self.buf[line_end + 2 :]
                if size == 0:
                    self.done = True
                    break
                self.left = size
            elif self.left > 0:  # chunk data
                if not self.buf:
                    break
                take = self.buf[: self.left]
                out.append(take)
                self.buf = self.buf[len(take) :]
                self.left -= len(take)
            else:  # the CRLF after a chunk
                if len(self.buf) < 2:
                    break
                self.buf = self.buf[2:]
                self.left = -1
        return b"".join(out)


class SSEClient:
    """GET a stream and read its events with timeouts (never hangs a test)."""

    def __init__(
        self,
        base_url: str,
        path: str,
        *,
        token: str | None = None,
        cookie: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
        method: str = "GET",
    ) -> None:
        host, _, port = base_url.removeprefix("http://").partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        all_headers = {"Host": f"{host}:{port}", "Accept": "text/event-stream", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if cookie:
            all_headers["Cookie"] = cookie
        request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items())
        self.sock.sendall(request.encode("latin-1") + b"\r\n")
        self.parser = SSEParser()
        self.events: list[SSEEvent] = []
        self.raw = b""
        self.body = b""
        self.closed = False
        self._pending = b""
        self._read_head(timeout)
        self._chunked = _Chunked() if self.headers.get("transfer-encoding", "").lower() == "chunked" else None
        self._length = int(self.headers["content-length"]) if "content-length" in self.headers else None
        gz = self.headers.get("content-encoding") == "gzip"
        self._gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS) if gz else None
        if self._pending:
            data, self._pending = self._pending, b""
            self._consume(data)

    def _read_head(self, timeout: float) -> None:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no response head")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed before the response head: {data!r}")
            data += chunk
        head, _, self._pending = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers else value

    def _consume(self, data: bytes) -> None:
        if self._chunked is not None:
            data = self._chunked.feed(data)
            if self._chunked.done:
                self.closed = True
        elif self._length is not None:
            data = data[: self._length - len(self.body)]
        self.body += data
        if self._length is not None and len(self.body) >= self._length:
            self.closed = True
        if self._gunzip is not None:
            data = self._gunzip.decompress(data)
        self.raw += data
        self.events.extend(self.parser.feed(data))

    def _read_some(self, timeout: float) -> bool:
        """Read what arrives within `timeout`; False once the stream has ended."""
        if self.closed:
            return False
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            return True
        try:
            chunk = self.sock.recv(262144)
        except OSError:
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        self._consume(chunk)
        return not self.closed

    def body_json(self, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read_some(deadline - time.monotonic())
        return orjson.loads(self.body)

    def read_until(self, count: int, timeout: float = 5.0) -> list[SSEEvent]:
        """Wait until at least `count` events arrived in total (or the timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._read_some(remaining)
        return self.events

    def wait_for(self, event_type: str, timeout: float = 5.0) -> SSEEvent | None:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.event == event_type:
                    return event
            seen = len(self.events)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                return None
            self._read_some(remaining)

    def read_for(self, seconds: float) -> list[SSEEvent]:
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            self._read_some(deadline - time.monotonic())
        return self.events

    def wait_closed(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read_some(deadline - time.monotonic())
        return self.closed

    def of_type(self, event_type: str) -> list[SSEEvent]:
        return [e for e in self.events if e.event == event_type]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SSEClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
