"""Admission: what every stream request passes before anything is streamed, for SSE,
WebSocket and poll alike.

    connect rate (SPEC 5: per IP, cluster-wide with Redis) ─► 429 + Retry-After
    query string bound ─────────────────────────────────────► 400
    credentials (Bearer, `session` cookie; WebSocket: `auth`) ─► the principal
    stream resolution (catalogue, owner of an item) ─────────► 404 / 401 / 403 / 400 / 503
    the connection, registered under the per-user cap ─────────► `connection:limit` to the oldest

Refusals are `Refused` errors carrying the status, message and headers to answer with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tickwire.config import Settings
from tickwire.core.connection import Connection, FrameCodec
from tickwire.core.streams import Principal, Stream
from tickwire.errors import BrokerUnavailable, Refused
from tickwire.node import Node
from tickwire.server.auth import Authenticator, principal_of


class Admission:
    def __init__(self, node: Node, authenticate: Authenticator) -> None:
        self.node = node
        self.settings: Settings = node.settings
        self.authenticate = authenticate

    async def check_rate(self, ip: str) -> None:
        """Count a connection attempt; 429 beyond TICKWIRE_CONNECT_RATE per minute."""
        sessions = self.node.sessions
        wait = await sessions.connect_attempt(ip)
        if wait is None:
            return
        retry = sessions.connect_limiter.retry_after(wait)
        self.node.metrics.rejected.labels("connect_rate").inc()
        raise Refused(
            429,
            f"Too many connection attempts from this address: at most {self.settings.connect_rate} per "
            f"minute; retry in {retry} s",
            {"Retry-After": str(retry)},
        )

    def check_query(self, query: bytes) -> None:
        if len(query) > self.settings.max_query:
            raise Refused(400, f"Query string too long: at most {self.settings.max_query} bytes")

    async def stream(self, path: str, params: Mapping[str, str], principal: Principal) -> Stream:
        """The stream `path` names, as `principal` may read it."""
        return await self.owned(self.node.catalog.resolve(path, params, principal), principal)

    async def owned(self, stream: Stream, principal: Principal) -> Stream:
        """A stream of an owned item on its owner's log, if `principal` may read it."""
        try:
            return await self.node.sessions.check_owner(stream, principal)
        except BrokerUnavailable as exc:
            raise Refused(503, f"Broker unavailable, retry later: {exc}") from None

    async def admit_stream(
        self, *, ip: str, headers: Mapping[str, str], query: bytes, path: str, params: Mapping[str, str]
    ) -> tuple[Stream, Principal]:
        """The whole admission of an SSE or poll request: (stream, principal), or `Refused`."""
        await self.check_rate(ip)
        self.check_query(query)
        principal = await principal_of(headers, self.authenticate)
        return await self.stream(path, params, principal), principal

    def connection(
        self,
        *,
        client_id: str,
        user: str | None,
        transport: str,
        codec: FrameCodec,
        notify: Callable[[], None],
        ip: str,
        correlation_id: str,
        expires_at: float | None = None,
    ) -> Connection:
        """A new connection with this node's bounds and timers; it ends at `expires_at`
        (the credentials' expiry, unix seconds) unless re-authenticated."""
        settings = self.settings
        return Connection(
            client_id=client_id,
            user=user,
            transport=transport,
            codec=codec,
            clock=self.node.clock,
            outbox_limit=settings.outbox_bytes,
            notify=notify,
            stats=self.node.metrics.delivery[transport],
            ip=ip,
            correlation_id=correlation_id,
            keepalive_s=settings.keepalive_s,
            idle_timeout_s=settings.idle_timeout_s,
            conflate=settings.throttle_ms > 0,
            expires_at=expires_at,
            max_ticks_per_s=settings.client_max_events_s,
        )

    def register(self, conn: Connection) -> None:
        """Count the connection for its user (the oldest over the cap is closed)."""
        self.node.sessions.register(conn)
