"""The adapter interface: one provider's protocol, without I/O.

An adapter says how to connect (URL, headers, subprotocols: `connect`), what to send once
the socket is open (`on_open`: an auth message), how a subscription change looks on the wire
(`subscribe` / `unsubscribe` for a batch of at most `batch_limit` symbols; adapters whose
protocol replaces the whole set say `replaces_set` and get it whole), what a provider
message means (`parse`: updates, readiness, errors), what keeps the connection alive
(`ping`), and how to ask the REST API while the stream is down (`poll_requests`,
`parse_poll`). `reset` is called before every connection: per-connection state (request
ids, subscription ids) starts over.

The connection (connection.py) owns the socket, the timers and the state machine; an
adapter is a plain object fed messages, so its tests need no server.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from tickwire.domain.catalog import PRICES_LOG
from tickwire.errors import ConfigError
from tickwire.upstream.config import UpstreamConfig
from tickwire.upstream.model import (
    AuthFailed,
    ConnectSpec,
    Frame,
    HttpRequest,
    Malformed,
    Parsed,
    Update,
    UpstreamError,
)

M = TypeVar("M", bound=BaseModel)


class Options(BaseModel):
    """Base of each kind's `options:` model: unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Adapter(ABC):
    kind: ClassVar[str] = "?"
    # The public log whose readers' keys drive this adapter's subscriptions.
    feeds: ClassVar[str] = PRICES_LOG
    # Symbols per subscribe / unsubscribe message (1: the protocol takes one at a time).
    batch_limit: ClassVar[int] = 100
    # The protocol subscribes a whole set at once, replacing the previous one.
    replaces_set: ClassVar[bool] = False
    # Symbols one connection may hold (the provider's limit), None: no limit.
    connection_limit: ClassVar[int | None] = None
    # Subscriptions wait for `Parsed.ready` (an auth answer) instead of going out at open.
    wait_ready: ClassVar[bool] = False
    # The provider's public WebSocket endpoint, used when the configuration leaves `url`
    # empty. REST polling has no default: it happens only with a configured `rest_url`
    # (`default_rest_url` is what the README suggests for it).
    default_url: ClassVar[str] = ""
    default_rest_url: ClassVar[str] = ""
    # The token is required (False: optional, e.g. a tickwire upstream reading public streams).
    needs_token: ClassVar[bool] = True
    needs_secret: ClassVar[bool] = False

    def __init__(self, config: UpstreamConfig, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        env = os.environ if env is None else env
        self.token = _secret(config, config.token_env, env, "token_env", required=self.needs_token)
        self.secret = _secret(config, config.secret_env, env, "secret_env", required=self.needs_secret)
        self.url = config.url or self.default_url
        self.rest_url = config.rest_url
        if not self.url:
            raise ConfigError(f"upstream {config.name}: `url` is required for kind {self.kind}")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values never to be shown (in reasons, logs or status)."""
        return tuple(s for s in (self.token, self.secret) if s)

    def options(self, model: type[M]) -> M:
        try:
            return model(**self.config.options)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"upstream {self.config.name} ({self.kind}) options: {problems}") from None

    # -- the stream --------------------------------------------------------------------

    def reset(self) -> None:  # noqa: B027 (optional: most adapters keep no per-connection state)
        """A new connection starts: forget per-connection state."""

    def connect(self) -> ConnectSpec:
        return ConnectSpec(self.url)

    def on_open(self) -> list[Frame]:
        return []

    # An adapter implements one of the two ways a subscription changes: `subscribe` and
    # `unsubscribe` (a batch at a time), or `replace` (the whole set, `replaces_set`).
    # session.py calls only the one its `replaces_set` names.

    def subscribe(self, symbols: Sequence[str]) -> list[Frame]:
        raise TypeError(f"{self.kind}: a replaces_set adapter is sent replace(), not subscribe()")

    def unsubscribe(self, symbols: Sequence[str]) -> list[Frame]:
        raise TypeError(f"{self.kind}: a replaces_set adapter is sent replace(), not unsubscribe()")

    def replace(self, symbols: Sequence[str], fresh: bool) -> list[Frame]:
        """`replaces_set` adapters: hold exactly `symbols` now (`fresh`: nothing is held yet)."""
        raise TypeError(f"{self.kind}: only a replaces_set adapter is sent replace()")

    @abstractmethod
    def parse(self, frame: str | bytes, now_ms: int) -> Parsed:
        """What one provider message means."""

    def closed(self, code: int | None, reason: str) -> str | None:
        """The provider closed the socket with `code`: a reason to stop (refused
        credentials), or None to reconnect."""
        return None

    def ping(self, now_ms: int) -> Frame:
        """What keeps the connection alive: the protocol's ping, else a WebSocket ping frame."""
        return Frame(ping=True)

    # -- REST fallback -----------------------------------------------------------------

    @property
    def can_poll(self) -> bool:
        return bool(self.rest_url)

    def poll_requests(self, symbols: Sequence[str]) -> list[HttpRequest]:
        return []

    def parse_poll(self, request: HttpRequest, status: int, body: bytes, now_ms: int) -> list[Update]:
        return []


def _secret(
    config: UpstreamConfig, var: str | None, env: Mapping[str, str], key: str, *, required: bool
) -> str:
    if var is None:
        if required:
            raise ConfigError(
                f"upstream {config.name}: kind {config.kind} needs `{key}` naming the environment "
                "variable that holds its credential"
            )
        return ""
    value = env.get(var, "")
    if not value and required:
        raise ConfigError(f"upstream {config.name}: the environment variable {var} ({key}) is not set")
    return value


def json_frame(message: Any) -> Frame:
    return Frame(orjson.dumps(message).decode())


def load_json(frame: str | bytes) -> Any:
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"not JSON: {exc}") from None


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its query string."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def number(value: Any) -> float | None:
    """A JSON number (or a numeric string, as some providers send), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def http_error(status: int, body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace").strip()
    return f"HTTP {status}" + (f": {text}" if text else "")


def check_answer(status: int, body: bytes, refused: str, request: str) -> None:
    """A poll answer that is not 200 raises: 401/403 `AuthFailed` (`refused` says who
    refused what), anything else `UpstreamError` (`request` names what was asked)."""
    if status in (401, 403):
        raise AuthFailed(f"{refused} ({http_error(status, body)})")
    if status != 200:
        raise UpstreamError(f"{request}: {http_error(status, body)}")


def iso_ms(value: object) -> int | None:
    """An RFC 3339 time (`2024-01-02T15:04:05.123456789Z`) as unix ms, else None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)
