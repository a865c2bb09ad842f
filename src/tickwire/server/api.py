"""What the JSON APIs of SPEC 13 (server/alerts.py, server/scans.py) share: the caller,
request bodies and answers, in the SPEC 5 shapes.

State-changing requests have already passed server/csrf.py (JSON bodies only, the session
cookie only from this host or a listed origin) in the app's middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tickwire.core.streams import Principal
from tickwire.domain.alerting import Alerting
from tickwire.domain.rules import RuleError
from tickwire.errors import BrokerUnavailable, Refused
from tickwire.node import Node
from tickwire.server.auth import has_credentials, principal_of
from tickwire.server.http import (
    CORRELATION_HEADER,
    cors_headers,
    error_response,
    json_response,
    read_json_object,
)

Handler = Callable[[Request, Principal, Alerting], Awaitable[Response]]


def api(methods: str, handler: Handler, *, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint: the node started, an authenticated caller (401; 403 without the admin
    role when `admin`), then `handler`; `RuleError` -> 400, `Refused` -> its status,
    `BrokerUnavailable` -> 503."""

    async def endpoint(request: Request) -> Response:
        await request.app.state.ensure_started()
        node: Node = request.app.state.node
        principal = await principal_of(request.headers, request.app.state.authenticate)
        if principal.user is None:
            message = (
                "Invalid or expired token" if has_credentials(request.headers) else "No valid session found"
            )
            return error_response(request, 401, message, methods)
        if admin and not principal.is_admin:
            return error_response(request, 403, "This needs the admin role", methods)
        try:
            return await handler(request, principal, node.alerting)
        except RuleError as exc:
            return error_response(request, 400, str(exc), methods)
        except Refused as exc:
            return error_response(request, exc.status, exc.message, methods, extra=exc.headers)
        except BrokerUnavailable as exc:
            return error_response(request, 503, f"Broker unavailable, retry later: {exc}", methods)

    return endpoint


async def read_object(request: Request, *, required: bool = True) -> dict[str, Any] | None:
    """The JSON object of the body (None when there is none and it is not `required`)."""
    node: Node = request.app.state.node
    return await read_json_object(request, node.settings.max_body, required=required)


def answer(request: Request, body: object, methods: str, status: int = 200) -> Response:
    return json_response(request, body, methods, status)


def no_content(request: Request, methods: str) -> Response:
    headers = cors_headers(request.app.state.settings, request.headers.get("origin"), methods)
    headers[CORRELATION_HEADER] = request.state.correlation_id
    return Response(b"", 204, headers=headers)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Refused(400, f"`{name}` must be an integer from {low} to {high}")
    return int(raw)


def bool_param(request: Request, name: str) -> bool:
    raw = (request.query_params.get(name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise Refused(400, f"`{name}` must be true or false")
    return raw in ("true", "1")
