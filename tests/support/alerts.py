"""Helpers of the end-to-end tests of the alerts and scans APIs (SPEC 13): requests with a
user's token, and a blocking WebSocket subscriber."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from support.servers import ServerProcess


def call(
    server: ServerProcess, method: str, path: str, token: str | None, body: Any = None, **params: Any
) -> httpx.Response:
    """An API request with a Bearer token (JSON body when given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    content = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        content = orjson.dumps(body)
    query = {k: str(v) for k, v in params.items()}
    return _client().request(method, server.url + path, headers=headers, content=content, params=query)


_CLIENT: list[httpx.Client] = []


def _client() -> httpx.Client:
    """One client for every call (building one costs a TLS context, ~50 ms)."""
    if not _CLIENT:
        _CLIENT.append(httpx.Client(timeout=10, verify=False))
    return _CLIENT[0]


def create_rule(server: ServerProcess, token: str, **rule: Any) -> dict[str, Any]:
    response = call(server, "POST", "/api/alerts/rules", token, rule)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class WSSubscriber:
    """One WebSocket (tickwire.json) subscribed to some streams; its event messages."""

    def __init__(self, server: ServerProcess, token: str, streams: list[dict[str, Any]]) -> None:
        self.ws: ClientConnection = connect(
            f"ws://127.0.0.1:{server.port}/api/stream/ws",
            additional_headers={"Authorization": f"Bearer {token}"},
            subprotocols=[Subprotocol("tickwire.json")],
            proxy=None,
            ping_interval=None,
            open_timeout=5,
            close_timeout=2,
        ).__enter__()
        self.messages: list[dict[str, Any]] = []
        self.ws.send(orjson.dumps({"type": "subscribe", "rid": "1", "streams": streams}).decode())
        self.until(lambda m: m.get("type") in ("subscribed", "error"))

    def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        for message in self.messages:
            if predicate(message):
                return message
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no matching message; got {self.messages[-10:]}"
            try:
                raw = self.ws.recv(timeout=remaining)
            except TimeoutError:
                continue
            message: dict[str, Any] = orjson.loads(raw)
            self.messages.append(message)
            if predicate(message):
                return message

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "event" and m.get("event") == event_type]

    def close(self) -> None:
        self.ws.close()
