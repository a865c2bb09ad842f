"""Poll, long-poll and backfill (SPEC 7): `GET {prefix}/{stream}/events?after=&limit=&wait=`.

The same admission as a streaming request, then the node's reader (node/reader.py)
answers with what a stream would have sent, as one JSON body (wire/poll.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tickwire.errors import BrokerUnavailable, Refused
from tickwire.server.admission import Admission
from tickwire.server.http import client_ip, error_response, json_response, query_bytes
from tickwire.wire.poll import poll_body, poll_limit, poll_wait


async def poll_endpoint(request: Request) -> Response:
    state = request.app.state
    await state.ensure_started()
    admission: Admission = state.admission
    settings = admission.settings
    try:
        params = request.query_params
        limit = poll_limit(params.get("limit"), settings.poll_default_limit, settings.poll_max_limit)
        wait = poll_wait(params.get("wait"), settings.poll_max_wait_s)
        stream, _ = await admission.admit_stream(
            ip=client_ip(request),
            headers=request.headers,
            query=query_bytes(request),
            path=request.path_params["stream"],
            params=request.query_params,
        )
    except Refused as exc:
        return error_response(request, exc.status, exc.message, extra=exc.headers)
    after = request.query_params.get("after") or None
    if after is not None:
        after = after[: settings.max_last_event_id]
    try:
        start = await admission.node.reader.poll(stream, after, wait)
    except BrokerUnavailable as exc:
        return error_response(request, 503, f"Broker unavailable, retry later: {exc}")
    reason = start.reset.reason if start.reset is not None else None
    body = poll_body(start.events[:limit], after, recovered=start.recovered, reason=reason)
    return json_response(request, body)
