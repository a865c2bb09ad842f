"""The scans API (SPEC 13). Defining, starting, stopping and deleting scans needs the admin
role; reading one, its status and queueing an on-demand cycle need only to be able to read
it (a public scan: any user; a user scan: its owner and admins; otherwise 403, and 404 for
an unknown id). Results stream on `/api/stream/scans/{scanId}` (SSE, WebSocket, poll).

    POST   /api/scans                     admin: define (and start) a scan -> 201
    GET    /api/scans                     the scans the caller can read
    GET    /api/scans/{scanId}            one scan
    DELETE /api/scans/{scanId}            admin: remove -> 204
    POST   /api/scans/{scanId}/start      admin
    POST   /api/scans/{scanId}/stop       admin
    POST   /api/scans/{scanId}/run        queue an on-demand cycle: 202, 429 over the bound
    GET    /api/scans/{scanId}/status     {"state","cycles","lastCycleMs","results","queued"}
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tickwire.core.streams import Principal
from tickwire.domain.alerting import Alerting
from tickwire.domain.scan_defs import ScanDef, parse_scan
from tickwire.errors import Refused
from tickwire.server.api import answer, api, no_content, read_object

SCANS = "GET, POST, OPTIONS"
SCAN = "GET, DELETE, OPTIONS"
ACTION = "POST, OPTIONS"
STATUS = "GET, OPTIONS"


async def _readable(alerting: Alerting, scan_id: str, principal: Principal) -> ScanDef:
    """The scan, if `principal` may read it (404 unknown, 403 another user's)."""
    await alerting.scans.stream_log(scan_id, principal)
    scan = await alerting.scans.get(scan_id)
    if scan is None:
        raise Refused(404, "Scan not found")
    return scan


async def _scans(request: Request, principal: Principal, alerting: Alerting) -> Response:
    assert principal.user is not None
    if request.method == "POST":
        if not principal.is_admin:
            raise Refused(403, "Defining a scan needs the admin role")
        body = await read_object(request)
        now = request.app.state.node.clock.wall_ms()
        scan = parse_scan(body, creator=principal.user, now_ms=now, max_symbols=alerting.max_scan_symbols)
        await alerting.scans.create(scan)
        return answer(request, scan.public(), SCANS, 201)
    out: list[dict[str, Any]] = []
    for scan_id in await alerting.scans.ids():
        found = await alerting.scans.get(scan_id)
        if found is not None and (found.user in (None, principal.user) or principal.is_admin):
            out.append(found.public())
    return answer(request, {"scans": out}, SCANS)


async def _scan(request: Request, principal: Principal, alerting: Alerting) -> Response:
    scan_id = request.path_params["scanId"]
    if request.method == "DELETE":
        if not principal.is_admin:
            raise Refused(403, "Deleting a scan needs the admin role")
        if not await alerting.scans.delete(scan_id):
            raise Refused(404, "Scan not found")
        return no_content(request, SCAN)
    return answer(request, (await _readable(alerting, scan_id, principal)).public(), SCAN)


async def _action(request: Request, principal: Principal, alerting: Alerting) -> Response:
    scan_id, action = request.path_params["scanId"], request.path_params["action"]
    if action not in ("start", "stop", "run"):
        raise Refused(404, "Not found")
    await read_object(request, required=False)  # none needed; a JSON body is allowed
    scans = alerting.scans
    if action == "run":
        scan = await _readable(alerting, scan_id, principal)
        queued = await scans.enqueue(scan_id)
        if queued is None:
            raise Refused(404, "Scan not found")
        if not queued[1]:
            retry = str(max(1, round(scan.intervalS)))
            message = f"At most {scans.queue_bound} on-demand cycles can wait: retry in {retry} s"
            raise Refused(429, message, {"Retry-After": retry})
        return answer(request, {"scanId": scan_id, "queued": queued[0]}, ACTION, 202)
    if not principal.is_admin:
        raise Refused(403, f"{action.capitalize()}ing a scan needs the admin role")
    state = "running" if action == "start" else "stopped"
    ctl = await scans.control(scan_id, lambda c: {**c, "state": state})
    if ctl is None:
        raise Refused(404, "Scan not found")
    return answer(request, await scans.status(scan_id), ACTION)


async def _status(request: Request, principal: Principal, alerting: Alerting) -> Response:
    scan_id = request.path_params["scanId"]
    await _readable(alerting, scan_id, principal)
    status = await alerting.scans.status(scan_id)
    if status is None:
        raise Refused(404, "Scan not found")
    return answer(request, status, STATUS)


def scan_routes() -> list[Route]:
    return [
        Route("/api/scans", api(SCANS, _scans), methods=["GET", "POST"]),
        Route("/api/scans/{scanId}/status", api(STATUS, _status), methods=["GET"]),
        Route("/api/scans/{scanId}/{action}", api(ACTION, _action), methods=["POST"]),
        Route("/api/scans/{scanId}", api(SCAN, _scan), methods=["GET", "DELETE"]),
    ]
