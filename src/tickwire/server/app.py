"""The ASGI application factory.

`create_app()` returns a Starlette app serving every endpoint of the SPEC. It can
run alone (`tickwire serve`) or be mounted in an existing FastAPI/Starlette app;
the node starts with the app's lifespan or, when mounted (sub-app lifespans do not
run), on the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from tickwire.config import Settings, load_settings
from tickwire.node import Node
from tickwire.server.auth import Authenticator, jwt_authenticator
from tickwire.server.endpoints import poll_endpoint, sse_endpoint
from tickwire.server.http import CORRELATION_HEADER, correlation_id, cors_headers, error_response
from tickwire.server.ops import healthz, metrics_json, metrics_prometheus, readyz
from tickwire.server.publish import publish_endpoint, test_endpoint
from tickwire.server.streaming import RAW_SEND, ClientIds
from tickwire.server.ws import WebSocketEndpoint

_METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")


def create_app(
    settings: Settings | None = None,
    *,
    node: Node | None = None,
    authenticate: Authenticator | None = None,
    extra_routes: list[Route] | None = None,
    on_startup: list[Callable[[Node], Awaitable[None]]] | None = None,
) -> Starlette:
    """A Starlette app for `settings` (default: environment and defaults)."""
    settings = settings or (node.settings if node is not None else load_settings())
    node = node or Node(settings)
    prefix = settings.prefix
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_prometheus, methods=["GET"]),
        Route("/api/publish", publish_endpoint, methods=["POST"]),
        Route(f"{prefix}/metrics", metrics_json, methods=["GET"]),
        Route(f"{prefix}/test", test_endpoint, methods=["POST"]),
        WebSocketRoute(f"{prefix}/ws", WebSocketEndpoint(node)),
        Route(prefix + "/{stream:path}/events", poll_endpoint, methods=["GET"]),
        Route(prefix + "/{stream:path}", sse_endpoint, methods=["GET"]),
        *(extra_routes or []),
    ]
    startup_hooks = list(on_startup or [])
    lock = asyncio.Lock()

    async def ensure_started() -> None:
        if node.started:
            return
        async with lock:
            if not node.started:
                await node.start()
                for hook in startup_hooks:
                    await hook(node)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ensure_started()
        try:
            yield
        finally:
            await node.stop()

    def methods_for(path: str) -> str:
        """The methods of the first route matching `path` (routes are most specific first)."""
        for route in app.router.routes:
            if isinstance(route, Route) and route.path_regex.match(path) and route.methods:
                names = [m for m in _METHOD_ORDER if m in route.methods and m != "HEAD"]
                return ", ".join([*names, "OPTIONS"])
        return "GET, OPTIONS"

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        methods = methods_for(request.url.path)
        extra = {"Allow": methods} if exc.status_code == 405 else None
        allowed = methods.removesuffix(", OPTIONS")
        message = {404: "Not found", 405: f"Method not allowed: use {allowed}"}.get(
            exc.status_code, str(exc.detail)
        )
        return error_response(request, exc.status_code, message, methods, extra=extra)

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_response(request, 500, "Internal error; the request was not completed")

    app = TickwireApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, 500: server_error},
    )
    app.state.settings = settings
    app.state.node = node
    app.state.authenticate = authenticate or jwt_authenticator(settings.secret)
    app.state.client_ids = ClientIds()
    app.state.ensure_started = ensure_started
    app.state.on_startup = startup_hooks  # more hooks may be appended before the app starts
    app.add_middleware(_CorsAndCorrelation, settings=settings, methods_for=methods_for)
    return app


class TickwireApp(Starlette):
    """Starlette, plus the server's own `send` in the scope.

    Streaming writers call `send` once per write, tens of thousands of times a
    second; Starlette's error middlewares wrap it only to learn whether a response
    started, which a stream that answers its own errors does not need.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


class _CorsAndCorrelation:
    """Answers CORS preflights and gives every request a correlation id."""

    def __init__(self, app: ASGIApp, settings: Settings, methods_for: Callable[[str], str]) -> None:
        self.app = app
        self.settings = settings
        self.methods_for = methods_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        cid = correlation_id(headers)
        scope.setdefault("state", {})["correlation_id"] = cid
        if scope["method"] == "OPTIONS":
            out = cors_headers(self.settings, headers.get("origin"), self.methods_for(scope["path"]))
            out[CORRELATION_HEADER] = cid
            response = Response(b"", 200, headers=out)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
