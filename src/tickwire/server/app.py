"""The ASGI application factory.

`create_app()` returns a Starlette app serving every endpoint of the SPEC. It can
run alone (`tickwire serve`) or be mounted in an existing FastAPI/Starlette app;
the node starts with the app's lifespan or, when mounted (sub-app lifespans do not
run), on the first request.

Shutdown: an ASGI server sends the lifespan's shutdown only after its connections have
ended, and streams do not end by themselves, so the server must end them first:
`app.state.close_connections()` closes every connection (SSE responses end after what is
queued, WebSockets get 1001, long-polls answer) and waits for them up to
TICKWIRE_SHUTDOWN_GRACE_S. `tickwire serve` calls it as soon as uvicorn starts to shut
down (cli.py); the lifespan then stops the node (`Node.stop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from tickwire.config import Settings, load_settings
from tickwire.drivers.asgi import TickwireApp
from tickwire.node import Node
from tickwire.server.admission import Admission
from tickwire.server.alerts import alert_routes
from tickwire.server.assets import asset_routes
from tickwire.server.auth import Authenticator, jwt_authenticator
from tickwire.server.csrf import refusal
from tickwire.server.http import (
    CORRELATION_HEADER,
    correlation_id,
    cors_headers,
    error_response,
    scope_headers,
)
from tickwire.server.ops import healthz, metrics_json, metrics_prometheus, readyz
from tickwire.server.poll import poll_endpoint
from tickwire.server.publish import publish_endpoint, test_endpoint
from tickwire.server.scans import scan_routes
from tickwire.server.sse import sse_endpoint
from tickwire.server.streaming import ClientIds
from tickwire.server.ws import WebSocketEndpoint
from tickwire.wire.sse import ChunkedSSECodec, SSECodec

_METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")

log = logging.getLogger("tickwire.app")


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
    starter = _Starter(node, list(on_startup or []))
    errors = _Errors()
    app = TickwireApp(
        routes=[*_routes(settings.prefix), *(extra_routes or [])],
        lifespan=starter.lifespan,
        exception_handlers={HTTPException: errors.http_error, 500: errors.server_error},
    )
    errors.app = app
    app.state.settings = settings
    app.state.node = node
    app.state.authenticate = authenticate or jwt_authenticator(settings.secret)
    app.state.admission = Admission(node, app.state.authenticate)
    app.state.sse_codec = SSECodec(settings.retry_ms)
    app.state.sse_chunk_codec = ChunkedSSECodec(app.state.sse_codec)  # the native driver's frames
    app.state.client_ids = ClientIds()
    app.state.ensure_started = starter.ensure_started
    app.state.close_connections = starter.close_connections
    app.state.on_startup = starter.hooks  # more hooks may be appended before the app starts
    app.add_middleware(_CorsAndCorrelation, settings=settings, methods_for=errors.methods_for)
    return app


def _routes(prefix: str) -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_prometheus, methods=["GET"]),
        *asset_routes(),  # /tickwire.js, /tickwire-react.js: the browser SDK, in every mode
        Route("/api/publish", publish_endpoint, methods=["POST"]),
        *alert_routes(),  # /api/alerts/...: rules, history, acks (SPEC 13)
        *scan_routes(),  # /api/scans/...
        Route(f"{prefix}/metrics", metrics_json, methods=["GET"]),
        Route(f"{prefix}/test", test_endpoint, methods=["POST"]),
        WebSocketRoute(f"{prefix}/ws", WebSocketEndpoint()),
        Route(prefix + "/{stream:path}/events", poll_endpoint, methods=["GET"]),
        Route(prefix + "/{stream:path}", sse_endpoint, methods=["GET"]),
    ]


class _Starter:
    """Starts the node with the app's lifespan or, when mounted (sub-app lifespans do not
    run), on the first request; then runs the startup hooks."""

    def __init__(self, node: Node, hooks: list[Callable[[Node], Awaitable[None]]]) -> None:
        self.node = node
        self.hooks = hooks
        self._lock = asyncio.Lock()

    async def ensure_started(self) -> None:
        if self.node.started:
            return
        async with self._lock:
            if not self.node.started:
                await self.node.start()
                for hook in self.hooks:
                    await hook(self.node)

    async def close_connections(self) -> int:
        """The start of a shutdown: close every connection now and wait for them to end, at
        most TICKWIRE_SHUTDOWN_GRACE_S; how many were still open then (the server cuts them)."""
        sessions = self.node.sessions
        grace = self.node.settings.shutdown_grace_s
        clock = self.node.clock
        began = clock.monotonic()
        count = sessions.close_all()
        left = await sessions.wait_closed(grace)
        took = round(clock.monotonic() - began, 3)
        if left:
            log.warning(
                "shutdown: connections still open after the grace",
                extra={"connections": count, "left": left, "grace_s": grace, "took_s": took},
            )
        else:
            log.info("shutdown: every connection closed", extra={"connections": count, "took_s": took})
        return left

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.ensure_started()
        try:
            yield
        finally:
            await self.node.stop()


class _Errors:
    """404 / 405 / 500 in the SPEC's error shape, with the methods of the route."""

    app: Starlette | None = None

    def methods_for(self, path: str) -> str:
        """The methods of the first route matching `path` (routes are most specific first)."""
        for route in self.app.router.routes if self.app is not None else ():
            if isinstance(route, Route) and route.path_regex.match(path) and route.methods:
                names = [m for m in _METHOD_ORDER if m in route.methods and m != "HEAD"]
                return ", ".join([*names, "OPTIONS"])
        return "GET, OPTIONS"

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        methods = self.methods_for(request.url.path)
        extra = {"Allow": methods} if exc.status_code == 405 else None
        allowed = methods.removesuffix(", OPTIONS")
        message = {404: "Not found", 405: f"Method not allowed: use {allowed}"}.get(
            exc.status_code, str(exc.detail)
        )
        return error_response(request, exc.status_code, message, methods, extra=extra)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        return error_response(request, 500, "Internal error; the request was not completed")


class _CorsAndCorrelation:
    """Answers CORS preflights, gives every request a correlation id, and refuses
    state-changing requests that are not JSON or come cross-site with the cookie (server/csrf.py)."""

    def __init__(self, app: ASGIApp, settings: Settings, methods_for: Callable[[str], str]) -> None:
        self.app = app
        self.settings = settings
        self.methods_for = methods_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope_headers(scope)
        cid = correlation_id(headers)
        scope.setdefault("state", {})["correlation_id"] = cid
        if scope["method"] == "OPTIONS":
            out = cors_headers(self.settings, headers.get("origin"), self.methods_for(scope["path"]))
            out[CORRELATION_HEADER] = cid
            response = Response(b"", 200, headers=out)
            await response(scope, receive, send)
            return
        refused = refusal(scope["method"], headers, self.settings)
        if refused is not None:
            request = Request(scope, receive)
            request.app.state.node.metrics.rejected.labels(refused.reason).inc()
            methods = self.methods_for(scope["path"])
            response = error_response(request, refused.status, refused.message, methods)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
