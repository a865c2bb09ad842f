"""Birdeye price WebSocket and its multi-price REST endpoint.

Stream `wss://public-api.birdeye.so/socket/{chain}?x-api-key=KEY` with the headers
`Origin: ws://public-api.birdeye.so`, `Sec-WebSocket-Origin` and the subprotocol
`echo-protocol` (a bad key is refused at the handshake). At most 100 tokens per connection.
- one address: `{"type":"SUBSCRIBE_PRICE","data":{"queryType":"simple","chartType":"1m",
  "address":ADDR,"currency":"usd"}}`; several at once: `{"type":"SUBSCRIBE_PRICE","data":
  {"queryType":"complex","query":"(address = A AND chartType = 1m AND currency = usd) OR (...)"}}`;
  `{"type":"UNSUBSCRIBE_PRICE"}` drops the price subscription. tickwire sends the whole set
  whenever it changes (unsubscribe, then one subscribe).
- `{"type":"WELCOME"}` at connect, `{"type":"ERROR","data":...}` for problems, and
  `{"type":"PRICE_DATA","data":{"o":..,"h":..,"l":..,"c":24.58,"eventType":"ohlcv","type":"1m",
  "unixTime":1675506000,"v":..,"symbol":"SOL","address":ADDR}}`: `c` (the candle's close, the
  latest price) becomes `price`. `unixTime` is the candle's start, not the trade's time, so
  it is not an exchange time: Birdeye updates carry no `exchangeTs`.
REST fallback `GET {rest_url}/defi/multi_price?list_address=A,B` with `X-API-KEY` and
`x-chain`: `{"success":true,"data":{A:{"value":24.6,"updateUnixTime":1675506012}}}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from tickwire.upstream.adapters.base import (
    Adapter,
    Options,
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

ORIGIN = "ws://public-api.birdeye.so"


class BirdeyeOptions(Options):
    chain: str = "solana"
    chart_type: str = "1m"
    currency: Literal["usd", "pair"] = "usd"


class BirdeyeAdapter(Adapter):
    kind = "birdeye"
    replaces_set = True
    connection_limit = 100
    batch_limit = 100
    default_url = "wss://public-api.birdeye.so/socket/solana"
    default_rest_url = "https://public-api.birdeye.so"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opts = self.options(BirdeyeOptions)
        if not self.config.url:
            self.url = f"wss://public-api.birdeye.so/socket/{self.opts.chain}"

    def connect(self) -> ConnectSpec:
        return ConnectSpec(
            with_query(self.url, **{"x-api-key": self.token}),
            headers={"Sec-WebSocket-Origin": ORIGIN},
            subprotocols=("echo-protocol",),
            origin=ORIGIN,
        )

    def replace(self, symbols: Sequence[str], fresh: bool) -> list[Frame]:
        frames = [] if fresh else [json_frame({"type": "UNSUBSCRIBE_PRICE"})]
        if not symbols:
            return frames
        opts = self.opts
        if len(symbols) == 1:
            data: dict[str, Any] = {
                "queryType": "simple",
                "chartType": opts.chart_type,
                "address": symbols[0],
                "currency": opts.currency,
            }
        else:
            query = " OR ".join(
                f"(address = {s} AND chartType = {opts.chart_type} AND currency = {opts.currency})"
                for s in symbols
            )
            data = {"queryType": "complex", "query": query}
        return [*frames, json_frame({"type": "SUBSCRIBE_PRICE", "data": data})]

    def parse(self, frame: str | bytes, now_ms: int) -> Parsed:
        message = load_json(frame)
        if not isinstance(message, dict):
            raise Malformed("a Birdeye message is a JSON object")
        kind = message.get("type")
        if kind == "PRICE_DATA":
            data = message.get("data")
            if not isinstance(data, dict):
                raise Malformed("PRICE_DATA carries a `data` object")
            address, close = data.get("address"), number(data.get("c"))
            if not isinstance(address, str) or close is None:
                raise Malformed("PRICE_DATA without address or close")
            return Parsed(updates=[Update(PRICE, address, {"price": close})])
        if kind == "WELCOME":
            return Parsed(ready=True)
        if kind == "ERROR":
            return Parsed(error=f"Birdeye error: {str(message.get('data'))[:300]}")
        return Parsed()  # other subscriptions' data (TXS_DATA...) and acknowledgements

    def poll_requests(self, symbols: Sequence[str]) -> list[HttpRequest]:
        headers = {"X-API-KEY": self.token, "x-chain": self.opts.chain, "accept": "application/json"}
        url = with_query(f"{self.rest_url}/defi/multi_price", list_address=",".join(symbols))
        return [HttpRequest("GET", url, headers, symbols=tuple(symbols))]

    def parse_poll(self, request: HttpRequest, status: int, body: bytes, now_ms: int) -> list[Update]:
        check_answer(status, body, "Birdeye refused the API key", "Birdeye multi_price")
        answer = load_json(body)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict) or answer.get("success") is False:
            raise Malformed("a Birdeye multi_price answer has `success` and a `data` object")
        updates = []
        for address, value in data.items():
            if isinstance(value, dict) and (price := number(value.get("value"))) is not None:
                seconds = number(value.get("updateUnixTime"))
                ts = int(seconds * 1000) if seconds else None
                updates.append(Update(PRICE, address, {"price": price}, exchange_ts=ts))
        return updates
