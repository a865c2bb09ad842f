"""End to end: tokens expire on the open connection too (SPEC 5).

With a 3-second token (its `exp` is 2 to 3 s away: JWT times are whole seconds): an SSE
response gets `event: auth:expired` and ends; a WebSocket gets the same as an `event`
message and is closed with 4001, unless it sent `auth` with a fresh token for the same user
in time; a long-poll's wait ends at the token's expiry with what there is. Each test shows
that the end came at the expiry, not before it: the same token is refused right after.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from support.async_streams import SSEStream, WSStream
from support.e2e import ISO_RE, alert, publish, uid
from support.servers import ServerProcess

TTL = 3
BOUND_S = 20  # never hang: the streams below would stay open forever if tokens did not expire


async def refused(http: httpx.AsyncClient, server: ServerProcess, token: str) -> bool:
    """Whether `token` is expired by now: a new stream request with it gets 401."""
    response = await http.get(
        server.url + "/api/stream/alerts/events", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code == 401


def check_expired_payload(data: dict[str, Any]) -> None:
    assert set(data) == {"message", "timestamp"}, data
    assert "expired" in data["message"]
    assert ISO_RE.match(data["timestamp"]), data


def test_an_sse_response_ends_with_auth_expired_at_the_tokens_exp(server: ServerProcess) -> None:
    user = uid("exp-sse")
    token = server.token(user, ttl=TTL)

    async def main() -> None:
        async with httpx.AsyncClient(timeout=20) as http, asyncio.timeout(BOUND_S):
            stream = await SSEStream(http, server.url, "alerts", token).open()
            publish(server, alert(user, 1))  # events flow until the expiry
            await stream.read_until(lambda events: any(e.event == "alert:new" for e in events))
            assert await stream.read_to_end() == "clean"
            last = stream.events[-1]
            assert (last.event, last.id) == ("auth:expired", None)
            check_expired_payload(orjson.loads(last.data))
            assert [e.event for e in stream.events] == ["connected", "alert:new", "auth:expired"]
            assert await refused(http, server, token)

    asyncio.run(main())


def test_a_websocket_gets_auth_expired_then_close_4001(server: ServerProcess) -> None:
    user = uid("exp-ws")
    token = server.token(user, ttl=TTL)

    async def main() -> None:
        async with httpx.AsyncClient(timeout=20) as http, asyncio.timeout(BOUND_S):
            ws = await WSStream(server.url, token).open([{"stream": "alerts"}])
            publish(server, alert(user, 1))
            await ws.until(lambda messages: bool(ws.events("alert:new")))
            assert await ws.read_to_close() == 4001
            last = ws.messages[-1]
            assert {k: v for k, v in last.items() if k != "data"} == {
                "type": "event",
                "event": "auth:expired",
            }
            check_expired_payload(last["data"])
            assert await refused(http, server, token)

    asyncio.run(main())


def test_a_websocket_that_reauthenticates_in_time_keeps_streaming(server: ServerProcess) -> None:
    user = uid("exp-reauth")
    token = server.token(user, ttl=TTL)

    async def main() -> None:
        async with httpx.AsyncClient(timeout=20) as http, asyncio.timeout(BOUND_S):
            ws = await WSStream(server.url, token).open([{"stream": "alerts"}])
            # A witness with a token issued after the socket's: it expires no earlier.
            witness = await SSEStream(http, server.url, "alerts", server.token(user, ttl=TTL)).open()
            assert ws.conn is not None
            await ws.conn.send(
                orjson.dumps({"type": "auth", "rid": "re", "token": server.token(user)}).decode()
            )
            await ws.until(lambda messages: any(m.get("type") == "authenticated" for m in messages))
            assert [m for m in ws.messages if m.get("type") == "authenticated"] == [
                {"type": "authenticated", "v": 1, "rid": "re", "userId": user}
            ]
            assert await witness.read_to_end() == "clean"  # the first token's exp has passed
            assert witness.events[-1].event == "auth:expired"
            publish(server, alert(user, 2))
            await ws.until(
                lambda messages: any(e["data"]["alertId"] == "a-2" for e in ws.events("alert:new"))
            )
            await ws.conn.send(orjson.dumps({"type": "ping", "rid": "p", "ts": 7}).decode())
            await ws.until(lambda messages: any(m.get("type") == "pong" for m in messages))
            assert ws.close_code is None and not ws.events("auth:expired")
            await ws.close()

    asyncio.run(main())


def test_a_long_poll_does_not_outlive_the_token(server: ServerProcess) -> None:
    user = uid("exp-poll")
    token = server.token(user, ttl=TTL)
    (after,) = publish(server, alert(user, 1))

    async def main() -> None:
        async with httpx.AsyncClient(timeout=20) as http:  # less than the wait asked for
            response = await http.get(
                server.url + "/api/stream/alerts/events",
                params={"after": after, "wait": "30"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
            assert response.json() == {"events": [], "lastEventId": after, "recovered": True}
            assert await refused(http, server, token)

    asyncio.run(main())
