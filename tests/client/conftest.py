"""Fixtures of the client tests: publishing from the test's event loop, client settings fast
enough for tests (the defaults wait seconds), and the helpers they share."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from support.servers import ServerProcess
from tickwire.client import BackoffPolicy

# Reconnect in 10-100 ms instead of 1-16 s.
FAST = {"backoff": BackoffPolicy(0.01, 0.1), "connect_timeout_s": 5.0, "poll_wait_s": 2.0}


def uid(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sym() -> str:
    return "S" + uuid.uuid4().hex[:8].upper()


def order(user: str, order_id: str, **extra: Any) -> dict[str, Any]:
    data = {"orderId": order_id, "symbol": "AAPL", "side": "buy", "qty": 1, "status": "new", **extra}
    return {"type": "order:update", "user": user, "data": data}


def alert(user: str, n: int, level: str = "info") -> dict[str, Any]:
    return {
        "type": "alert:new",
        "user": user,
        "data": {"alertId": f"a{n}", "level": level, "message": f"m{n}"},
    }


def price(symbol: str, value: float) -> dict[str, Any]:
    return {"type": "price:update", "data": {"symbol": symbol, "price": value}}


class Publisher:
    """POST /api/publish from inside the test's event loop."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.token = server.token("test-publisher", "publisher")
        self.http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Publisher:
        self.http = httpx.AsyncClient(timeout=20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.http is not None
        await self.http.aclose()

    async def __call__(self, *items: dict[str, Any]) -> list[str]:
        assert self.http is not None
        response = await self.http.post(
            self.server.url + "/api/publish",
            json=list(items),
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text
        ids: list[str] = response.json()["ids"]
        return ids


class Kit:
    """The helpers above, for test modules (which cannot import this conftest)."""

    FAST = FAST
    uid = staticmethod(uid)
    sym = staticmethod(sym)
    order = staticmethod(order)
    alert = staticmethod(alert)
    price = staticmethod(price)
    Publisher = Publisher


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
