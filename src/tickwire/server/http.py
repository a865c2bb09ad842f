"""HTTP plumbing shared by every endpoint: error bodies, CORS, correlation ids."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from http import HTTPStatus

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from tickwire.config import Settings

CORRELATION_HEADER = "x-correlation-id"
ALLOW_HEADERS = "Content-Type, Authorization, Last-Event-ID, X-Correlation-ID"
_CORRELATION = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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
    if given and _CORRELATION.match(given):
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
    return Response(error_body(status, message), status, headers=headers, media_type="application/json")


def json_response(
    request: Request, body: object, methods: str = "GET, OPTIONS", status: int = 200
) -> Response:
    settings: Settings = request.app.state.settings
    headers = cors_headers(settings, request.headers.get("origin"), methods)
    headers[CORRELATION_HEADER] = getattr(request.state, "correlation_id", None) or correlation_id(
        request.headers
    )
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")
