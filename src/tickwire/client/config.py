"""The client's configuration: one frozen value object, every default explained, and the same
settings from a YAML file (`load_client_config`, `tickwire tail --config client.yaml`):

    transport: ws
    max_attempts: -1
    fallback_after: 5
    queue_capacity: 20000
    backoff: {initial: 0.5, max: 30, jitter: 0.2}
    conflate: {prices: latest, agents: never}

The file's keys are `ClientConfig`'s field names (`backoff` a mapping of `BackoffPolicy`'s);
an unknown key is an error naming it. Callables (`get_token`) cannot come from a file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tickwire.client.backoff import BackoffPolicy
from tickwire.client.credentials import TokenProvider

TransportName = Literal["sse", "ws", "poll"]
TRANSPORTS: tuple[TransportName, ...] = ("sse", "ws", "poll")
# What a consumer's full queue does with a stream's ticks (price updates): `latest` replaces
# the queued tick of the same symbol (the newest value wins; counted as `conflated`);
# `always` keeps only the latest tick per symbol even when there is room (a dashboard);
# `never` keeps every tick: the client stops reading until there is room (backpressure).
ConflatePolicy = Literal["latest", "always", "never"]
CONFLATE_POLICIES: tuple[ConflatePolicy, ...] = ("latest", "always", "never")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How a `Client` connects, retries, falls back, and bounds its memory."""

    # Which transport to stream with: "sse" (HTTP responses: the user's own streams share one
    # `/me` response), "ws" (every stream on one WebSocket), or "poll" (long-polling).
    transport: TransportName = "sse"
    # A session token (JWT) sent as `Authorization: Bearer`; None for public streams only.
    token: str | None = None
    # Where fresh tokens come from: a sync or async callable returning the token (None or ""
    # for none). Asked before every connection attempt, after `auth:expired`, a 401 or a 4001
    # close (which it turns into reconnects instead of the end of the client), and shortly
    # before the token's `exp` (see credentials.py). When set, `token` is not used.
    get_token: TokenProvider | None = None
    # The same, under its former name (an alias: give one or the other).
    token_provider: TokenProvider | None = None
    # Ask for a new token this long before the current one's `exp` (at most a third of its
    # lifetime); a WebSocket then re-authenticates in place and stays open.
    token_refresh_margin_s: float = 30.0
    # The server's stream prefix (TICKWIRE_PREFIX).
    prefix: str = "/api/stream"
    # Reconnect delays: 1 s doubling to 16 s, each +-20%.
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    # Connection attempts in a row that may fail before the client closes; -1 = never give up.
    max_attempts: int = -1
    # Give up (ConnectTimeout, from `events()`, `ready()`, ...) when the first connection has
    # not succeeded this many seconds after the start; None = keep trying (`max_attempts`).
    first_connect_timeout_s: float | None = None
    # Streaming failures in a row before falling back to polling; 0 = never fall back.
    fallback_after: int = 5
    # While polling in fallback, try the streaming transport again this often (seconds).
    fallback_probe_s: float = 30.0
    # No bytes at all (events, keepalives, pongs) for this long means the connection is dead
    # and the client reconnects; 0 = never. Keep it above the server's keepalive (30 s).
    stale_timeout_s: float = 90.0
    # Events waiting for each consumer. A consumer that falls this far behind on log events
    # gets the rest from the server's history when it catches up (outlet.py); ticks follow
    # `conflate`. The client never stops reading for log events, so local state stays current.
    queue_capacity: int = 10_000
    # The tick policy, for every stream or per stream name ({"prices": "always"}; a "*" key
    # is the default of the others): see ConflatePolicy above.
    conflate: ConflatePolicy | Mapping[str, ConflatePolicy] = "latest"
    # Ids remembered per stream for dedup, and symbols remembered per stream for ordering.
    dedup_capacity: int = 4096
    key_capacity: int = 10_000
    # Repair holes in a stream's sequence numbers from the events endpoint (gaps.py);
    # False = trust the stream.
    gap_repair: bool = True
    # Long-poll hold (seconds, at most 30) and page size of the poll transport and gap repair.
    poll_wait_s: float = 25.0
    poll_limit: int = 1000
    # Connect and handshake timeout (seconds).
    connect_timeout_s: float = 10.0
    # SSE and poll: read the user's own streams (orders, positions, alerts, ...) on one
    # `/api/stream/me?streams=...` connection, so a user's streams stay under the server's
    # per-user connection cap. False: one connection per stream.
    use_me: bool = True
    # WebSocket: subprotocol ("json" or "msgpack"), permessage-deflate, and the interval of the
    # `ping` command that keeps an otherwise quiet socket provably alive.
    ws_codec: Literal["json", "msgpack"] = "json"
    ws_compression: bool = True
    ws_ping_s: float = 30.0
    # Ask for gzip on SSE.
    gzip: bool = True
    # Events read from a socket but not yet processed, per session (bounded: backpressure).
    inbox_capacity: int = 4096
    # Subscription changes made within this window (seconds) go out as one batch.
    batch_window_s: float = 0.0

    def __post_init__(self) -> None:
        if self.token_provider is not None:
            if self.get_token is not None and self.get_token is not self.token_provider:
                raise ValueError("give get_token or token_provider (its former name), not both")
            object.__setattr__(self, "get_token", self.token_provider)
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
        if self.first_connect_timeout_s is not None and self.first_connect_timeout_s <= 0:
            raise ValueError("first_connect_timeout_s must be positive (or None: keep trying)")
        if self.queue_capacity < 1 or self.inbox_capacity < 1:
            raise ValueError("queue_capacity and inbox_capacity must be at least 1")
        policies = self.conflate.values() if isinstance(self.conflate, Mapping) else [self.conflate]
        for policy in policies:
            if policy not in CONFLATE_POLICIES:
                raise ValueError(f"conflate: {policy!r} is not one of {', '.join(CONFLATE_POLICIES)}")

    def conflate_for(self, stream: str) -> ConflatePolicy:
        """The tick policy of `stream`."""
        policy = self.conflate
        if isinstance(policy, Mapping):
            return policy.get(stream, policy.get("*", "latest"))
        return policy

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **overrides: Any) -> ClientConfig:
        """A configuration from plain data (a parsed YAML file), with keyword overrides."""
        known = {f.name for f in dataclasses.fields(cls)} - {"get_token", "token_provider"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown client setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        merged: dict[str, Any] = {**values, **{k: v for k, v in overrides.items() if v is not None}}
        backoff = merged.get("backoff")
        if isinstance(backoff, Mapping):
            names = {f.name for f in dataclasses.fields(BackoffPolicy)}
            wrong = sorted(set(backoff) - names)
            if wrong:
                raise ValueError(
                    f"backoff: unknown key(s) {', '.join(wrong)} (known: {', '.join(sorted(names))})"
                )
            merged["backoff"] = BackoffPolicy(**backoff)
        return cls(**merged)


def load_client_config(path: str | Path, **overrides: Any) -> ClientConfig:
    """`ClientConfig` from a YAML file (keys: the field names), keyword overrides on top
    (None values are ignored, so unset command-line flags keep the file's values)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: expected a mapping of client settings")
    try:
        return ClientConfig.from_mapping(values, **overrides)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
