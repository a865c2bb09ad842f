"""The WebSocket protocol (SPEC section 6): client commands in, server messages out.

No I/O here. `parse_command` turns one decoded message (a JSON or MessagePack object)
into a typed command or raises `ProtocolError` with a stable code and a message that
says exactly what is wrong; the builders return the server's messages as plain
objects for a codec (wire/codecs.py) to encode. `TokenBucket` bounds the command rate
of one connection on an injected clock.

Client to server:

    {"type":"auth","token":"..."}
    {"type":"subscribe","rid":"1","streams":[{"stream":"orders","lastEventId":"..."},
                                              {"stream":"prices","symbols":["AAPL"],"delta":true}]}
    {"type":"unsubscribe","rid":"2","streams":["prices"]}
    {"type":"ping","ts":1735819800000}

Server to client: `authenticated`, `subscribed`, `unsubscribed`, `event`, `error`, `pong`.
`rid` (a string or an integer) is optional on every command and echoed in its answers.
Unknown fields are refused, so a typo (`lastEventID`) is an error rather than a silent
fresh start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tickwire.codes import BAD_REQUEST, TOO_MANY_SUBSCRIPTIONS, UNKNOWN_TYPE
from tickwire.config import Settings
from tickwire.core.clock import Clock
from tickwire.errors import ProtocolError, Rid, show

# Bounds of the message format itself (the operational bounds are settings: CommandLimits).
MAX_RID_CHARS = 64
MAX_TOKEN_CHARS = 8192
MAX_TS_CHARS = 64

_STREAM = re.compile(r"^[a-z][a-z-]{0,31}(/[A-Za-z0-9._:-]{1,128})?$")
_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Scalar = str | int | float | None


@dataclass(frozen=True, slots=True)
class CommandLimits:
    """The settings that bound a command (TICKWIRE_WS_MAX_SUBSCRIPTIONS, ...)."""

    max_subscriptions: int
    max_symbols: int
    max_last_event_id: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CommandLimits:
        return cls(settings.ws_max_subscriptions, settings.max_symbols, settings.max_last_event_id)


DEFAULT_LIMITS = CommandLimits.from_settings(Settings.model_validate({}))


def error_message(exc: ProtocolError) -> dict[str, Any]:
    """The `error` message answering a refused command."""
    return error(exc.code, exc.message, exc.rid, exc.stream)


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """One stream of a `subscribe`: its name and where to start."""

    stream: str  # the path after the prefix: "orders", "strategies/s1"
    last_event_id: str | None = None
    symbols: tuple[str, ...] | None = None
    user_id: str | None = None
    delta: bool = False  # delta ticks (SPEC 6)

    def params(self) -> dict[str, str]:
        """The query parameters the same stream would have over SSE."""
        params: dict[str, str] = {"delta": "1"} if self.delta else {}
        if self.symbols is not None:
            params["symbols"] = ",".join(self.symbols)
        if self.user_id is not None:
            params["userId"] = self.user_id
        return params


@dataclass(frozen=True, slots=True)
class Auth:
    token: str
    rid: Rid = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    streams: tuple[StreamRequest, ...]
    rid: Rid = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    streams: tuple[str, ...]
    rid: Rid = None


@dataclass(frozen=True, slots=True)
class Ping:
    ts: Scalar = None
    rid: Rid = None


Command = Auth | Subscribe | Unsubscribe | Ping

_FIELDS: dict[str, frozenset[str]] = {
    "auth": frozenset({"type", "rid", "token"}),
    "subscribe": frozenset({"type", "rid", "streams"}),
    "unsubscribe": frozenset({"type", "rid", "streams"}),
    "ping": frozenset({"type", "rid", "ts"}),
}
_STREAM_FIELDS = frozenset({"stream", "lastEventId", "symbols", "userId", "delta"})


def parse_command(obj: Any, limits: CommandLimits = DEFAULT_LIMITS) -> Command:
    """The command in a decoded message; `ProtocolError` says what is wrong."""
    if not isinstance(obj, Mapping):
        raise ProtocolError(BAD_REQUEST, f"a message must be an object with a `type`, got {_kind(obj)}")
    rid = _rid(obj)
    type_ = obj.get("type")
    if not isinstance(type_, str):
        raise ProtocolError(BAD_REQUEST, "`type` must be a string", rid)
    fields = _FIELDS.get(type_)
    if fields is None:
        raise ProtocolError(
            UNKNOWN_TYPE,
            f"unknown message type {show(type_)}; expected one of: auth, subscribe, unsubscribe, ping",
            rid,
        )
    _only(obj, fields, type_, rid)
    if type_ == "auth":
        token = obj.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError(BAD_REQUEST, "`token` must be a non-empty string", rid)
        if len(token) > MAX_TOKEN_CHARS:
            raise ProtocolError(BAD_REQUEST, f"`token` is longer than {MAX_TOKEN_CHARS} characters", rid)
        return Auth(token, rid)
    if type_ == "subscribe":
        return Subscribe(_stream_requests(obj.get("streams"), rid, limits), rid)
    if type_ == "unsubscribe":
        return Unsubscribe(_stream_names(obj.get("streams"), rid, limits), rid)
    ts = obj.get("ts")
    if isinstance(ts, bool) or not (ts is None or isinstance(ts, int | float | str)):
        raise ProtocolError(BAD_REQUEST, "`ts` must be a number or a string", rid)
    if isinstance(ts, str) and len(ts) > MAX_TS_CHARS:
        raise ProtocolError(BAD_REQUEST, f"`ts` is longer than {MAX_TS_CHARS} characters", rid)
    return Ping(ts, rid)


def normalize_stream(name: str) -> str:
    """The canonical name of a stream: no leading or trailing slash."""
    return name.strip("/")


def _stream_requests(raw: Any, rid: Rid, limits: CommandLimits) -> tuple[StreamRequest, ...]:
    items = _list(raw, "streams", rid)
    if len(items) > limits.max_subscriptions:
        raise ProtocolError(
            TOO_MANY_SUBSCRIPTIONS, f"at most {limits.max_subscriptions} streams per connection", rid
        )
    out: list[StreamRequest] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"streams[{index}]"
        if not isinstance(item, Mapping):
            raise ProtocolError(BAD_REQUEST, f"{where} must be an object with a `stream`", rid)
        unknown = sorted(str(k)[:40] for k in item if k not in _STREAM_FIELDS)
        if unknown:
            raise ProtocolError(
                BAD_REQUEST,
                f"unknown field(s) {', '.join(unknown)} in {where}; "
                "known: stream, lastEventId, symbols, userId, delta",
                rid,
            )
        name = _stream_name(item.get("stream"), where, rid)
        if name in seen:
            raise ProtocolError(BAD_REQUEST, f"{where}: stream {name!r} appears twice", rid, name)
        seen.add(name)
        last = item.get("lastEventId")
        if last is not None and not isinstance(last, str):
            raise ProtocolError(BAD_REQUEST, f"{where}.lastEventId must be a string", rid, name)
        delta = item.get("delta", False)
        if not isinstance(delta, bool):
            raise ProtocolError(BAD_REQUEST, f"{where}.delta must be true or false", rid, name)
        out.append(
            StreamRequest(
                name,
                last[: limits.max_last_event_id] if last else None,
                _symbols(item.get("symbols"), where, rid, name, limits.max_symbols),
                _user_id(item.get("userId"), where, rid, name),
                delta,
            )
        )
    return tuple(out)


def _stream_names(raw: Any, rid: Rid, limits: CommandLimits) -> tuple[str, ...]:
    items = _list(raw, "streams", rid)
    if len(items) > limits.max_subscriptions:
        raise ProtocolError(BAD_REQUEST, f"at most {limits.max_subscriptions} streams per command", rid)
    names = [_stream_name(item, f"streams[{i}]", rid) for i, item in enumerate(items)]
    return tuple(dict.fromkeys(names))


def _stream_name(raw: Any, where: str, rid: Rid) -> str:
    if not isinstance(raw, str):
        raise ProtocolError(BAD_REQUEST, f'{where}: `stream` must be a string such as "orders"', rid)
    name = normalize_stream(raw)
    if not _STREAM.fullmatch(name):
        raise ProtocolError(
            BAD_REQUEST, f'{where}: {show(raw)} is not a stream name (e.g. "orders", "strategies/s1")', rid
        )
    return name


def _symbols(raw: Any, where: str, rid: Rid, name: str, max_symbols: int) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise ProtocolError(
            BAD_REQUEST, f"{where}.symbols must be a non-empty list of strings (omit it for all)", rid, name
        )
    if len(raw) > max_symbols:
        raise ProtocolError(
            BAD_REQUEST, f"{where}.symbols: at most {max_symbols} symbols per stream", rid, name
        )
    for i, symbol in enumerate(raw):
        if not isinstance(symbol, str) or not symbol or "," in symbol:
            raise ProtocolError(
                BAD_REQUEST, f'{where}.symbols[{i}] must be a symbol such as "AAPL"', rid, name
            )
    return tuple(dict.fromkeys(raw))


def _user_id(raw: Any, where: str, rid: Rid, name: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not _NAME.fullmatch(raw):
        raise ProtocolError(BAD_REQUEST, f"{where}.userId must be a user id", rid, name)
    return raw


def _list(raw: Any, field: str, rid: Rid) -> Sequence[Any]:
    if not isinstance(raw, list) or not raw:
        raise ProtocolError(BAD_REQUEST, f"`{field}` must be a non-empty list", rid)
    return raw


def _rid(obj: Mapping[Any, Any]) -> Rid:
    rid = obj.get("rid")
    if rid is None:
        return None
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        raise ProtocolError(BAD_REQUEST, "`rid` must be a string or an integer")
    if isinstance(rid, str) and len(rid) > MAX_RID_CHARS:
        raise ProtocolError(BAD_REQUEST, f"`rid` is longer than {MAX_RID_CHARS} characters")
    if isinstance(rid, int) and not -(2**53) < rid < 2**53:
        raise ProtocolError(BAD_REQUEST, "`rid` must be an integer a JavaScript client can hold")
    return rid


def _only(obj: Mapping[Any, Any], fields: frozenset[str], type_: str, rid: Rid) -> None:
    unknown = sorted(str(k)[:40] for k in obj if k not in fields)
    if unknown:
        known = ", ".join(sorted(fields - {"type"}))
        raise ProtocolError(
            BAD_REQUEST, f"unknown field(s) {', '.join(unknown)} in {type_}; known: {known}", rid
        )


def _kind(obj: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(obj), "a number" if isinstance(obj, int | float) else type(obj).__name__
    )


# -- server messages -------------------------------------------------------------------


def _with_rid(message: dict[str, Any], rid: Rid) -> dict[str, Any]:
    if rid is not None:
        message["rid"] = rid
    return message


# The protocol's version (SPEC 6): in `authenticated`, `subscribed` and the SSE `connected`
# event. A client refuses a major version it does not know.
PROTOCOL_VERSION = 1


def authenticated(user: str, rid: Rid = None) -> dict[str, Any]:
    return _with_rid({"type": "authenticated", "v": PROTOCOL_VERSION, "userId": user}, rid)


def subscribed(rid: Rid, results: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "subscribed", "v": PROTOCOL_VERSION}
    _with_rid(message, rid)
    message["streams"] = [{"stream": name, "recovered": recovered} for name, recovered in results]
    return message


def unsubscribed(rid: Rid, names: Sequence[str]) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "unsubscribed"}
    _with_rid(message, rid)
    message["streams"] = list(names)
    return message


def error(code: str, message: str, rid: Rid = None, stream: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error"}
    _with_rid(out, rid)
    out["code"] = code
    out["message"] = message
    if stream is not None:
        out["stream"] = stream
    return out


def pong(ts: Scalar, rid: Rid = None) -> dict[str, Any]:
    return _with_rid({"type": "pong", "ts": ts}, rid)


def event_message(stream: str | None, type_: str, event_id: str | None, data: Any) -> dict[str, Any]:
    """`{"type":"event","stream":...,"event":...,"id":...,"data":...}`; `stream` and `id` are
    left out when there is none (connection-wide control events, events without a position)."""
    message: dict[str, Any] = {"type": "event"}
    if stream is not None:
        message["stream"] = stream
    message["event"] = type_
    if event_id is not None:
        message["id"] = event_id
    message["data"] = data
    return message


# -- command rate ------------------------------------------------------------------------


class TokenBucket:
    """`rate` commands per second with bursts of `burst`, on the node clock."""

    __slots__ = ("_at", "_clock", "_tokens", "burst", "rate")

    def __init__(self, clock: Clock, rate: float, burst: float | None = None) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = float(burst if burst is not None else rate)
        self._tokens = self.burst
        self._at = clock.monotonic()

    def take(self) -> bool:
        now = self._clock.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
