"""Stream endpoints: SSE (SPEC 2-4) and poll / long-poll / backfill (SPEC 7).

Both resolve a stream the same way: count the connection attempt, authenticate,
check the stream's access rules, and answer problems with the JSON error shape.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tickwire.config import Settings
from tickwire.core.streams import Principal, Stream, resolve_stream
from tickwire.errors import BrokerUnavailable, StreamError
from tickwire.node import MAX_POLL_LIMIT, MAX_POLL_WAIT_S, Node
from tickwire.server.auth import principal_of
from tickwire.server.http import cors_headers, error_response, json_response
from tickwire.server.sse import SSEResponse
from tickwire.server.streaming import app_flusher

MAX_LAST_EVENT_ID = 256


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def open_stream(request: Request, path: str) -> tuple[Node, Stream, Principal]:
    """Everything a stream request must pass before anything is streamed."""
    node: Node = request.app.state.node
    settings: Settings = node.settings
    await request.app.state.ensure_started()
    wait = await node.connect_attempt(client_ip(request))
    if wait is not None:
        retry = node.connect_limiter.retry_after(wait)
        node.metrics.rejected.labels("connect_rate").inc()
        raise Refused(
            429,
            f"Too many connection attempts from this address: at most {settings.connect_rate} per minute; "
            f"retry in {retry} s",
            {"Retry-After": str(retry)},
        )
    if len(request.url.query.encode()) > settings.max_query:
        raise Refused(400, f"Query string too long: at most {settings.max_query} bytes")
    principal = await principal_of(request.headers, request.app.state.authenticate)
    try:
        stream = resolve_stream(path, dict(request.query_params), principal)
        stream = await node.check_strategy(stream, principal.user, principal.is_admin)
    except StreamError as exc:
        raise Refused(exc.status, exc.message) from None
    except BrokerUnavailable as exc:
        raise Refused(503, f"Broker unavailable, retry later: {exc}") from None
    return node, stream, principal


def _resume_id(request: Request) -> str | None:
    value = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if value is None or value == "":
        return None
    return value[:MAX_LAST_EVENT_ID]


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            q = params.strip().removeprefix("q=").strip()
            return not (q and _is_zero(q))
    return False


def _is_zero(q: str) -> bool:
    try:
        return float(q) == 0
    except ValueError:
        return False


# Paths under the prefix that are not streams but other endpoints' (other methods).
POST_ONLY = frozenset({"test"})


def wrong_method(request: Request, path: str) -> Response | None:
    if path.strip("/") == "ws":
        return error_response(
            request,
            400,
            "This endpoint speaks WebSocket: connect with a WebSocket client (Upgrade: websocket)",
        )
    if path.strip("/") in POST_ONLY:
        return error_response(
            request, 405, "Method not allowed: use POST", "POST, OPTIONS", extra={"Allow": "POST, OPTIONS"}
        )
    return None


async def sse_endpoint(request: Request) -> Response | SSEResponse:
    path = request.path_params["stream"]
    refused = wrong_method(request, path)
    if refused is not None:
        return refused
    try:
        node, stream, principal = await open_stream(request, path)
    except Refused as exc:
        return error_response(request, exc.status, exc.message, extra=exc.headers)
    settings = node.settings
    client_id = request.app.state.client_ids.next(principal.user, stream.name, node.clock.wall_ms())
    return SSEResponse(
        node,
        stream,
        user=principal.user,
        client_id=client_id,
        last_event_id=_resume_id(request),
        correlation_id=request.state.correlation_id,
        cors=cors_headers(settings, request.headers.get("origin"), "GET, OPTIONS"),
        gzip=_accepts_gzip(request),
        ip=client_ip(request),
        flusher=app_flusher(request.app.state),
    )


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Refused(400, f"`{name}` must be an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise Refused(400, f"`{name}` must be an integer from {low} to {high}")
    return value


def _wait_param(request: Request) -> float:
    raw = request.query_params.get("wait")
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_POLL_WAIT_S:
        raise Refused(400, f"`wait` must be a number of seconds from 0 to {MAX_POLL_WAIT_S:g}")
    return value


async def poll_endpoint(request: Request) -> Response:
    path = request.path_params["stream"]
    try:
        limit = _int_param(request, "limit", 100, 1, MAX_POLL_LIMIT)
        wait = _wait_param(request)
        node, stream, _ = await open_stream(request, path)
    except Refused as exc:
        return error_response(request, exc.status, exc.message, extra=exc.headers)
    after = request.query_params.get("after") or None
    if after is not None:
        after = after[:MAX_LAST_EVENT_ID]
    try:
        body = await node.poll(stream, after, limit, wait)
    except BrokerUnavailable as exc:
        return error_response(request, 503, f"Broker unavailable, retry later: {exc}")
    return json_response(request, body)
