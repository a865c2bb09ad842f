"""Poll, long-poll and backfill (SPEC 7): `GET {prefix}/{stream}/events?after=&limit=&wait=`.

The same admission as a streaming request, then the node's reader (node/reader.py)
answers with what a stream would have sent, as one JSON body (wire/poll.py). A poll of
some keys (`prices?symbols=`) is upstream demand for them like a reader's (SPEC 12): held
while it runs, lingering `linger_s` after it (core/hub.py `polling`).

A long-poll's wait ends early, answering what there is: at the caller's token expiry
(SPEC 5: a wait never outlives the token; the next poll needs a fresh one) and when the
node starts to stop (the client polls another node).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from tickwire.core.streams import Principal, Stream
from tickwire.errors import BrokerUnavailable, Refused
from tickwire.node import Node
from tickwire.node.reader import Start
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
        stream, principal = await admission.admit_stream(
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
    node = admission.node
    try:
        with node.hub.polling(stream):  # upstream demand for the symbols it names
            start = await long_poll(node, stream, after, wait_within(wait, principal, node.clock.wall_ms()))
    except BrokerUnavailable as exc:
        return error_response(request, 503, f"Broker unavailable, retry later: {exc}")
    reason = start.reset.reason if start.reset is not None else None
    body = poll_body(start.events[:limit], after, recovered=start.recovered, reason=reason)
    return json_response(request, body)


# A wait cut at the token's expiry ends this much after it (timers may fire a little early):
# once answered, the token is expired, and the client's next poll asks for a fresh one.
EXPIRY_MARGIN_S = 0.01


def wait_within(wait_s: float, principal: Principal, now_ms: int) -> float:
    """The long-poll wait, cut at the principal's credential expiry."""
    if principal.expires_at is None:
        return wait_s
    return max(0.0, min(wait_s, principal.expires_at - now_ms / 1000 + EXPIRY_MARGIN_S))


async def long_poll(node: Node, stream: Stream, after: str | None, wait_s: float) -> Start:
    """The reader's poll; a wait ends (answering what there is) when the node starts to stop."""
    stopping = node.sessions.stopping
    if wait_s <= 0 or stopping.is_set():
        return await node.reader.poll(stream, after, 0)
    polling = asyncio.ensure_future(node.reader.poll(stream, after, wait_s))
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({polling, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not polling.done():
            polling.cancel()
            await asyncio.wait({polling})
    if not polling.cancelled():
        return polling.result()
    return await node.reader.poll(stream, after, 0)  # what there is now
