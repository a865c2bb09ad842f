"""Settings: defaults, then a YAML file, then `TICKWIRE_*` variables, then CLI flags.

Each setting is a field of `Settings`; its YAML key is the field name and its
environment variable `TICKWIRE_` + the upper-cased name (the SPEC names are fixed).
Invalid values raise `ConfigError` naming the source and the setting.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tickwire.core.sanitize import is_secret_key
from tickwire.errors import ConfigError
from tickwire.upstream.config import UpstreamConfig, check_unique, parse_upstreams

ENV_PREFIX = "TICKWIRE_"
MIN_SECRET_BYTES = 32
DRIVERS = ("native", "asgi")  # TICKWIRE_DRIVER: how streams are written (drivers/native.py)


class Settings(BaseModel):
    """Every setting of a tickwire node, with what its default means."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="listen address")
    port: int = Field(8080, ge=0, le=65535, description="listen port (0 = any free port)")
    secret: str = Field("", description="JWT HS256 secret; generated in demo mode, required otherwise")
    broker: str = Field("memory", description="`memory` or `redis://host:port/db`")
    keepalive_s: float = Field(30.0, gt=0, le=3600, description="idle keepalive comment interval")
    retry_ms: int = Field(5000, ge=0, le=600_000, description="`retry:` sent to SSE clients")
    user_buffer: int = Field(100, ge=1, le=100_000, description="log events kept per user log")
    public_buffer: int = Field(100, ge=1, le=100_000, description="log events kept per public log")
    buffer_ttl_s: float = Field(300.0, ge=0, description="user history kept after the user's last disconnect")
    idle_timeout_s: float = Field(
        300.0, gt=0, description="close connections with no event either way for this long"
    )
    ws_ping_s: float = Field(30.0, gt=0, le=3600, description="WebSocket ping interval")
    max_body: int = Field(1_048_576, ge=1024, le=64 * 1_048_576, description="largest request body, bytes")
    max_conns_per_user: int = Field(10, ge=1, le=10_000, description="concurrent connections per user")
    connect_rate: int = Field(5, ge=0, description="connection attempts per minute per IP, 0 = off")
    throttle_ms: int = Field(100, ge=0, le=60_000, description="conflation window for ticks, 0 = off")
    client_max_events_s: float = Field(
        0.0,
        ge=0,
        le=100_000,
        description="per connection, at most this many ticks per second, the others conflated per key "
        "until the cap allows (0 = no cap); log events are never capped",
    )
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="`tickwire serve` processes sharing the port (SO_REUSEPORT); more than one needs "
        "the Redis broker, which shares history and limits between them",
    )
    cors_origins: tuple[str, ...] = Field(
        ("*",), description="allowed origins; `*` = any, never with credentials"
    )
    demo: bool = Field(False, description="run the market simulator and demo users")
    prefix: str = Field("/api/stream", description="path prefix of the stream endpoints")
    outbox_bytes: int = Field(
        1_048_576, ge=4096, description="per-connection queued bytes before the slow-consumer policy"
    )
    state_capacity: int = Field(1000, ge=10, description="keyed values kept per user and kind")
    state_ttl_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="a user without a connection or an event this long is forgotten: history, keyed "
        "state, portfolio (their next event starts a new epoch); bounds the broker's memory",
    )
    max_users: int = Field(
        1_000_000,
        ge=1,
        description="memory broker: users held at most; beyond, the least recently active idle user "
        "is forgotten (their next resume gets stream:reset)",
    )
    max_query: int = Field(4096, ge=256, description="longest accepted query string, bytes")
    # Connection limits of `tickwire serve` (drivers/uvicorn_http.py); a host server that
    # mounts the app applies its own.
    max_header_bytes: int = Field(
        32_768,
        ge=1024,
        le=1_048_576,
        description="largest request head (request line and headers), bytes; beyond: 431, then close",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="a connection that has not sent a complete request head this long after it opened "
        "(or after the first byte of its next request) is closed",
    )
    body_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="a request body not received in full this long after the server starts reading it "
        "gets 408 (then the connection closes), so a client cannot hold a request open by sending slowly",
    )
    max_conns_per_ip: int = Field(
        1000,
        ge=0,
        description="open TCP connections per client IP (WebSockets and streams included), 0 = no cap; "
        "beyond, a new connection is closed as soon as it is accepted",
    )
    shutdown_grace_s: float = Field(
        2.0,
        ge=0,
        le=600,
        description="at shutdown, connections are closed at once (SSE responses end after what is queued, "
        "WebSockets get 1001) and get this long to finish before the server cuts them off",
    )
    # Protocol bounds (SPEC 5-7, 9). The defaults are the SPEC's numbers.
    max_last_event_id: int = Field(
        256, ge=32, le=4096, description="longest resume id read; longer ones are cut (and then reset)"
    )
    max_symbols: int = Field(200, ge=1, le=10_000, description="symbols per stream (`?symbols=`)")
    poll_default_limit: int = Field(100, ge=1, le=100_000, description="events per poll without `limit`")
    poll_max_limit: int = Field(1000, ge=1, le=100_000, description="largest `limit` of a poll")
    poll_max_wait_s: float = Field(30.0, ge=0, le=600, description="longest `wait` of a long-poll")
    publish_max_batch: int = Field(1000, ge=1, le=100_000, description="events per publish batch")
    max_depth: int = Field(
        32, ge=2, le=200, description="deepest nesting of objects and lists in a published payload"
    )
    max_string: int = Field(65_536, ge=256, description="longest string in a published payload, characters")
    max_items: int = Field(
        10_000, ge=16, description="most fields of an object or items of a list in a payload"
    )
    strip_fields: tuple[str, ...] = Field(
        (), description="payload keys removed from every event, at any depth (internal identifiers)"
    )
    ws_max_message_bytes: int = Field(
        64 * 1024, ge=1024, le=1 << 20, description="largest WebSocket message from a client (1008 beyond)"
    )
    ws_max_subscriptions: int = Field(100, ge=1, le=10_000, description="streams per WebSocket")
    ws_max_commands_per_s: int = Field(
        50, ge=1, le=10_000, description="WebSocket commands per second (bursts of as many)"
    )
    demo_symbols: tuple[str, ...] = Field(
        ("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA"), description="symbols of the market simulator"
    )
    demo_rate: float = Field(
        5.0, gt=0, le=10_000, description="simulated price updates per second per symbol"
    )
    log_level: str = Field("info", description="debug, info, warning or error")
    driver: str = Field(
        "native",
        description="how `tickwire serve` writes SSE responses and WebSocket frames: `native` "
        "(straight to the socket) or `asgi` (through the ASGI server's send)",
    )
    # Alerts and scans (SPEC 13).
    alert_max_rules: int = Field(100, ge=1, le=10_000, description="alert rules per user")
    alert_history: int = Field(
        1000, ge=1, le=100_000, description="alerts kept per user in the alert history (GET /api/alerts)"
    )
    alert_retention_s: float = Field(
        7 * 86400.0, gt=0, description="how long an alert stays in the history, seconds"
    )
    alert_log: bool = Field(True, description="log a line for every rule firing (the log action)")
    alert_webhook_url: str = Field(
        "", description="POST every rule firing as JSON {user, alert} to this URL (empty = no webhook)"
    )
    alert_webhook_timeout_s: float = Field(5.0, gt=0, le=120, description="timeout of one webhook request")
    alert_webhook_retries: int = Field(
        3, ge=0, le=10, description="webhook retries after a timeout, a connection error, 429 or 5xx"
    )
    scan_max: int = Field(100, ge=1, le=10_000, description="scans defined at most")
    scan_max_symbols: int = Field(1000, ge=1, le=100_000, description="symbols in one scan's universe")
    scan_queue: int = Field(
        100, ge=1, le=10_000, description="on-demand cycles queued per scan; beyond, POST .../run gets 429"
    )
    upstreams: tuple[UpstreamConfig, ...] = Field(
        (),
        description="provider connections feeding public logs (SPEC 12); TICKWIRE_UPSTREAMS names a "
        "YAML file holding the list",
    )

    @field_validator("cors_origins", "demo_symbols", "strip_fields", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("upstreams", mode="before")
    @classmethod
    def _upstreams_file(cls, value: Any) -> Any:
        return parse_upstreams(value)

    @field_validator("upstreams")
    @classmethod
    def _upstreams_unique(cls, value: tuple[UpstreamConfig, ...]) -> tuple[UpstreamConfig, ...]:
        return check_unique(value)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = "/" + value.strip("/")
        if value == "/":
            raise ValueError("must not be empty")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be debug, info, warning or error")
        return value.lower()

    @field_validator("driver")
    @classmethod
    def _driver(cls, value: str) -> str:
        if value.lower() not in DRIVERS:
            raise ValueError(f"must be {' or '.join(DRIVERS)}")
        return value.lower()

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be `memory` or a redis:// URL")
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (or empty)")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if value and len(value.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"must be at least {MIN_SECRET_BYTES} bytes for HS256 (e.g. `openssl rand -hex 32`)"
            )
        return value

    @model_validator(mode="after")
    def _poll_limits(self) -> Settings:
        if self.poll_default_limit > self.poll_max_limit:
            raise ValueError("poll_default_limit must not exceed poll_max_limit")
        return self

    @model_validator(mode="after")
    def _workers_share_a_broker(self) -> Settings:
        if self.workers > 1 and self.broker == "memory":
            raise ValueError(
                f"workers={self.workers} needs a shared broker: the memory broker keeps history, "
                "state and limits inside one process, so each worker would serve its own; set "
                "TICKWIRE_BROKER (or --broker) to redis://host:port/db, or run one worker"
            )
        if self.workers > 1 and self.demo:
            raise ValueError(
                f"workers={self.workers} with the demo: each worker would run its own market "
                "simulator and bots, publishing conflicting prices; run the demo with one worker"
            )
        return self

    @property
    def throttle_s(self) -> float:
        return self.throttle_ms / 1000

    @property
    def cors_any(self) -> bool:
        return "*" in self.cors_origins


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(
    file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge every source and validate; `ConfigError` says what to fix."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if file is not None:
        for key, value in _read_yaml(Path(file)).items():
            values[key] = value
            sources[key] = f"{file}: {key}"
    for name in Settings.model_fields:
        raw = env.get(env_name(name))
        if raw is not None and raw != "":
            values[name] = raw
            sources[name] = env_name(name)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
            sources[key] = f"--{key.replace('_', '-')}"
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None
    if not settings.secret:
        if not settings.demo:
            raise ConfigError(
                "TICKWIRE_SECRET is not set: set it to a long random string "
                "(e.g. `export TICKWIRE_SECRET=$(openssl rand -hex 32)`), or run with --demo"
            )
        settings = settings.model_copy(update={"secret": secrets.token_hex(32)})
    return settings


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, not UTF-8
        raise ConfigError(f"config file {path} cannot be read as UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"config file {path} nests collections too deeply") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    unknown = sorted(str(k) for k in loaded if k not in Settings.model_fields)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(Settings.model_fields)}"
        )
    return loaded


def _describe(exc: ValidationError, sources: Mapping[str, str]) -> str:
    lines = []
    for err in exc.errors():
        if not err["loc"]:  # a rule across settings: its input is every setting, secret included
            lines.append(str(err["msg"]).removeprefix("Value error, "))
            continue
        field = str(err["loc"][0])
        where = sources.get(field, field)
        inner = [str(part) for part in err["loc"][1:]]  # e.g. upstreams: 0, kind
        if inner:
            where += "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in inner)
        hidden = field == "secret" or any(is_secret_key(p) for p in inner)
        got = "(hidden)" if hidden else repr(err.get("input"))[:200]
        lines.append(f"{where}: {err['msg']} (got {got})")
    return "invalid configuration: " + "; ".join(lines)
