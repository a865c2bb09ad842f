"""server/http.py: the bounds of discarding a request body after an early answer, and when a
body is still pending. The end-to-end behaviour over real sockets is in
test_e2e_body_limits.py; these cover the bounds a real client would need minutes to reach
(the total time) with a plain ASGI `receive` coroutine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tickwire.server.http import body_pending, discard_body

Receive = Callable[[], Awaitable[dict[str, Any]]]


def _body(chunks: list[bytes], then: str = "end") -> Receive:
    """A client sending `chunks`, then ending the body, leaving, or going quiet."""
    queue = list(chunks)

    async def receive() -> dict[str, Any]:
        if queue:
            chunk = queue.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(queue) or then != "end"}
        if then == "leave":
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # quiet: never sends again
        raise AssertionError("unreachable")

    return receive


def _endless(chunk: bytes) -> Receive:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"type": "http.request", "body": chunk, "more_body": True}

    return receive


def test_discarding_ends_with_the_body_or_the_client() -> None:
    assert asyncio.run(discard_body(_body([b"a" * 10, b"b" * 10, b"c"]))) is True
    assert asyncio.run(discard_body(_body([b"a" * 10], then="leave"))) is True


def test_discarding_stops_at_the_byte_bound() -> None:
    assert asyncio.run(discard_body(_endless(b"x" * 1000), max_bytes=100_000)) is False


def test_discarding_stops_at_the_time_bounds() -> None:
    quiet = _body([b"x" * 10], then="quiet")
    assert asyncio.run(discard_body(quiet, idle_s=0.01)) is False
    assert asyncio.run(discard_body(_endless(b"x"), max_bytes=1 << 40, max_s=0.0)) is False


def test_a_body_is_pending_until_read_to_its_end() -> None:
    http: dict[str, Any] = {"type": "http"}
    assert body_pending(http, {"content-length": "10"})
    assert body_pending(http, {"transfer-encoding": "chunked"})
    assert not body_pending(http, {})
    assert not body_pending(http, {"content-length": "0"})
    assert not body_pending({"type": "websocket"}, {"content-length": "10"})
    assert not body_pending({"type": "http", "state": {"tickwire.body_read": True}}, {"content-length": "10"})
