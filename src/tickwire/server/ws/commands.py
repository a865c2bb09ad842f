"""The WebSocket commands (SPEC 6): `auth`, `subscribe`, `unsubscribe`, `ping`.

Each answers through the session's outbox: `authenticated`, `subscribed` (with whether
each stream resumed), `unsubscribed`, `pong`, or an `error` with a code a client can
switch on (codes.py). A bad token closes the socket with 4001. A fresh token for the
same user moves the connection's expiry (SPEC 5: otherwise `auth:expired` and 4001 at the
token's `exp`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tickwire import codes
from tickwire.codes import CloseReason
from tickwire.core.streams import Principal, Stream
from tickwire.errors import Refused, StreamError
from tickwire.server.streaming import ClientIds
from tickwire.wire.ws import (
    Auth,
    Command,
    Ping,
    StreamRequest,
    Subscribe,
    Unsubscribe,
    authenticated,
    error,
    pong,
    subscribed,
    unsubscribed,
)

if TYPE_CHECKING:
    from tickwire.server.ws.session import WSSession

log = logging.getLogger("tickwire.ws")


class Commands:
    """Runs one session's commands; owns who the session is and whether it counts."""

    def __init__(self, session: WSSession, principal: Principal, client_ids: ClientIds) -> None:
        self.session = session
        self.admission = session.admission
        self.node = session.admission.node
        self.conn = session.conn
        self.principal = principal
        self.client_ids = client_ids
        self.registered = False

    def start(self) -> None:
        if self.principal.user is not None:
            self._register()

    def stop(self) -> None:
        if self.registered:
            self.node.sessions.unregister(self.conn)

    def _register(self) -> None:
        self.admission.register(self.conn)
        self.registered = True

    async def run(self, command: Command) -> None:
        if isinstance(command, Ping):
            self.session.reply(pong(command.ts, command.rid))
        elif isinstance(command, Subscribe):
            await self.subscribe(command)
        elif isinstance(command, Unsubscribe):
            self.unsubscribe(command)
        elif isinstance(command, Auth):
            await self.auth(command)

    async def auth(self, command: Auth) -> None:
        try:
            found = await self.admission.authenticate(command.token)
        except Exception:
            log.exception("authenticator failed", extra=self.session.log_extra)
            found = None
        if found is None or found.user is None:
            self.session.close(CloseReason.UNAUTHORIZED)
            return
        current = self.principal.user
        if current is not None and found.user != current:
            message = "this connection is authenticated as another user: open a new one"
            self.session.reply(error(codes.FORBIDDEN, message, command.rid))
            return
        self.principal = found
        self.conn.authenticated_until(found.expires_at)
        self.session.writer.timers_changed()
        if current is None:
            self.conn.user = found.user
            self.conn.client_id = self.client_ids.next(found.user, "ws", self.node.clock.wall_ms())
            self._register()  # counts the connection for the user now (and evicts over the cap)
        self.session.reply(authenticated(found.user, command.rid))

    async def subscribe(self, command: Subscribe) -> None:
        conn = self.conn
        new = [r.stream for r in command.streams if r.stream not in conn.subscriptions]
        limit = self.session.limits.max_subscriptions
        if len(conn.subscriptions) + len(new) > limit:
            message = (
                f"at most {limit} streams per connection "
                f"({len(conn.subscriptions)} open, {len(new)} new): unsubscribe some first"
            )
            self.session.reply(error(codes.TOO_MANY_SUBSCRIPTIONS, message, command.rid))
            return
        results: list[tuple[str, bool]] = []
        for request in command.streams:
            if conn.closing:
                return
            recovered = await self._subscribe_one(request, command)
            if recovered is not None:
                results.append((request.stream, recovered))
        if results:
            self.session.reply(subscribed(command.rid, results))

    async def _subscribe_one(self, request: StreamRequest, command: Subscribe) -> bool | None:
        """Start one stream; whether it resumed, or None when refused (answered with `error`)."""
        name = request.stream
        try:
            stream = await self._resolve(request)
        except Refused as exc:
            code = codes.ERROR_FOR_STATUS.get(exc.status, codes.BAD_REQUEST)
            self.session.reply(error(code, exc.message, command.rid, name))
            return None
        if not self.registered:
            self._register()
        try:
            recovered = await self.node.sessions.attach(self.conn, stream, request.last_event_id, name)
        except Exception:
            log.exception("ws subscribe failed", extra={**self.session.log_extra, "stream": name})
            sub = self.conn.subscriptions.get(name)
            if sub is not None:
                self.node.hub.unsubscribe(sub)
            message = "could not start the stream; retry later"
            self.session.reply(error(codes.INTERNAL, message, command.rid, name))
            return None
        if request.last_event_id is not None:
            log.info("ws resume", extra={**self.session.log_extra, "stream": name, "recovered": recovered})
        return recovered

    async def _resolve(self, request: StreamRequest) -> Stream:
        named = self.node.catalog.definition(request.stream)
        if named is not None and named.composite_param and self.principal.user is not None:
            # It bundles streams to spare a browser's HTTP connections; one WebSocket carries
            # any number of subscriptions already, each resuming on its own. (Anonymous: 401.)
            raise StreamError(
                400,
                f"{named.name} is for SSE and polling: on a WebSocket, subscribe to the streams "
                "themselves (e.g. orders, alerts)",
            )
        stream = self.node.catalog.resolve(request.stream, request.params(), self.principal)
        definition = stream.definition
        if request.symbols is not None and definition.key_param is None:
            raise StreamError(400, f"`symbols` does not apply to the {definition.name} stream")
        if request.user_id is not None and definition.owner_param is None:
            raise StreamError(400, f"`userId` does not apply to the {definition.name} stream")
        return await self.admission.owned(stream, self.principal)

    def unsubscribe(self, command: Unsubscribe) -> None:
        for name in command.streams:
            sub = self.conn.subscriptions.get(name)
            if sub is not None:
                self.node.hub.unsubscribe(sub)
        self.session.reply(unsubscribed(command.rid, command.streams))
