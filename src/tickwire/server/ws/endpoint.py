"""`{prefix}/ws`: the WebSocket handshake, then a session (session.py).

    connect rate -> subprotocol (codec) -> `?streams=` -> credentials -> accept | deny

A refused handshake gets an HTTP error response where the server supports it (the ASGI
`websocket.http.response` extension), else a 1008 close with the message. Credentials:
`Authorization: Bearer` or the `session` cookie (where auth.cookie_allowed), or later an
`auth` message; bad credentials close the accepted socket with 4001.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from tickwire import codes
from tickwire.config import Settings
from tickwire.core.streams import ANONYMOUS, Catalog, Principal
from tickwire.drivers.asgi import ASGIWebSocketDriver, accept_websocket, deny_websocket
from tickwire.errors import ProtocolError, Refused
from tickwire.server.admission import Admission
from tickwire.server.auth import websocket_token
from tickwire.server.http import CORRELATION_HEADER, correlation_id, error_body, scope_headers
from tickwire.server.streaming import app_flusher
from tickwire.server.ws.session import WSSession
from tickwire.wire.codecs import WSCodec, choose_codec
from tickwire.wire.ws import CommandLimits, Subscribe, normalize_stream, parse_command

log = logging.getLogger("tickwire.ws")


class WebSocketEndpoint:
    """The ASGI app of `/api/stream/ws` (a Starlette `WebSocketRoute` endpoint)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        await state.ensure_started()
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        try:
            await self._handshake(scope, receive, send)
        except OSError:  # the client went away during the handshake (uvicorn: ClientDisconnected)
            return

    async def _handshake(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        admission: Admission = state.admission
        headers = scope_headers(scope)
        cid = correlation_id(headers)
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        offered = [str(p) for p in scope.get("subprotocols") or []]
        try:
            codec, initial = await _negotiate(admission, ip, offered, scope.get("query_string") or b"")
            principal, bad_credentials = await _credentials(admission, headers, cid)
        except Refused as exc:
            extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
            cid_header = (CORRELATION_HEADER.encode(), cid.encode())
            await deny_websocket(
                scope,
                send,
                exc.status,
                error_body(exc.status, exc.message),
                [cid_header, *extra],
                exc.message,
            )
            return
        driver = ASGIWebSocketDriver(scope, send, receive, ip, binary=codec.binary)
        await accept_websocket(
            send, codec.subprotocol if offered else None, [(CORRELATION_HEADER.encode(), cid.encode())]
        )
        if bad_credentials:
            admission.node.metrics.ws.closes.labels(codes.UNAUTHORIZED.name).inc()
            log.info("ws refused: bad credentials", extra={"correlation_id": cid, "ip": ip})
            await driver.close(codes.UNAUTHORIZED, codes.UNAUTHORIZED.reason)
            return
        session = WSSession(
            admission,
            driver,
            codec,
            principal,
            client_ids=state.client_ids,
            correlation_id=cid,
            flusher=app_flusher(state),
        )
        await session.run(initial)


async def _negotiate(
    admission: Admission, ip: str, offered: list[str], query: bytes
) -> tuple[WSCodec, Subscribe | None]:
    await admission.check_rate(ip)
    codec = choose_codec(offered)
    if codec is None:
        raise Refused(400, "Unsupported subprotocol: offer tickwire.json or tickwire.msgpack")
    admission.check_query(query)
    try:
        initial = query_subscription(query, admission.node.catalog, admission.settings)
    except ProtocolError as exc:
        raise Refused(400, exc.message) from None
    return codec, initial


async def _credentials(admission: Admission, headers: dict[str, str], cid: str) -> tuple[Principal, bool]:
    """The handshake's principal, and whether it offered credentials that are not valid."""
    token = websocket_token(headers, admission.settings)
    if token is None:
        return ANONYMOUS, False
    try:
        found = await admission.authenticate(token)
    except Exception:  # e.g. a session store that is down
        log.exception("authenticator failed", extra={"correlation_id": cid})
        raise Refused(503, "Authentication is unavailable; retry later") from None
    if found is None or found.user is None:
        return ANONYMOUS, True
    return found, False


def query_subscription(raw: bytes, catalog: Catalog, settings: Settings) -> Subscribe | None:
    """`?streams=prices,alerts[&symbols=A,B][&delta=1]`: streams to subscribe at connect, for
    clients that only read (load generators, `websocat`); the answer is a `subscribed` without
    `rid`. `symbols` and `delta` apply to the streams that take them (prices)."""
    if not raw:
        return None
    params = dict(parse_qsl(raw.decode("latin-1")))
    names = [n for n in params.get("streams", "").split(",") if n]
    if not names:
        return None
    symbols = [s for s in params.get("symbols", "").split(",") if s]
    keyed = {name for name, d in catalog.definitions.items() if d.key_param is not None}
    delta = params.get("delta") in ("1", "true")
    deltas = {name for name, d in catalog.definitions.items() if d.deltas}
    streams = [
        {
            "stream": name,
            **({"symbols": symbols} if symbols and normalize_stream(name) in keyed else {}),
            **({"delta": True} if delta and normalize_stream(name) in deltas else {}),
        }
        for name in names
    ]
    command = parse_command({"type": "subscribe", "streams": streams}, CommandLimits.from_settings(settings))
    assert isinstance(command, Subscribe)
    return command
