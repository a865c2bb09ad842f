"""A small blocking SSE client over a real socket, for end-to-end tests."""

from __future__ import annotations

import http.client
import time
import zlib
from typing import Any

import orjson

from tickwire.wire.sse import SSEEvent, SSEParser


class SSEStream:
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
    ) -> None:
        host_port = base_url.removeprefix("http://")
        host, _, port = host_port.partition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        all_headers = {"Accept": "text/event-stream", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if cookie:
            all_headers["Cookie"] = cookie
        self.conn.request("GET", path, headers=all_headers)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.parser = SSEParser()
        self.events: list[SSEEvent] = []
        self.raw = b""
        self.closed = False
        gz = self.headers.get("content-encoding") == "gzip"
        self._gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS) if gz else None

    def body_json(self) -> Any:
        return orjson.loads(self.response.read())

    def _read_some(self, timeout: float) -> bool:
        """Read what arrives within `timeout`; False at end of stream."""
        sock = self.conn.sock
        if sock is None:
            self.closed = True
            return False
        sock.settimeout(timeout)
        try:
            chunk = self.response.read1(65536)
        except TimeoutError:
            return True
        except (http.client.IncompleteRead, ConnectionError, OSError):
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        if self._gunzip is not None:
            chunk = self._gunzip.decompress(chunk)
        self.raw += chunk
        self.events.extend(self.parser.feed(chunk))
        return True

    def read_until(self, count: int, timeout: float = 5.0) -> list[SSEEvent]:
        """Wait until at least `count` events arrived in total (or the timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._read_some(min(remaining, 0.5))
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
            self._read_some(min(remaining, 0.5))

    def read_for(self, seconds: float) -> list[SSEEvent]:
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            self._read_some(max(0.01, min(0.2, deadline - time.monotonic())))
        return self.events

    def wait_closed(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read_some(min(0.5, max(0.01, deadline - time.monotonic())))
        return self.closed

    def of_type(self, event_type: str) -> list[SSEEvent]:
        return [e for e in self.events if e.event == event_type]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SSEStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
