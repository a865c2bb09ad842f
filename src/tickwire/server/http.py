"""HTTP plumbing shared by every endpoint: error bodies, CORS, correlation ids, request bodies.

A request whose body the server refuses (413) or answers before reading (401, 404...) gets
its answer first; the server then reads and discards what the client still sends, like
nginx's lingering close, and only then ends the response and closes the connection, so the
client reads the answer instead of a reset (SPEC 5). The discarding is bounded: at most
`LINGER_BYTES`, `LINGER_S` in all and `LINGER_IDLE_S` without a byte; past a bound the
connection closes (and a client still sending may then see a reset).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tickwire.config import Settings
from tickwire.errors import Refused

CORRELATION_HEADER = "x-correlation-id"
ALLOW_HEADERS = "Content-Type, Authorization, Last-Event-ID, X-Correlation-ID"
_CORRELATION = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
LINGER_BYTES = 64 * 1_048_576
"""Most request bytes read and discarded after an early answer (the largest TICKWIRE_MAX_BODY)."""
LINGER_S = 30.0
"""Longest time spent discarding a request body after an early answer (nginx's lingering_time)."""
LINGER_IDLE_S = 5.0
"""Longest wait for the client's next bytes while discarding (nginx's lingering_timeout)."""
_BODY_READ = "tickwire.body_read"
"""Key of the scope's state: the request body was read to its end (nothing left to discard)."""


def scope_headers(scope: Scope) -> dict[str, str]:
    """An ASGI scope's headers, names lower-cased (the last of repeated ones)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def query_bytes(request: Request) -> bytes:
    raw: bytes = request.scope.get("query_string") or b""
    return raw


def correlation_id(headers: Mapping[str, str]) -> str:
    """The caller's X-Correlation-ID when it is sane, else a new one."""
    given = headers.get(CORRELATION_HEADER)
    if given and _CORRELATION.fullmatch(given):
        return given
    return uuid.uuid4().hex


def cors_headers(settings: Settings, origin: str | None, methods: str) -> dict[str, str]:
    headers = {
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Expose-Headers": "X-Correlation-ID, Retry-After",
        "Access-Control-Max-Age": "600",
    }
    if settings.cors_any:
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Vary"] = "Origin"
        if origin is not None and origin in settings.cors_origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
    return headers


# RFC 9110 reason phrases where Python's table still has the older ones.
_PHRASES = {413: "Payload Too Large", 414: "URI Too Long"}


def reason_phrase(status: int) -> str:
    return _PHRASES.get(status) or HTTPStatus(status).phrase


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps({"error": reason_phrase(status), "message": message, "statusCode": status})


def error_response(
    request: Request,
    status: int,
    message: str,
    methods: str = "GET, OPTIONS",
    extra: Mapping[str, str] | None = None,
) -> Response:
    settings: Settings = request.app.state.settings
    headers = cors_headers(settings, request.headers.get("origin"), methods)
    headers[CORRELATION_HEADER] = (
        request.state.correlation_id
        if hasattr(request.state, "correlation_id")
        else (correlation_id(request.headers))
    )
    if extra:
        headers.update(extra)
    kind = LingeringResponse if body_pending(request.scope, request.headers) else Response
    return kind(error_body(status, message), status, headers=headers, media_type="application/json")


def json_response(
    request: Request, body: object, methods: str = "GET, OPTIONS", status: int = 200
) -> Response:
    settings: Settings = request.app.state.settings
    headers = cors_headers(settings, request.headers.get("origin"), methods)
    headers[CORRELATION_HEADER] = getattr(request.state, "correlation_id", None) or correlation_id(
        request.headers
    )
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


# -- request bodies --------------------------------------------------------------------------------


def too_large_message(limit: int) -> str:
    return f"Body too large: at most {limit} bytes"


def body_timeout_message(timeout_s: float) -> str:
    return f"Body not received in time: send it whole within {timeout_s:g} s"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body; `Refused(413)` as soon as its Content-Length or the bytes received
    pass `limit` (`error_response` then discards the rest), `Refused(400)` for a malformed
    Content-Length, `Refused(408)` when it has not all arrived within TICKWIRE_BODY_TIMEOUT_S
    (a client sending slowly would hold the request open); `ClientDisconnect` when the
    client goes away."""
    settings: Settings = request.app.state.settings
    timeout_s = settings.body_timeout_s
    rejected = request.app.state.node.metrics.rejected  # counted on every route that reads a body
    try:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise Refused(400, "Content-Length must be a number")
            if int(length) > limit:
                raise Refused(413, too_large_message(limit))
        async with asyncio.timeout(timeout_s):
            return await _receive_body(request, limit)
    except TimeoutError:
        rejected.labels("body_timeout").inc()
        raise Refused(408, body_timeout_message(timeout_s)) from None
    except Refused as exc:
        if exc.status == 413:
            rejected.labels("body_too_large").inc()
        raise


async def _receive_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if not more:
            request.scope.setdefault("state", {})[_BODY_READ] = True
        size += len(chunk)
        if size > limit:
            raise Refused(413, too_large_message(limit))
        chunks.append(chunk)
        if not more:
            return b"".join(chunks)


def body_pending(scope: Scope, headers: Mapping[str, str]) -> bool:
    """Whether the client may still be sending a body this app has not read to its end."""
    if scope.get("type") != "http" or scope.get("state", {}).get(_BODY_READ):
        return False
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return True
    return headers.get("content-length", "0").strip() not in ("0", "")


async def read_json_object(
    request: Request, limit: int, *, required: bool = True, example: str = ""
) -> dict[str, Any] | None:
    """The JSON object of the body (None when there is none and it is not `required`);
    400 with what to send (`example`, e.g. ` like {"message": "..."}`) otherwise."""
    if not required and not body_pending(request.scope, request.headers):
        return None
    raw = await read_body(request, limit)
    if not raw.strip():
        if not required:
            return None
        raise Refused(400, "Body is empty: send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"Body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Refused(400, f"Body must be a JSON object{example}")
    return body


async def discard_body(
    receive: Receive,
    max_bytes: int = LINGER_BYTES,
    max_s: float = LINGER_S,
    idle_s: float = LINGER_IDLE_S,
) -> bool:
    """Read and drop the rest of a request body: True once it ended (or the client left),
    False when a bound (bytes, total time, idle time) stopped the reading first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    left = max_bytes
    while left >= 0:
        try:
            async with asyncio.timeout(min(idle_s, deadline - loop.time())):
                message = await receive()
        except TimeoutError:
            return False
        if message["type"] != "http.request":
            return True
        left -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


class LingeringResponse(Response):
    """A complete answer sent while the request body is still unread (module docstring).

    The answer goes out at once (with `Connection: close` on HTTP/1), then the rest of the
    body is discarded within the bounds, then the response ends and the server closes the
    connection. Ending the response at once instead, uvicorn would either close the socket
    with request bytes unread (`Connection: close`, HTTP/1.0), which the client still sending
    sees as a reset instead of this answer, or read and discard the body without any bound
    (keep-alive)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = list(self.raw_headers)
        if scope.get("http_version") in ("1.0", "1.1"):
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        await discard_body(receive)
        scope.setdefault("state", {})[_BODY_READ] = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
