"""The `upstreams:` configuration (SPEC 12): one entry per provider connection.

    upstreams:
      - name: core              # unique; the `source` of what it publishes
        kind: tickwire          # tickwire | finnhub | alpaca | birdeye | helius | json
        url: ws://core.internal:8080/api/stream/ws
        rest_url: http://core.internal:8080
        token_env: CORE_TOKEN   # secrets come from the environment, never from the file
        symbols: [AAPL]         # always subscribed, besides demand
        linger_s: 30
        poll_interval_s: 5

The list is the `upstreams` setting: a YAML list in the configuration file, or
`TICKWIRE_UPSTREAMS=path.yaml` naming a YAML file that holds the list (at its top level or
under `upstreams:`). Kind-specific settings go under `options:` and are checked by the
kind's adapter (upstream/adapters/). Every timing has a default that is the SPEC's number.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["tickwire", "finnhub", "alpaca", "birdeye", "helius", "json"]
KINDS: tuple[str, ...] = ("tickwire", "finnhub", "alpaca", "birdeye", "helius", "json")
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class UpstreamConfig(BaseModel):
    """One provider connection; what each default means is in its description."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="unique name: the `source` of its updates, the `name` of its status")
    kind: Kind = Field(description="the provider's protocol")
    url: str = Field("", description="WebSocket URL; empty: the provider's public endpoint")
    rest_url: str = Field("", description="REST base for fallback polling; empty: no polling")
    token_env: str | None = Field(None, description="environment variable holding the API key or token")
    secret_env: str | None = Field(
        None, description="environment variable holding a second secret (alpaca: the secret key)"
    )
    symbols: tuple[str, ...] = Field((), description="always subscribed, whatever the demand")
    linger_s: float = Field(30.0, ge=0, le=86400, description="keep a symbol this long after its last reader")
    poll_interval_s: float = Field(5.0, gt=0, le=3600, description="REST polling interval while down")
    ping_s: float = Field(30.0, gt=0, le=3600, description="ping interval on an open connection")
    stale_s: float = Field(60.0, gt=0, le=3600, description="no message this long: stale, reconnect")
    backoff_initial_s: float = Field(1.0, gt=0, le=600, description="first reconnect delay")
    backoff_max_s: float = Field(60.0, gt=0, le=3600, description="longest reconnect delay")
    backoff_jitter: float = Field(0.2, ge=0, lt=1, description="+- this fraction on every delay")
    max_attempts: int = Field(100, ge=1, description="failed attempts in a row before `failed`")
    fallback_after: int = Field(
        1, ge=1, description="failed attempts in a row before REST polling starts (with a rest_url)"
    )
    connect_timeout_s: float = Field(10.0, gt=0, le=600, description="WebSocket handshake and auth bound")
    batch_window_s: float = Field(
        0.05, ge=0, le=60, description="subscription changes within this window go out together"
    )
    max_symbols: int = Field(1000, ge=1, le=100_000, description="symbols subscribed at most")
    max_message_bytes: int = Field(
        1 << 20, ge=1024, le=64 << 20, description="largest provider message; larger: counted, reconnect"
    )
    leader_only: bool = Field(
        False, description="with a shared broker (Redis), one node at a time holds this connection"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="kind-specific settings")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError("must be 1-64 of A-Z a-z 0-9 . _ -")
        return value

    @field_validator("token_env", "secret_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.fullmatch(value):
            raise ValueError("must name an environment variable (letters, digits, _)")
        return value

    @field_validator("url", "rest_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("ws://", "wss://", "http://", "https://")):
            raise ValueError("must be a ws://, wss://, http:// or https:// URL")
        return value.rstrip("/") if value.startswith(("http://", "https://")) else value

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip())
        return value

    @model_validator(mode="after")
    def _check(self) -> UpstreamConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must not be below backoff_initial_s")
        if len(self.symbols) > self.max_symbols:
            raise ValueError(f"{len(self.symbols)} symbols configured, max_symbols is {self.max_symbols}")
        for symbol in self.symbols:
            if not valid_symbol(symbol):
                raise ValueError(f"symbol {symbol[:40]!r} is not 1-128 printable characters")
        return self


def valid_symbol(value: object) -> bool:
    """A symbol (or account address) tickwire can key state and subscriptions with."""
    return isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable() and value.strip() == value


def parse_upstreams(value: Any) -> Any:
    """The `upstreams` setting before validation: a list as is; a string is a YAML file's path."""
    if not isinstance(value, str):
        return value
    path = Path(value)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"upstreams file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"upstreams file {path} cannot be read as YAML: {exc}") from None
    if isinstance(loaded, dict):
        unknown = sorted(str(k) for k in loaded if k != "upstreams")
        if unknown:
            raise ValueError(
                f"upstreams file {path}: unknown key(s) {', '.join(unknown)}; expected `upstreams`"
            )
        loaded = loaded.get("upstreams")
    if loaded is None:
        return []
    if not isinstance(loaded, list):
        raise ValueError(f"upstreams file {path} must hold a list of upstreams (or `upstreams:` with one)")
    return loaded


def check_unique(upstreams: tuple[UpstreamConfig, ...]) -> tuple[UpstreamConfig, ...]:
    names = [u.name for u in upstreams]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"upstream names must be unique: {', '.join(duplicates)} repeated")
    return upstreams
