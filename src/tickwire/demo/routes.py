"""The demo's HTTP routes: password-less login as a demo user, paper orders, the page.

Sessions are the same JWTs every stream accepts, set as an HttpOnly, SameSite=Lax
`session` cookie (Secure when the request came over https) so the page's EventSources,
WebSocket and fetches authenticate without script access to the token: the login answers
only who logged in (user id, roles, strategies), never the token. Login, logout and orders
change state, so the app's middleware (server/csrf.py) takes only JSON bodies for them and
honours the cookie only from this site. Every error uses the SPEC error shape.
Each route answers its own 405 (the app-wide handler only knows the stream endpoints'
methods).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from tickwire.config import Settings
from tickwire.core.streams import Principal
from tickwire.demo.paper import OrderError, PaperBroker
from tickwire.demo.users import DEMO_USERS
from tickwire.errors import BrokerUnavailable, Refused, show
from tickwire.server.auth import has_credentials, issue_token, principal_of
from tickwire.server.http import error_response, json_response, read_body

__all__ = ["SESSION_COOKIE", "SESSION_TTL_S", "STATIC_FILES", "WEB_DIR", "demo_routes"]

Handler = Callable[[Request], Awaitable[Response]]

SESSION_COOKIE = "session"
SESSION_TTL_S = 8 * 3600
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "tickwire.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
"""The only files /static/ serves, with their content types: nothing else of the package leaks."""

PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
}
ORDER_FIELDS = ("symbol", "side", "qty", "type", "limitPrice")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
"""Routed to every demo endpoint, which answers a wrong one itself (OPTIONS is the middleware's)."""
MAX_BODY = 16_384
"""Largest login or order body: both are a few fields."""


def demo_routes(settings: Settings, broker: PaperBroker) -> list[Route]:
    """The routes `create_demo_app` adds to the tickwire app."""
    return DemoEndpoints(settings, broker).routes()


class DemoEndpoints:
    """Login, the caller's identity, the order ticket, and the page with its files."""

    def __init__(self, settings: Settings, broker: PaperBroker) -> None:
        self.settings = settings
        self.broker = broker

    async def login(self, request: Request) -> Response:
        body = await _json_object(request, self.settings)
        if isinstance(body, Response):
            return body
        name = body.get("user")
        user = DEMO_USERS.get(name) if isinstance(name, str) else None
        if user is None:
            known = ", ".join(DEMO_USERS)
            return _error(
                request, 400, f'Unknown demo user {show(name)}: send {{"user": ...}} with one of {known}'
            )
        token = issue_token(self.settings.secret, user.id, user.roles, SESSION_TTL_S)
        # The token goes only into the HttpOnly cookie: a body a script reads would defeat it.
        response = json_response(request, _describe(user.id, user.roles), "POST, OPTIONS")
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=SESSION_TTL_S,
            path="/",
            httponly=True,
            samesite="lax",
            secure=_over_https(request),
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = json_response(request, {"loggedOut": True}, "POST, OPTIONS")
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_over_https(request)
        )
        return response

    async def me(self, request: Request) -> Response:
        principal = await _principal(request)
        if isinstance(principal, Response):
            return principal
        assert principal.user is not None
        return json_response(request, _describe(principal.user, tuple(sorted(principal.roles))))

    async def place_order(self, request: Request) -> Response:
        principal = await _principal(request)
        if isinstance(principal, Response):
            return principal
        assert principal.user is not None
        body = await _json_object(request, self.settings)
        if isinstance(body, Response):
            return body
        unknown = sorted(set(body) - set(ORDER_FIELDS))
        if unknown:
            return _error(
                request, 400, f"Unknown field(s) {', '.join(unknown)}: expected {', '.join(ORDER_FIELDS)}"
            )
        missing = [f for f in ("symbol", "side", "qty") if body.get(f) is None]
        if missing:
            return _error(request, 400, f"Missing {', '.join(missing)}: an order needs symbol, side and qty")
        await request.app.state.ensure_started()
        try:
            order = await self.broker.place(
                principal.user,
                body["symbol"],
                body["side"],
                body["qty"],
                body.get("type") or "market",
                body.get("limitPrice"),
            )
        except OrderError as exc:
            return _error(request, exc.status, exc.message)
        except BrokerUnavailable:
            return _error(request, 503, "The event broker is unavailable; the order was not placed")
        return json_response(request, order, "POST, OPTIONS", status=201)

    async def cancel_order(self, request: Request) -> Response:
        principal = await _principal(request)
        if isinstance(principal, Response):
            return principal
        assert principal.user is not None
        await request.app.state.ensure_started()
        try:
            order = await self.broker.cancel(principal.user, request.path_params["order_id"])
        except OrderError as exc:
            return _error(request, exc.status, exc.message, "DELETE, OPTIONS")
        except BrokerUnavailable:
            return _error(request, 503, "The event broker is unavailable; the order was not canceled")
        return json_response(request, order, "DELETE, OPTIONS")

    async def index(self, request: Request) -> Response:
        return _file(request, "index.html", "text/html; charset=utf-8")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            return _error(request, 404, f"No static file {show(name)}")
        return _file(request, name, media_type)

    def routes(self) -> list[Route]:
        return [
            _route("/api/login", {"POST": self.login}),
            _route("/api/logout", {"POST": self.logout}),
            _route("/api/me", {"GET": self.me}),
            _route("/api/orders", {"POST": self.place_order}),
            _route("/api/orders/{order_id}", {"DELETE": self.cancel_order}),
            _route("/", {"GET": self.index}),
            _route("/static/{name}", {"GET": self.static}),
        ]


def _route(path: str, handlers: dict[str, Handler]) -> Route:
    """A route that dispatches on the method and answers others with a 405 naming the right one."""
    allowed = ", ".join([*handlers, "OPTIONS"])

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers.get(method)
        if handler is None:
            message = f"Method not allowed: use {' or '.join(handlers)}"
            return error_response(request, 405, message, allowed, {"Allow": allowed})
        return await handler(request)

    return Route(path, endpoint, methods=ALL_METHODS)


def _over_https(request: Request) -> bool:
    """Whether the request came over https, as the server reports it: uvicorn takes a proxy's
    X-Forwarded-Proto only from the addresses it trusts (FORWARDED_ALLOW_IPS, by default the
    loopback), so no client can make a plain-http session cookie Secure, or the reverse."""
    return request.url.scheme == "https"


def _describe(user: str, roles: tuple[str, ...]) -> dict[str, Any]:
    demo = DEMO_USERS.get(user)
    return {"userId": user, "roles": list(roles), "strategies": [demo.strategy_id] if demo else []}


async def _principal(request: Request) -> Principal | Response:
    principal = await principal_of(request.headers, request.app.state.authenticate)
    if principal.user is None:
        message = (
            "Invalid or expired session" if has_credentials(request.headers) else "No valid session found"
        )
        return _error(request, 401, message)
    return principal


async def _json_object(request: Request, settings: Settings) -> dict[str, Any] | Response:
    """The body as a JSON object (declared application/json: the app's middleware answers 415
    to anything else, server/csrf.py)."""
    limit = min(settings.max_body, MAX_BODY)
    try:
        raw = await read_body(request, limit)  # a 413's error response discards the rest
    except Refused as exc:
        return _error(request, exc.status, exc.message)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error(
            request, 400, "Body must be a JSON object" if not raw.strip() else "Body is not valid JSON"
        )
    if not isinstance(body, dict):
        return _error(request, 400, "Body must be a JSON object")
    return body


def _file(request: Request, name: str, media_type: str) -> Response:
    path = WEB_DIR / name
    if not path.is_file():
        return _error(request, 404, f"{name} is missing from the installation")
    return FileResponse(path, media_type=media_type, headers=PAGE_HEADERS)


def _error(request: Request, status: int, message: str, methods: str = "POST, OPTIONS") -> Response:
    return error_response(request, status, message, methods)
