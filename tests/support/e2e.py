"""Helpers for the end-to-end tests of tests/server: ids, requests, payload builders.

Everything here talks to a real `tickwire serve` process over real sockets; nothing
imports the server's internals except to craft tokens and event ids.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import orjson

from support.e2e_client import SSEClient
from support.servers import ServerProcess
from tickwire.wire.sse import SSEEvent

PREFIX = "/api/stream"
ID_RE = re.compile(r"^[0-9]{13}-[0-9A-Za-z]+$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")
ALLOW_HEADERS = "Content-Type, Authorization, Last-Event-ID, X-Correlation-ID"
UNAUTHORIZED_BODY = b'{"error":"Unauthorized","message":"No valid session found","statusCode":401}'
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
}


def uid(prefix: str = "u") -> str:
    """A user / strategy / symbol name no other test uses (the server is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def sym() -> str:
    """A unique ticker symbol (prices and marks are global per symbol)."""
    return "S" + uuid.uuid4().hex[:10].upper()


# -- payloads -----------------------------------------------------------------------------------


def order(
    user: str,
    order_id: str,
    symbol: str = "AAPL",
    side: str = "buy",
    qty: float = 10,
    status: str = "new",
    **extra: Any,
) -> dict[str, Any]:
    data = {"orderId": order_id, "symbol": symbol, "side": side, "qty": qty, "status": status, **extra}
    return {"type": "order:update", "user": user, "data": data}


def fill(
    user: str, order_id: str, filled_qty: float, avg: float, status: str = "filled", **extra: Any
) -> dict[str, Any]:
    data = {"orderId": order_id, "filledQty": filled_qty, "filledAvgPrice": avg, "status": status, **extra}
    return {"type": "order:fill", "user": user, "data": data}


def alert(user: str, n: int | str, level: str = "info", **extra: Any) -> dict[str, Any]:
    data = {"alertId": f"a-{n}", "level": level, "message": f"alert {n}", **extra}
    return {"type": "alert:new", "user": user, "data": data}


def price(symbol: str, value: float) -> dict[str, Any]:
    data = {"symbol": symbol, "price": value, "bid": value - 0.01, "ask": value + 0.01}
    return {"type": "price:update", "data": data}


# -- HTTP -------------------------------------------------------------------------------------------


class _Http:
    """httpx's one-shot functions without building a TLS context per call (~50 ms each):
    these tests only speak plain http."""

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The response, its body read unless it is an event stream (which would never end:
        a test expecting an error must fail, not hang, when it gets a stream)."""
        kwargs.setdefault("timeout", 10)
        with httpx.stream(method, url, verify=False, **kwargs) as response:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                response.read()
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **kwargs)


http = _Http()


def publish(server: ServerProcess, *items: dict[str, Any]) -> list[str]:
    """Publish as a publisher; the ids (like ServerProcess.publish, without its per-call TLS setup)."""
    body: object = list(items) if len(items) != 1 else items[0]
    response = post_publish(server, body)
    assert response.status_code == 200, response.text
    ids: list[str] = response.json()["ids"]
    return ids


def auth(token: str | None, headers: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(headers or {})
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def get(
    server: ServerProcess,
    path: str,
    token: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> httpx.Response:
    """A plain (non-streaming) GET; never use it on an SSE path that answers 200."""
    return http.get(server.url + path, params=params, headers=auth(token, headers), timeout=timeout)


def poll(
    server: ServerProcess,
    stream: str,
    token: str | None = None,
    *,
    timeout: float = 40,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> httpx.Response:
    """GET /api/stream/{stream}/events with the given query parameters."""
    query = {k: str(v) for k, v in params.items() if v is not None}
    return get(server, f"{PREFIX}/{stream}/events", token, params=query, headers=headers, timeout=timeout)


def post_publish(
    server: ServerProcess,
    body: Any,
    token: str | None = "publisher",
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /api/publish; `token="publisher"` means a fresh publisher token."""
    if token == "publisher":
        token = server.token("test-publisher", "publisher")
    hdrs = auth(token, {"Content-Type": "application/json", **(headers or {})})
    content = raw if raw is not None else orjson.dumps(body)
    return http.post(server.url + "/api/publish", content=content, headers=hdrs, timeout=15)


def _text(response: httpx.Response) -> str:
    try:
        return response.text[:500]
    except httpx.ResponseNotRead:
        return f"(unread {response.headers.get('content-type')} body)"


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> dict[str, Any]:
    """The SPEC 5 error shape: {"error": reason, "message": ..., "statusCode": N}, with a correlation id."""
    assert response.status_code == status, (response.status_code, _text(response))
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error", "message", "statusCode"}, body
    assert body["statusCode"] == status, body
    assert body["error"] == REASONS[status], body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    if message is not None:
        assert body["message"] == message, body
    assert response.headers.get("x-correlation-id"), response.headers
    return dict(body)


def raw_http(
    server: ServerProcess, request: bytes, *, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read one response (status, headers, body up to close or Content-Length)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        while length >= 0 and len(body) < length and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body


# -- streams ----------------------------------------------------------------------------------------


def open_stream(
    server: ServerProcess,
    path: str,
    token: str | None = None,
    *,
    initial: int = 1,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> SSEClient:
    """Open an SSE stream (path relative to /api/stream unless absolute) and wait for its first
    `initial` events (connected, then the snapshot or buffered events)."""
    full = path if path.startswith("/") else f"{PREFIX}/{path}"
    stream = SSEClient(server.url, full, token=token, headers=headers, timeout=timeout)
    assert stream.status == 200, (stream.status, stream.body_json())
    stream.read_until(initial, timeout)
    assert len(stream.events) >= initial, (full, stream.events)
    assert stream.events[0].event == "connected", stream.events
    return stream


def read_until_match(
    stream: SSEClient, predicate: Callable[[SSEEvent], bool], timeout: float = 5.0
) -> SSEEvent:
    """Read until an event satisfying `predicate` arrives; fail with what came instead."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        for event in stream.events[seen:]:
            if predicate(event):
                return event
        seen = len(stream.events)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stream.closed:
            got = [(e.event, e.data[:120]) for e in stream.events]
            raise AssertionError(f"no matching event (closed={stream.closed}); got {got}")
        stream.read_until(seen + 1, min(remaining, 0.5))


def read_until_type(
    stream: SSEClient, event_type: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> SSEEvent:
    """Read until an event of `event_type` whose data satisfies `predicate` arrives."""
    return read_until_match(stream, lambda e: e.event == event_type and predicate(e.json()), timeout)


def wait_until(check: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def types_of(events: Iterable[SSEEvent]) -> list[str]:
    return [e.event for e in events]
