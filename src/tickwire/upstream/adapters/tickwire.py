"""Another tickwire server as a provider: an edge node fed by a core node (SPEC 6, 7).

Stream: the core's `/api/stream/ws`, subprotocol `tickwire.json` or `tickwire.msgpack`
(`options.codec`). A token (if any) goes first as `{"type":"auth","token":..}` and nothing
is subscribed before the core answers `authenticated`: a bad token is refused with close
4001 while connecting, so the upstream goes `failed` without ever showing `connected`.
- `prices` follows demand: `{"type":"subscribe","rid":..,"streams":[{"stream":"prices",
  "symbols":[...]}]}` replaces the stream's symbol set (the core bounds it by its
  TICKWIRE_MAX_SYMBOLS, 200 by default), and is answered by the snapshot (`initializing`,
  the current prices) then live `price:update` events; an empty set unsubscribes.
- `options.streams` names public log streams relayed as they are (`agents`, `chain`): they
  are subscribed at every connect with the id of the last event received
  (`lastEventId`), so after any reconnect, the core's restart included, the core sends
  exactly the events missed (with the Redis broker its history survives restarts); a
  `stream:reset` is counted and logged (the core lost that history).
- keepalive: the protocol's `{"type":"ping","ts":..}`, answered by `pong`.
REST fallback (SPEC 7): `GET {rest_url}/api/stream/prices/events?symbols=A,B` (the current
prices) and `GET {rest_url}/api/stream/{stream}/events?after=ID` for relayed streams.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import msgpack
import orjson
from pydantic import field_validator

from tickwire.upstream.adapters.base import (
    Adapter,
    Options,
    check_answer,
    iso_ms,
    load_json,
    number,
    with_query,
)
from tickwire.upstream.model import (
    PRICE,
    ConnectSpec,
    Frame,
    HttpRequest,
    Malformed,
    Parsed,
    Update,
)
from tickwire.wire.codecs import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL

log = logging.getLogger("tickwire.upstream")

RELAYABLE = frozenset({"agents", "chain"})
FATAL_ERRORS = frozenset({"unauthorized", "forbidden", "not_found", "bad_request"})
GO_AWAY_EVENTS = frozenset({"connection:limit", "auth:expired"})
UNAUTHORIZED_CLOSE = 4001


class TickwireOptions(Options):
    codec: Literal["json", "msgpack"] = "json"
    streams: tuple[str, ...] = ()
    prefix: str = "/api/stream"
    max_symbols: int = 200

    @field_validator("streams")
    @classmethod
    def _relayable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - RELAYABLE)
        if unknown:
            raise ValueError(f"cannot relay {', '.join(unknown)}: relayable streams are {sorted(RELAYABLE)}")
        return value


class TickwireAdapter(Adapter):
    kind = "tickwire"
    replaces_set = True
    needs_token = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opts = self.options(TickwireOptions)
        self.connection_limit = self.opts.max_symbols  # type: ignore[misc]
        self.binary = self.opts.codec == "msgpack"
        self.wait_ready = bool(self.token)  # type: ignore[misc]
        self.last_ids: dict[str, str] = {}  # relayed stream -> id of the last event received
        self.resets = 0
        self._rids = itertools.count(1)

    def connect(self) -> ConnectSpec:
        protocol = MSGPACK_SUBPROTOCOL if self.binary else JSON_SUBPROTOCOL
        return ConnectSpec(self.url, subprotocols=(protocol,))

    def _frame(self, message: dict[str, Any]) -> Frame:
        if self.binary:
            return Frame(msgpack.packb(message, use_bin_type=True))
        return Frame(orjson.dumps(message).decode())

    def on_open(self) -> list[Frame]:
        frames = [self._frame({"type": "auth", "token": self.token})] if self.token else []
        if not self.opts.streams:
            return frames
        streams = []
        for name in self.opts.streams:
            entry: dict[str, Any] = {"stream": name}
            if name in self.last_ids:
                entry["lastEventId"] = self.last_ids[name]
            streams.append(entry)
        return [
            *frames,
            self._frame({"type": "subscribe", "rid": f"r{next(self._rids)}", "streams": streams}),
        ]

    def replace(self, symbols: Sequence[str], fresh: bool) -> list[Frame]:
        rid = f"p{next(self._rids)}"
        if symbols:
            entry = {"stream": "prices", "symbols": list(symbols)}
            return [self._frame({"type": "subscribe", "rid": rid, "streams": [entry]})]
        return [] if fresh else [self._frame({"type": "unsubscribe", "rid": rid, "streams": ["prices"]})]

    def ping(self, now_ms: int) -> Frame:
        return self._frame({"type": "ping", "ts": now_ms})

    def closed(self, code: int | None, reason: str) -> str | None:
        if code == UNAUTHORIZED_CLOSE:
            return f"the core refused the token (close 4001 {reason})".strip()
        return None

    def parse(self, frame: str | bytes, now_ms: int) -> Parsed:
        message = self._decode(frame)
        kind = message.get("type")
        if kind == "event":
            return self._event(message)
        if kind in ("subscribed", "authenticated"):
            return Parsed(ready=True)
        if kind in ("pong", "unsubscribed"):
            return Parsed()
        if kind == "error":
            code = str(message.get("code"))
            text = f"the core answered {code}: {str(message.get('message'))[:200]}"
            return Parsed(fatal=text) if code in FATAL_ERRORS else Parsed(error=text)
        raise Malformed(f"unknown tickwire message type {str(kind)[:40]!r}")

    def _decode(self, frame: str | bytes) -> dict[str, Any]:
        if isinstance(frame, bytes) and self.binary:
            try:
                message = msgpack.unpackb(frame, raw=False, strict_map_key=True)
            except Exception as exc:  # msgpack raises several unrelated types
                raise Malformed(f"not MessagePack: {exc}") from None
        else:
            message = load_json(frame)
        if not isinstance(message, dict):
            raise Malformed("a tickwire message is an object")
        return message

    def _event(self, message: dict[str, Any]) -> Parsed:
        stream, type_, event_id, data = (
            message.get("stream"),
            message.get("event"),
            message.get("id"),
            message.get("data"),
        )
        if not isinstance(data, dict) or not isinstance(type_, str):
            raise Malformed("an event without `event` or `data`")
        if type_ in GO_AWAY_EVENTS:
            return Parsed(retry=f"the core sent {type_}")
        if stream == "prices":
            return Parsed(updates=_prices(type_, data))
        if type_ == "stream:reset":
            self.resets += 1
            log.warning(
                "the core reset a relayed stream", extra={"stream": stream, "reason": data.get("reason")}
            )
            return Parsed(error=f"stream:reset on {stream}: {data.get('reason')}")
        if not isinstance(stream, str) or stream not in self.opts.streams or type_ == "connected":
            return Parsed()
        if isinstance(event_id, str):
            self.last_ids[stream] = event_id
        if data.get("snapshot") is True:
            return Parsed()
        return Parsed(updates=[Update(type_, "", data, key=event_id if isinstance(event_id, str) else None)])

    def poll_requests(self, symbols: Sequence[str]) -> list[HttpRequest]:
        base = f"{self.rest_url}{self.opts.prefix.rstrip('/')}"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        requests = []
        if symbols:
            url = with_query(f"{base}/prices/events", symbols=",".join(symbols))
            requests.append(HttpRequest("GET", url, headers, symbols=tuple(symbols), tag="prices"))
        for name in self.opts.streams:
            params = {"limit": "1000"}
            if name in self.last_ids:
                params["after"] = self.last_ids[name]
            requests.append(
                HttpRequest("GET", with_query(f"{base}/{name}/events", **params), headers, tag=name)
            )
        return requests

    def parse_poll(self, request: HttpRequest, status: int, body: bytes, now_ms: int) -> list[Update]:
        check_answer(status, body, "the core refused the token", f"poll {urlsplit(request.url).path}")
        answer = load_json(body)
        events = answer.get("events") if isinstance(answer, dict) else None
        if not isinstance(events, list):
            raise Malformed("a poll answer has an `events` list")
        updates: list[Update] = []
        for item in events:
            if not isinstance(item, dict):
                continue
            message = {
                "stream": request.tag,
                "event": item.get("event"),
                "id": item.get("id"),
                "data": item.get("data"),
            }
            updates += self._event(message).updates
        return updates


def _prices(type_: str, data: dict[str, Any]) -> list[Update]:
    if type_ != PRICE:
        return []
    if data.get("initializing") is True:
        items = data.get("prices")
        return [u for item in items if (u := _price(item, full=True))] if isinstance(items, list) else []
    update = _price(data, full=data.get("delta") is not True)
    return [update] if update is not None else []


def _price(item: Any, *, full: bool) -> Update | None:
    if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
        return None
    fields = {k: v for k in ("price", "bid", "ask", "size") if (v := number(item.get(k))) is not None}
    if not fields:
        return None
    ts = item.get("exchangeTs")
    exchange_ts = (
        int(ts) if isinstance(ts, int) and not isinstance(ts, bool) else iso_ms(item.get("timestamp"))
    )
    return Update(PRICE, item["symbol"], fields, exchange_ts=exchange_ts, full=full)
