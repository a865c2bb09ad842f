"""`json`: any JSON WebSocket feed, described by templates and a field mapping.

    - name: feed
      kind: json
      url: wss://feed.example/ws
      rest_url: https://feed.example
      token_env: FEED_TOKEN
      options:
        auth: {op: auth, key: $token}              # sent at connect (optional)
        ready: {"$.type": authenticated}           # subscriptions wait for such a message (optional)
        subscribe: {op: subscribe, symbols: $symbols}
        unsubscribe: {op: unsubscribe, symbols: $symbols}
        batch: 100                                 # symbols per message
        ping: {op: ping}                           # else WebSocket ping frames
        records: $.data[*]                         # where the updates are in a message
        match: {"$.type": quote}                   # which records are updates
        fields: {symbol: $.s, price: $.p, bid: $.b, ask: $.a, size: $.v, ts: $.t, seq: $.n}
        ts_unit: ms                                # ms | s | us | ns | iso
        error: {"$.type": error}                   # provider errors, counted ...
        error_message: $.msg
        auth_error: {"$.code": 401}                # ... or the credentials refused: `failed`
        rest: {path: "/quotes?symbols={symbols}", records: "$.quotes[*]", batch: 50}

In templates a value that is exactly `$symbols` becomes the batch (a list), `$symbol` one
symbol (one message per symbol), `$token` the token; inside strings `{symbols}` (joined with
commas), `{symbol}` and `{token}` are replaced. `rest.fields` defaults to `fields`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

from pydantic import field_validator

from tickwire.upstream import jsonpath
from tickwire.upstream.adapters.base import (
    Adapter,
    Options,
    check_answer,
    iso_ms,
    json_frame,
    load_json,
    number,
)
from tickwire.upstream.model import (
    PRICE,
    ConnectSpec,
    Frame,
    HttpRequest,
    Parsed,
    Update,
)

FIELDS = ("price", "bid", "ask", "size")
TS_SCALE = {"ms": 1.0, "s": 1000.0, "us": 0.001, "ns": 0.000001}


class RestOptions(Options):
    path: str
    method: Literal["GET", "POST"] = "GET"
    body: Any = None
    records: str = "$"
    fields: dict[str, str] | None = None
    batch: int = 50


class JsonOptions(Options):
    subscribe: Any
    unsubscribe: Any = None
    auth: Any = None
    ready: dict[str, Any] | None = None
    ping: Any = None
    batch: int = 100
    replace: bool = False
    headers: dict[str, str] = {}
    records: str = "$"
    match: dict[str, Any] = {}
    fields: dict[str, str]
    ts_unit: Literal["ms", "s", "us", "ns", "iso"] = "ms"
    error: dict[str, Any] | None = None
    error_message: str = "$"
    auth_error: dict[str, Any] | None = None
    rest: RestOptions | None = None

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - {"symbol", "ts", "seq", *FIELDS})
        if unknown or "symbol" not in value or not set(value) & set(FIELDS):
            raise ValueError("maps `symbol`, at least one of price/bid/ask/size, optionally ts and seq")
        for path in value.values():
            jsonpath.compile_path(path)
        return value


class Mapping:
    """Compiled `records` + `match` + `fields`: records of a document -> updates."""

    def __init__(self, records: str, match: dict[str, Any], fields: dict[str, str], ts_unit: str) -> None:
        self.records = jsonpath.compile_path(records)
        self.match = [(jsonpath.compile_path(p), v) for p, v in match.items()]
        self.fields = {name: jsonpath.compile_path(p) for name, p in fields.items()}
        self.ts_unit = ts_unit

    def updates(self, document: Any) -> list[Update]:
        found = jsonpath.find(self.records, document)
        if len(found) == 1 and isinstance(found[0], list) and self.records == ():
            found = found[0]
        out = []
        for record in found:
            if all(jsonpath.first(path, record) == value for path, value in self.match):
                update = self._update(record)
                if update is not None:
                    out.append(update)
        return out

    def _update(self, record: Any) -> Update | None:
        symbol = jsonpath.first(self.fields["symbol"], record)
        data = {
            f: v
            for f in FIELDS
            if f in self.fields and (v := number(jsonpath.first(self.fields[f], record))) is not None
        }
        if not isinstance(symbol, str) or not data:
            return None
        seq = number(jsonpath.first(self.fields["seq"], record)) if "seq" in self.fields else None
        ts = self._ts(jsonpath.first(self.fields["ts"], record)) if "ts" in self.fields else None
        return Update(PRICE, symbol, data, exchange_ts=ts, seq=int(seq) if seq is not None else None)

    def _ts(self, value: Any) -> int | None:
        if self.ts_unit == "iso":
            return iso_ms(value)
        raw = number(value)
        return int(raw * TS_SCALE[self.ts_unit]) if raw is not None else None


class Conditions:
    """`{path: value, ...}`: a document matches when every path finds its value."""

    def __init__(self, conditions: dict[str, Any] | None) -> None:
        self.checks = [(jsonpath.compile_path(p), v) for p, v in (conditions or {}).items()]

    def __call__(self, document: Any) -> bool:
        return bool(self.checks) and all(jsonpath.first(p, document) == v for p, v in self.checks)


class JsonAdapter(Adapter):
    kind = "json"
    needs_token = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        opts = self.opts = self.options(JsonOptions)
        self.batch_limit = 1 if _uses(opts.subscribe, "$symbol") else opts.batch  # type: ignore[misc]
        self.replaces_set = opts.replace  # type: ignore[misc]
        self.wait_ready = opts.ready is not None  # type: ignore[misc]
        self.mapping = Mapping(opts.records, opts.match, opts.fields, opts.ts_unit)
        rest = opts.rest
        self.rest_mapping = (
            Mapping(rest.records, opts.match, rest.fields or opts.fields, opts.ts_unit) if rest else None
        )
        self.error_message = jsonpath.compile_path(opts.error_message)
        self.is_auth_error = Conditions(opts.auth_error)
        self.is_error = Conditions(opts.error)
        self.is_ready = Conditions(opts.ready)

    @property
    def can_poll(self) -> bool:
        return bool(self.rest_url and self.opts.rest)

    def connect(self) -> ConnectSpec:
        headers = {k: self._text(v, ()) for k, v in self.opts.headers.items()}
        return ConnectSpec(self._text(self.url, ()), headers=headers)

    def on_open(self) -> list[Frame]:
        return [json_frame(self._fill(self.opts.auth, ()))] if self.opts.auth is not None else []

    def _messages(self, template: Any, symbols: Sequence[str]) -> list[Frame]:
        if template is None:
            return []
        if _uses(template, "$symbol"):
            return [json_frame(self._fill(template, (s,))) for s in symbols]
        return [json_frame(self._fill(template, tuple(symbols)))]

    def subscribe(self, symbols: Sequence[str]) -> list[Frame]:
        return self._messages(self.opts.subscribe, symbols)

    def unsubscribe(self, symbols: Sequence[str]) -> list[Frame]:
        return self._messages(self.opts.unsubscribe, symbols)

    def replace(self, symbols: Sequence[str], fresh: bool) -> list[Frame]:
        return self._messages(self.opts.subscribe, symbols)

    def ping(self, now_ms: int) -> Frame:
        return json_frame(self._fill(self.opts.ping, ())) if self.opts.ping is not None else Frame(ping=True)

    def parse(self, frame: str | bytes, now_ms: int) -> Parsed:
        message = load_json(frame)
        if self.is_auth_error(message):
            return Parsed(fatal=f"the provider refused the credentials: {self._error_text(message)}")
        if self.is_error(message):
            return Parsed(error=self._error_text(message))
        return Parsed(updates=self.mapping.updates(message), ready=self.is_ready(message))

    def _error_text(self, message: Any) -> str:
        return str(jsonpath.first(self.error_message, message))[:300]

    def poll_requests(self, symbols: Sequence[str]) -> list[HttpRequest]:
        rest = self.opts.rest
        if rest is None:
            return []
        one_each = "{symbol}" in rest.path or _uses(rest.body, "$symbol")
        groups = (
            [[s] for s in symbols]
            if one_each
            else [list(symbols[i : i + rest.batch]) for i in range(0, len(symbols), rest.batch)]
        )
        headers = {k: self._text(v, ()) for k, v in self.opts.headers.items()}
        return [
            HttpRequest(
                rest.method,
                self.rest_url + self._text(rest.path, tuple(group), url=True),
                headers,
                self._fill(rest.body, tuple(group)) if rest.body is not None else None,
                tuple(group),
            )
            for group in groups
        ]

    def parse_poll(self, request: HttpRequest, status: int, body: bytes, now_ms: int) -> list[Update]:
        check_answer(status, body, "the provider refused the credentials", "poll")
        assert self.rest_mapping is not None
        return self.rest_mapping.updates(load_json(body))

    # -- templates -----------------------------------------------------------------------

    def _fill(self, template: Any, symbols: tuple[str, ...]) -> Any:
        if isinstance(template, dict):
            return {k: self._fill(v, symbols) for k, v in template.items()}
        if isinstance(template, list):
            return [self._fill(v, symbols) for v in template]
        if template == "$symbols":
            return list(symbols)
        if template == "$symbol":
            return symbols[0] if symbols else ""
        if template == "$token":
            return self.token
        if isinstance(template, str):
            return self._text(template, symbols)
        return template

    def _text(self, text: str, symbols: tuple[str, ...], *, url: bool = False) -> str:
        enc = (lambda s: quote(s, safe="")) if url else (lambda s: s)
        return (
            text.replace("{symbols}", ",".join(enc(s) for s in symbols))
            .replace("{symbol}", enc(symbols[0]) if symbols else "")
            .replace("{token}", enc(self.token))
        )


def _uses(template: Any, placeholder: str) -> bool:
    if isinstance(template, dict):
        return any(_uses(v, placeholder) for v in template.values())
    if isinstance(template, list):
        return any(_uses(v, placeholder) for v in template)
    return bool(template == placeholder)
