"""Operations endpoints: health, readiness, JSON metrics (SPEC 8) and Prometheus."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from tickwire.core.event import iso_timestamp
from tickwire.node import Node
from tickwire.server.auth import principal_of
from tickwire.server.http import json_response


async def healthz(request: Request) -> Response:
    return json_response(request, {"status": "ok"})


async def readyz(request: Request) -> Response:
    node: Node = request.app.state.node
    await request.app.state.ensure_started()
    ok = node.started and await node.broker.healthy()
    body = {"status": "ready" if ok else "unavailable", "broker": node.broker.name}
    return json_response(request, body, status=200 if ok else 503)


async def metrics_json(request: Request) -> Response:
    node: Node = request.app.state.node
    principal = await principal_of(request.headers, request.app.state.authenticate)
    per_user = node.hub.clients_per_user()
    delivery = node.metrics.delivery
    body: dict[str, object] = {
        "timestamp": iso_timestamp(node.clock.wall_ms()),
        "totalClients": len(node.hub.connections),
        "totalUsers": len(per_user),
        "connections": node.sessions.connection_counts(),
        "delivered": {t: s.delivered for t, s in delivery.items()},
        "dropped": {
            "conflated": sum(s.conflated for s in delivery.values()) + node.hub.throttle.conflated,
            "slowConsumer": sum(s.dropped_slow for s in delivery.values()),
            "clientCap": sum(s.capped for s in delivery.values()),
        },
        "slowConsumerCloses": sum(s.slow_closes for s in delivery.values()),
    }
    if principal.is_admin:
        body["clientsPerUser"] = [{"userId": u, "clientCount": n} for u, n in sorted(per_user.items())]
    return json_response(request, body)


async def metrics_prometheus(request: Request) -> Response:
    node: Node = request.app.state.node
    node.metrics.throttled = node.hub.throttle.conflated
    return Response(node.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
