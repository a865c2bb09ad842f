"""Alpaca market data stream v2 and its latest-quote/trade REST endpoints.

Stream `wss://stream.data.alpaca.markets/v2/{feed}` (feed: iex, sip, or test), JSON text:
every server message is a list `[{"T": type, ...}]`.
- at connect `[{"T":"success","msg":"connected"}]`; the client sends
  `{"action":"auth","key":KEY,"secret":SECRET}` (within 10 s) and gets
  `[{"T":"success","msg":"authenticated"}]`, or `[{"T":"error","code":402,"msg":"auth failed"}]`;
- subscriptions name channels: `{"action":"subscribe","trades":["AAPL"],"quotes":["AAPL"]}`,
  answered by `[{"T":"subscription","trades":[...],"quotes":[...],"bars":[]}]`;
  `unsubscribe` likewise;
- trades `{"T":"t","S":"AAPL","p":187.2,"s":100,"t":"2024-01-02T15:04:05.123456789Z",...}`,
  quotes `{"T":"q","S":"AAPL","bp":187.1,"bs":2,"ap":187.3,"as":3,"t":"...",...}`;
- errors `{"T":"error","code":N,"msg":...}`: 400 invalid syntax, 401 not authenticated, 402 auth
  failed, 403 already authenticated, 404 auth timeout, 405 symbol limit exceeded, 406
  connection limit exceeded, 407 slow client, 409 insufficient subscription, 500 internal.
  402 and 409 refuse the credentials (`failed`); 401, 404, 406, 407 and 500 end this
  connection (reconnect with backoff); the others are counted.
REST fallback, headers `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY`:
`GET {rest_url}/v2/stocks/quotes/latest?symbols=A,B&feed=iex` -> `{"quotes":{"A":{"bp":..,"ap":..,"t":..}}}`
and `GET .../v2/stocks/trades/latest?symbols=A,B&feed=iex` -> `{"trades":{"A":{"p":..,"s":..,"t":..}}}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from tickwire.upstream.adapters.base import (
    Adapter,
    Options,
    check_answer,
    iso_ms,
    json_frame,
    load_json,
    number,
    with_query,
)
from tickwire.upstream.model import (
    PRICE,
    Frame,
    HttpRequest,
    Malformed,
    Parsed,
    Update,
)

REFUSED = frozenset({402, 409})  # the credentials (or the plan) will not do
GO_AWAY = frozenset({401, 404, 406, 407, 500})  # this connection is over: reconnect later


class AlpacaOptions(Options):
    feed: Literal["iex", "sip", "delayed_sip", "boats", "overnight", "test"] = "iex"
    channels: tuple[Literal["trades", "quotes"], ...] = ("trades", "quotes")


class AlpacaAdapter(Adapter):
    kind = "alpaca"
    wait_ready = True
    default_url = "wss://stream.data.alpaca.markets/v2/iex"
    default_rest_url = "https://data.alpaca.markets"
    needs_secret = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opts = self.options(AlpacaOptions)
        if not self.config.url:
            self.url = f"wss://stream.data.alpaca.markets/v2/{self.opts.feed}"

    def on_open(self) -> list[Frame]:
        return [json_frame({"action": "auth", "key": self.token, "secret": self.secret})]

    def subscribe(self, symbols: Sequence[str]) -> list[Frame]:
        return [json_frame({"action": "subscribe", **{c: list(symbols) for c in self.opts.channels}})]

    def unsubscribe(self, symbols: Sequence[str]) -> list[Frame]:
        return [json_frame({"action": "unsubscribe", **{c: list(symbols) for c in self.opts.channels}})]

    def parse(self, frame: str | bytes, now_ms: int) -> Parsed:
        messages = load_json(frame)
        if not isinstance(messages, list):
            raise Malformed("an Alpaca message is a JSON list")
        parsed = Parsed()
        for message in messages:
            if not isinstance(message, dict):
                raise Malformed("an Alpaca message lists objects")
            self._one(message, parsed)
        return parsed

    def _one(self, message: dict[str, Any], parsed: Parsed) -> None:
        kind = message.get("T")
        if kind in ("t", "q"):
            update = _update(message, quote=kind == "q")
            if update is None:
                raise Malformed(f"an Alpaca {'quote' if kind == 'q' else 'trade'} without symbol or price")
            parsed.updates.append(update)
        elif kind == "success":
            parsed.ready = parsed.ready or message.get("msg") == "authenticated"
        elif kind == "error":
            code = message.get("code")
            text = f"Alpaca error {code}: {message.get('msg')}"
            if code in REFUSED:
                parsed.fatal = text
            elif code in GO_AWAY:
                parsed.retry = text
            else:
                parsed.error = text
        elif kind in ("subscription", "b", "d", "u", "s", "l", "c", "x"):
            pass  # acknowledgements and channels tickwire does not ask for
        else:
            raise Malformed(f"unknown Alpaca message type {str(kind)[:40]!r}")

    def poll_requests(self, symbols: Sequence[str]) -> list[HttpRequest]:
        headers = {"APCA-API-KEY-ID": self.token, "APCA-API-SECRET-KEY": self.secret}
        feed = self.opts.feed if self.opts.feed != "test" else "iex"
        joined = ",".join(symbols)
        requests = []
        for channel in self.opts.channels:
            url = with_query(f"{self.rest_url}/v2/stocks/{channel}/latest", symbols=joined, feed=feed)
            requests.append(HttpRequest("GET", url, headers, symbols=tuple(symbols)))
        return requests

    def parse_poll(self, request: HttpRequest, status: int, body: bytes, now_ms: int) -> list[Update]:
        check_answer(status, body, "Alpaca refused the API key", "Alpaca latest")
        answer = load_json(body)
        quote = "/quotes/" in request.url
        found = answer.get("quotes" if quote else "trades") if isinstance(answer, dict) else None
        if not isinstance(found, dict):
            raise Malformed("an Alpaca latest answer maps symbols to values")
        updates = []
        for symbol, value in found.items():
            if isinstance(value, dict):
                update = _update({**value, "S": symbol}, quote=quote)
                if update is not None:
                    updates.append(update)
        return updates


def _update(message: dict[str, Any], *, quote: bool) -> Update | None:
    symbol = message.get("S")
    if not isinstance(symbol, str):
        return None
    names = (("bid", "bp"), ("ask", "ap")) if quote else (("price", "p"), ("size", "s"))
    data = {ours: v for ours, theirs in names if (v := number(message.get(theirs))) is not None}
    if not data:
        return None
    return Update(PRICE, symbol, data, exchange_ts=iso_ms(message.get("t")))
