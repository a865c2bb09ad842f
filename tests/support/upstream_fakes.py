"""Fake market data providers on free ports, each speaking its provider's protocol (as its
public documentation describes it; see the adapters' docstrings), with fault injection:

    refuse(status)  the WebSocket handshake is answered with `status` (503, 401...)
    cut()           every open socket is dropped (TCP abort, no close frame)
    silence()       open sockets stop being read and written (pings go unanswered)
    slow_s          a delay before every answer
    send_raw(..)    anything to every client: malformed and oversized messages
    send_error(..)  the provider's own error message (a non-fatal one) to every client

Each fake records what clients sent (`received`), the symbols each subscribe and
unsubscribe message named (`subscribes`, `unsubscribes`: one list per message, so batching
shows), what is held now (`held`), handshakes, and REST requests. `push(symbol, price)` sends
a provider update to the clients holding the symbol; REST answers come from `prices`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

TOKEN = "test-provider-token"
SECRET = "test-provider-secret"


@dataclass
class HttpRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class HttpServer:
    """A minimal HTTP/1.1 server (GET and POST with Content-Length, keep-alive)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                line = await reader.readline()
                if not line.strip():
                    break
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                parts = urlsplit(target)
                status, payload = await self.handler(
                    HttpRequest(method, parts.path, parse_qs(parts.query), headers, body)
                )
                head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                writer.write(head.encode() + payload)
                await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)


class FakeProvider:
    """The WebSocket and REST servers and the fault injection every fake shares."""

    subprotocols: list[str] | None = None

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.clients: set[ServerConnection] = set()
        self.received: list[Any] = []
        self.subscribes: list[list[str]] = []
        self.unsubscribes: list[list[str]] = []
        self.held: dict[ServerConnection, set[str]] = {}
        self.handshakes = 0
        self.refusing: int | None = None
        self.silent = False
        self.slow_s = 0.0
        self.prices: dict[str, float] = {}
        self.rest_requests: list[HttpRequest] = []
        self.rest_status: int | None = None  # force this status on every REST answer
        self.ws: Server | None = None
        self.http = HttpServer(self._rest)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> FakeProvider:
        self.ws = await serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process,
            subprotocols=self.subprotocols,  # type: ignore[arg-type]
            ping_interval=None,
            max_size=None,
        )
        await self.http.start()
        return self

    async def stop(self) -> None:
        self.cut()
        if self.ws is not None:
            self.ws.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.wait_closed(), 2)
        await self.http.stop()

    async def __aenter__(self) -> FakeProvider:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        assert self.ws is not None
        return int(next(iter(self.ws.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"

    @property
    def all_held(self) -> set[str]:
        return set().union(*self.held.values()) if self.held else set()

    # -- faults ------------------------------------------------------------------------

    def refuse(self, status: int | None = 503) -> None:
        self.refusing = status

    def cut(self) -> None:
        for ws in list(self.clients):
            ws.transport.abort()

    def silence(self, on: bool = True) -> None:
        self.silent = on
        for ws in list(self.clients):
            if on:
                ws.transport.pause_reading()
            else:
                ws.transport.resume_reading()

    async def send_raw(self, data: str | bytes) -> None:
        for ws in list(self.clients):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(data)

    async def send_json(self, message: Any, to: ServerConnection | None = None) -> None:
        frame = orjson.dumps(message).decode()
        for ws in [to] if to is not None else list(self.clients):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)

    # -- the protocol (subclasses) -----------------------------------------------------

    def authorized(self, request: Request) -> bool:
        return True

    async def on_open(self, ws: ServerConnection) -> None:
        pass

    async def on_message(self, ws: ServerConnection, message: Any) -> None:
        pass

    async def push(self, symbol: str, price: float, **extra: Any) -> None:
        raise NotImplementedError

    async def send_error(self, text: str) -> None:
        raise NotImplementedError

    async def rest(self, request: HttpRequest) -> tuple[int, Any]:
        return 404, {"error": "not found"}

    def holders(self, symbol: str) -> list[ServerConnection]:
        return [ws for ws, held in self.held.items() if symbol in held]

    # -- plumbing ----------------------------------------------------------------------

    def _process(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        if self.refusing is not None:
            return connection.respond(self.refusing, "refused by the fake\n")
        if not self.authorized(request):
            return connection.respond(401, "Unauthorized\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        self.clients.add(ws)
        self.held[ws] = set()
        try:
            if self.slow_s:
                await asyncio.sleep(self.slow_s)
            await self.on_open(ws)
            async for frame in ws:
                if self.silent:
                    continue
                try:
                    message = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    message = frame
                self.received.append(message)
                if self.slow_s:
                    await asyncio.sleep(self.slow_s)
                await self.on_message(ws, message)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(ws)
            self.held.pop(ws, None)

    async def _rest(self, request: HttpRequest) -> tuple[int, bytes]:
        self.rest_requests.append(request)
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        if self.rest_status is not None:
            return self.rest_status, b'{"error":"forced"}'
        status, body = await self.rest(request)
        return status, orjson.dumps(body)


def query(request: Request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class FinnhubFake(FakeProvider):
    """wss://ws.finnhub.io?token=...: one symbol per (un)subscribe; trades; REST /api/v1/quote."""

    def authorized(self, request: Request) -> bool:
        return query(request).get("token") == [self.token]

    async def on_message(self, ws: ServerConnection, message: Any) -> None:
        kind, symbol = message.get("type"), message.get("symbol")
        if kind == "subscribe" and isinstance(symbol, str):
            self.subscribes.append([symbol])
            self.held[ws].add(symbol)
        elif kind == "unsubscribe" and isinstance(symbol, str):
            self.unsubscribes.append([symbol])
            self.held[ws].discard(symbol)
        else:
            await self.send_json({"type": "error", "msg": "Unknown message type"}, ws)

    async def push(self, symbol: str, price: float, **extra: Any) -> None:
        trade = {"s": symbol, "p": price, "t": extra.get("t", now_ms()), "v": extra.get("v", 100), "c": ["1"]}
        for ws in self.holders(symbol):
            await self.send_json({"type": "trade", "data": [trade]}, ws)

    async def ping(self) -> None:
        await self.send_json({"type": "ping"})

    async def send_error(self, text: str) -> None:
        await self.send_json({"type": "error", "msg": text})

    async def rest(self, request: HttpRequest) -> tuple[int, Any]:
        if request.headers.get("x-finnhub-token") != self.token:
            return 401, {"error": "Invalid API key"}
        symbol = request.query.get("symbol", [""])[0]
        price = self.prices.get(symbol)
        if request.path != "/api/v1/quote" or price is None:
            return 200, {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}
        return 200, {
            "c": price,
            "d": 0.1,
            "dp": 0.05,
            "h": price,
            "l": price,
            "o": price,
            "pc": price,
            "t": now_ms() // 1000,
        }


class AlpacaFake(FakeProvider):
    """Market data stream v2: welcome, auth message, channel subscriptions; latest REST."""

    def __init__(self, token: str = TOKEN, secret: str = SECRET) -> None:
        super().__init__(token)
        self.secret = secret
        self.authed: set[ServerConnection] = set()

    async def on_open(self, ws: ServerConnection) -> None:
        await self.send_json([{"T": "success", "msg": "connected"}], ws)

    async def on_message(self, ws: ServerConnection, message: Any) -> None:
        action = message.get("action") if isinstance(message, dict) else None
        if action == "auth":
            if message.get("key") == self.token and message.get("secret") == self.secret:
                self.authed.add(ws)
                await self.send_json([{"T": "success", "msg": "authenticated"}], ws)
            else:
                await self.send_json([{"T": "error", "code": 402, "msg": "auth failed"}], ws)
                await ws.close()
            return
        if ws not in self.authed:
            await self.send_json([{"T": "error", "code": 401, "msg": "not authenticated"}], ws)
            return
        if action in ("subscribe", "unsubscribe"):
            symbols = sorted(set(message.get("trades", [])) | set(message.get("quotes", [])))
            (self.subscribes if action == "subscribe" else self.unsubscribes).append(symbols)
            if action == "subscribe":
                self.held[ws] |= set(symbols)
            else:
                self.held[ws] -= set(symbols)
            held = sorted(self.held[ws])
            await self.send_json([{"T": "subscription", "trades": held, "quotes": held, "bars": []}], ws)
        else:
            await self.send_json([{"T": "error", "code": 400, "msg": "invalid syntax"}], ws)

    async def push(self, symbol: str, price: float, **extra: Any) -> None:
        stamp = extra.get("t", "2026-01-02T15:04:05.123456789Z")
        trade = {
            "T": "t",
            "S": symbol,
            "i": 1,
            "x": "V",
            "p": price,
            "s": extra.get("s", 10),
            "t": stamp,
            "z": "C",
        }
        for ws in self.holders(symbol):
            await self.send_json([trade], ws)

    async def push_quote(self, symbol: str, bid: float, ask: float, stamp: str) -> None:
        quote = {
            "T": "q",
            "S": symbol,
            "bx": "V",
            "bp": bid,
            "bs": 1,
            "ax": "V",
            "ap": ask,
            "as": 2,
            "t": stamp,
        }
        for ws in self.holders(symbol):
            await self.send_json([quote], ws)

    async def rest(self, request: HttpRequest) -> tuple[int, Any]:
        if request.headers.get("apca-api-key-id") != self.token:
            return 401, {"message": "unauthorized."}
        symbols = request.query.get("symbols", [""])[0].split(",")
        stamp = "2026-01-02T15:04:05Z"
        if request.path.endswith("/quotes/latest"):
            found = {
                s: {"bp": self.prices[s] - 0.01, "ap": self.prices[s] + 0.01, "t": stamp}
                for s in symbols
                if s in self.prices
            }
            return 200, {"quotes": found}
        found = {s: {"p": self.prices[s], "s": 1, "t": stamp} for s in symbols if s in self.prices}
        return 200, {"trades": found}


class BirdeyeFake(FakeProvider):
    """Price WebSocket (echo-protocol, x-api-key): SUBSCRIBE_PRICE simple/complex; multi_price."""

    subprotocols = ["echo-protocol"]

    def authorized(self, request: Request) -> bool:
        return query(request).get("x-api-key") == [self.token]

    async def on_open(self, ws: ServerConnection) -> None:
        await self.send_json({"type": "WELCOME", "data": None}, ws)

    async def on_message(self, ws: ServerConnection, message: Any) -> None:
        kind = message.get("type")
        if kind == "UNSUBSCRIBE_PRICE":
            self.unsubscribes.append(sorted(self.held[ws]))
            self.held[ws] = set()
        elif kind == "SUBSCRIBE_PRICE":
            data = message.get("data") or {}
            if data.get("queryType") == "simple":
                symbols = [data["address"]]
            else:
                symbols = [
                    part.split("address = ")[1].split(" AND")[0] for part in data["query"].split(" OR ")
                ]
            if len(symbols) > 100:
                await self.send_json({"type": "ERROR", "data": {"message": "Max 100 addresses"}}, ws)
                return
            self.subscribes.append(symbols)
            self.held[ws] = set(symbols)
        else:
            await self.send_json({"type": "ERROR", "data": {"message": "unknown type"}}, ws)

    async def push(self, symbol: str, price: float, **extra: Any) -> None:
        data = {
            "o": price,
            "h": price,
            "l": price,
            "c": price,
            "eventType": "ohlcv",
            "type": "1m",
            "unixTime": now_ms() // 60000 * 60,
            "v": 1.5,
            "symbol": "SYM",
            "address": symbol,
        }
        for ws in self.holders(symbol):
            await self.send_json({"type": "PRICE_DATA", "data": data}, ws)

    async def send_error(self, text: str) -> None:
        await self.send_json({"type": "ERROR", "data": {"message": text}})

    async def rest(self, request: HttpRequest) -> tuple[int, Any]:
        if request.headers.get("x-api-key") != self.token:
            return 401, {"success": False, "message": "Unauthorized"}
        addresses = request.query.get("list_address", [""])[0].split(",")
        data = {
            a: {"value": self.prices[a], "updateUnixTime": now_ms() // 1000}
            for a in addresses
            if a in self.prices
        }
        return 200, {"success": True, "data": data}


class HeliusFake(FakeProvider):
    """Enhanced WebSocket (JSON-RPC): transactionSubscribe / Unsubscribe; getSignaturesForAddress."""

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__(token)
        self.next_sub = 4743323479349712
        self.subs: dict[int, tuple[ServerConnection, list[str]]] = {}
        self.signatures: dict[str, list[dict[str, Any]]] = {}
        self.refuse_subscribes: str | None = None  # answer transactionSubscribe with this error

    def authorized(self, request: Request) -> bool:
        return query(request).get("api-key") == [self.token]

    async def on_message(self, ws: ServerConnection, message: Any) -> None:
        method, request_id = message.get("method"), message.get("id")
        if method == "transactionSubscribe" and self.refuse_subscribes is not None:
            error = {"code": -32602, "message": self.refuse_subscribes}
            await self.send_json({"jsonrpc": "2.0", "error": error, "id": request_id}, ws)
        elif method == "transactionSubscribe":
            accounts = message["params"][0]["accountInclude"]
            self.subscribes.append(list(accounts))
            self.next_sub += 1
            self.subs[self.next_sub] = (ws, list(accounts))
            self.held[ws] |= set(accounts)
            await self.send_json({"jsonrpc": "2.0", "result": self.next_sub, "id": request_id}, ws)
        elif method == "transactionUnsubscribe":
            _, accounts = self.subs.pop(message["params"][0], (ws, []))
            self.unsubscribes.append(list(accounts))
            self.held[ws] -= set(accounts)
            await self.send_json({"jsonrpc": "2.0", "result": True, "id": request_id}, ws)
        else:
            error = {"code": -32601, "message": "Method not found"}
            await self.send_json({"jsonrpc": "2.0", "error": error, "id": request_id}, ws)

    async def push(self, symbol: str, price: float = 0, **extra: Any) -> None:
        signature = extra.get("signature", f"sig{now_ms()}")
        for sub_id, (ws, accounts) in list(self.subs.items()):
            if symbol in accounts:
                result = {
                    "signature": signature,
                    "slot": 123456,
                    "transaction": {
                        "meta": {"err": None, "fee": 5000},
                        "transaction": {"message": {"accountKeys": [{"pubkey": symbol, "signer": True}]}},
                    },
                }
                note = {
                    "jsonrpc": "2.0",
                    "method": "transactionNotification",
                    "params": {"subscription": sub_id, "result": result},
                }
                await self.send_json(note, ws)

    async def send_error(self, text: str) -> None:
        """A JSON-RPC error without a request id (as for a request it could not parse)."""
        await self.send_json({"jsonrpc": "2.0", "error": {"code": -32602, "message": text}, "id": None})

    async def rest(self, request: HttpRequest) -> tuple[int, Any]:
        if request.query.get("api-key") != [self.token]:
            return 401, {"jsonrpc": "2.0", "error": {"code": -32401, "message": "invalid api key"}}
        answers = []
        for call in orjson.loads(request.body):
            account = call["params"][0]
            answers.append({"jsonrpc": "2.0", "id": call["id"], "result": self.signatures.get(account, [])})
        return 200, answers


class JsonFake(FakeProvider):
    """A generic JSON feed: {op: auth/sub/unsub, symbols: [...]}, updates in {data: [...]}."""

    async def on_message(self, ws: ServerConnection, message: Any) -> None:
        op = message.get("op")
        if op == "auth":
            ok = message.get("key") == self.token
            await self.send_json(
                {"type": "authenticated"} if ok else {"type": "error", "code": 401, "msg": "bad key"}, ws
            )
        elif op in ("sub", "unsub"):
            symbols = list(message.get("symbols", []))
            (self.subscribes if op == "sub" else self.unsubscribes).append(symbols)
            if op == "sub":
                self.held[ws] |= set(symbols)
            else:
                self.held[ws] -= set(symbols)

    async def push(self, symbol: str, price: float, **extra: Any) -> None:
        record = {"kind": "quote", "s": symbol, "p": price, "b": price - 0.5, "t": extra.get("t", now_ms())}
        for ws in self.holders(symbol):
            await self.send_json({"data": [record]}, ws)

    async def rest(self, request: HttpRequest) -> tuple[int, Any]:
        symbols = request.query.get("symbols", [""])[0].split(",")
        return 200, {
            "quotes": [
                {"kind": "quote", "s": s, "p": self.prices[s], "t": now_ms()}
                for s in symbols
                if s in self.prices
            ]
        }
