"""Publishing over HTTP (SPEC 9) and the admin test broadcast.

Both change state: server/csrf.py has already refused, in the app's middleware, bodies
that are not JSON and cookie-authenticated requests from other sites."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tickwire.core.streams import Principal
from tickwire.errors import BrokerUnavailable, PublishError, Refused
from tickwire.node import Node
from tickwire.server.auth import has_credentials, principal_of
from tickwire.server.http import error_response, json_response, read_body, read_json_object

METHODS = "POST, OPTIONS"


async def read_json(request: Request, max_body: int) -> Any:
    """The request body as JSON, refusing more than `max_body` bytes before reading it all
    (the 413 is answered at once; `error_response` discards the rest). Bodies that are not
    declared `application/json` never get here: the app's middleware answers 415 (server/csrf.py)."""
    raw = await read_body(request, max_body)
    if not raw.strip():
        raise Refused(400, "Body is empty: send a JSON event or a JSON array of events")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"Body is not valid JSON: {exc}") from None


async def _authorize(request: Request, check: str) -> Principal | Response:
    principal = await principal_of(request.headers, request.app.state.authenticate)
    if principal.user is None:
        message = "Invalid or expired token" if has_credentials(request.headers) else "No valid session found"
        return error_response(request, 401, message, METHODS)
    allowed = principal.can_publish if check == "publish" else principal.is_admin
    if not allowed:
        need = "the publisher or admin role" if check == "publish" else "the admin role"
        return error_response(
            request, 403, f"Publishing needs {need}" if check == "publish" else f"This needs {need}", METHODS
        )
    return principal


async def publish_endpoint(request: Request) -> Response:
    node: Node = request.app.state.node
    await request.app.state.ensure_started()
    auth = await _authorize(request, "publish")
    if isinstance(auth, Response):
        return auth
    try:
        body = await read_json(request, node.settings.max_body)
        ids = await node.pipeline.publish_body(body, trace=request.state.correlation_id)
    except Refused as exc:
        return _refused(request, exc)
    except PublishError as exc:
        return error_response(request, 400, str(exc), METHODS)
    except BrokerUnavailable as exc:
        if exc.outcome_unknown:  # sent, but no answer: it may have been stored
            message = f"Broker unavailable, the batch may or may not have been published: {exc}"
        else:
            message = f"Broker unavailable, nothing was published: {exc}"
        return error_response(request, 503, message, METHODS)
    return json_response(request, {"ids": ids}, METHODS)


async def test_endpoint(request: Request) -> Response:
    node: Node = request.app.state.node
    await request.app.state.ensure_started()
    auth = await _authorize(request, "admin")
    if isinstance(auth, Response):
        return auth
    try:
        message = await _test_message(request, node.settings.max_body)
    except Refused as exc:
        return _refused(request, exc)
    clients = await node.broadcast_test(message, trace=request.state.correlation_id)
    return json_response(request, {"sent": True, "clients": clients}, METHODS)


async def _test_message(request: Request, max_body: int) -> str:
    """The `message` of the test broadcast's optional body, `test` without one."""
    body = await read_json_object(request, max_body, required=False, example=' like {"message": "..."}')
    if body is None:
        return "test"
    message = body.get("message")
    if message is None:
        return "test"
    if not isinstance(message, str) or len(message) > 10_000:
        raise Refused(400, "`message` must be a string of at most 10000 characters")
    return message


def _refused(request: Request, exc: Refused) -> Response:
    return error_response(request, exc.status, exc.message, METHODS)
