"""Finnhub (finnhub.io): the trades WebSocket and the quote REST endpoint.

Stream `wss://ws.finnhub.io?token=KEY` (a bad key is refused at the handshake, HTTP 401):
- subscribe one symbol per message: `{"type":"subscribe","symbol":"AAPL"}`, and
  `{"type":"unsubscribe","symbol":"AAPL"}` (the protocol has no batches);
- trades: `{"type":"trade","data":[{"s":"AAPL","p":187.2,"t":1700000000000,"v":100,"c":[...]}]}`
  (t: unix ms; v: volume) -> price, size, exchangeTs;
- the server sends `{"type":"ping"}` now and then (no answer expected); problems come as
  `{"type":"error","msg":"..."}`. The client's keepalive is a WebSocket ping frame.
REST fallback `GET {rest_url}/api/v1/quote?symbol=AAPL` with `X-Finnhub-Token`:
`{"c":187.2,"d":..,"dp":..,"h":..,"l":..,"o":..,"pc":..,"t":1700000000}` (c: current price,
t: unix seconds); one request per symbol; 401 means the key was refused, 429 the rate limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from tickwire.upstream.adapters.base import (
    Adapter,
    check_answer,
    json_frame,
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


class FinnhubAdapter(Adapter):
    kind = "finnhub"
    batch_limit = 1
    default_url = "wss://ws.finnhub.io"
    default_rest_url = "https://finnhub.io"

    def connect(self) -> ConnectSpec:
        return ConnectSpec(with_query(self.url, token=self.token))

    def subscribe(self, symbols: Sequence[str]) -> list[Frame]:
        return [json_frame({"type": "subscribe", "symbol": s}) for s in symbols]

    def unsubscribe(self, symbols: Sequence[str]) -> list[Frame]:
        return [json_frame({"type": "unsubscribe", "symbol": s}) for s in symbols]

    def parse(self, frame: str | bytes, now_ms: int) -> Parsed:
        message = load_json(frame)
        if not isinstance(message, dict):
            raise Malformed("a Finnhub message is a JSON object")
        kind = message.get("type")
        if kind == "trade":
            data = message.get("data")
            if not isinstance(data, list):
                raise Malformed("a trade message carries a `data` list")
            return Parsed(updates=[u for item in data if (u := _trade(item)) is not None])
        if kind == "ping":
            return Parsed()
        if kind == "error":
            return Parsed(error=str(message.get("msg") or message)[:300])
        raise Malformed(f"unknown Finnhub message type {str(kind)[:40]!r}")

    def poll_requests(self, symbols: Sequence[str]) -> list[HttpRequest]:
        headers = {"X-Finnhub-Token": self.token}
        return [
            HttpRequest("GET", with_query(f"{self.rest_url}/api/v1/quote", symbol=s), headers, symbols=(s,))
            for s in symbols
        ]

    def parse_poll(self, request: HttpRequest, status: int, body: bytes, now_ms: int) -> list[Update]:
        check_answer(status, body, "Finnhub refused the API key", "Finnhub quote")
        quote = load_json(body)
        if not isinstance(quote, dict):
            raise Malformed("a Finnhub quote is a JSON object")
        price, seconds = number(quote.get("c")), number(quote.get("t"))
        if price is None or not seconds:  # an unknown symbol answers zeros
            return []
        return [Update(PRICE, request.symbols[0], {"price": price}, exchange_ts=int(seconds * 1000))]


def _trade(item: object) -> Update | None:
    if not isinstance(item, dict):
        return None
    symbol, price, ts = item.get("s"), number(item.get("p")), number(item.get("t"))
    if not isinstance(symbol, str) or price is None:
        return None
    data = {"price": price}
    volume = number(item.get("v"))
    if volume is not None:
        data["size"] = volume
    return Update(PRICE, symbol, data, exchange_ts=int(ts) if ts is not None else None)
