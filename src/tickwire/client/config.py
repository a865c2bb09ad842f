"""The client's configuration: one frozen value object, every default explained."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tickwire.client.backoff import BackoffPolicy
from tickwire.client.credentials import TokenProvider

TransportName = Literal["sse", "ws", "poll"]
TRANSPORTS: tuple[TransportName, ...] = ("sse", "ws", "poll")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How a `Client` connects, retries, falls back, and bounds its memory."""

    # Which transport to stream with: "sse" (one HTTP response per stream), "ws" (every stream
    # on one WebSocket), or "poll" (long-polling the events endpoint).
    transport: TransportName = "sse"
    # A session token (JWT) sent as `Authorization: Bearer`; None for public streams only.
    token: str | None = None
    # Where fresh tokens come from: a sync or async callable returning the token (None or ""
    # for none), asked before every connection attempt, and so after `auth:expired`, a 401 or
    # a 4001 close, which it turns into reconnects instead of the end of the client (see
    # credentials.py). When set, `token` is not used.
    token_provider: TokenProvider | None = None
    # The server's stream prefix (TICKWIRE_PREFIX).
    prefix: str = "/api/stream"
    # Reconnect delays: 1 s doubling to 16 s, each +-20%.
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    # Connection attempts in a row that may fail before the client closes; -1 = never give up.
    max_attempts: int = -1
    # Streaming failures in a row before falling back to polling; 0 = never fall back.
    fallback_after: int = 5
    # While polling in fallback, try the streaming transport again this often (seconds).
    fallback_probe_s: float = 30.0
    # No bytes at all (events, keepalives, pongs) for this long means the connection is dead
    # and the client reconnects; 0 = never. Keep it above the server's keepalive (30 s).
    stale_timeout_s: float = 90.0
    # Events waiting for the user; over it ticks are dropped and log events wait (backpressure).
    queue_capacity: int = 10_000
    # Ids remembered per stream for dedup, and symbols remembered per stream for ordering.
    dedup_capacity: int = 4096
    key_capacity: int = 10_000
    # Ask the events endpoint about gap candidates (see gaps.py); False = trust the stream.
    gap_repair: bool = True
    # Long-poll hold (seconds, at most 30) and page size of the poll transport and gap repair.
    poll_wait_s: float = 25.0
    poll_limit: int = 1000
    # Connect and handshake timeout (seconds).
    connect_timeout_s: float = 10.0
    # WebSocket: subprotocol ("json" or "msgpack"), permessage-deflate, and the interval of the
    # `ping` command that keeps an otherwise quiet socket provably alive.
    ws_codec: Literal["json", "msgpack"] = "json"
    ws_compression: bool = True
    ws_ping_s: float = 30.0
    # Ask for gzip on SSE.
    gzip: bool = True
    # Events read from a socket but not yet processed, per session (bounded: backpressure).
    inbox_capacity: int = 1024
    # Subscription changes made within this window (seconds) go out as one batch.
    batch_window_s: float = 0.0

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {self.transport!r}")
        if self.max_attempts == 0 or self.max_attempts < -1:
            raise ValueError("max_attempts must be -1 (infinite) or at least 1")
        if self.fallback_after < 0:
            raise ValueError("fallback_after must be 0 (never) or more")
        if not 0 <= self.poll_wait_s <= 30:
            raise ValueError("poll_wait_s must be from 0 to 30 seconds (the server's bound)")
        if not 1 <= self.poll_limit <= 1000:
            raise ValueError("poll_limit must be from 1 to 1000 (the server's bound)")
        if self.stale_timeout_s < 0 or self.fallback_probe_s <= 0:
            raise ValueError("stale_timeout_s must be >= 0 and fallback_probe_s > 0")
