"""The bugs of the client's issue, each reproduced against a real server (they failed before
the fix): positions that advanced when an event was queued, a string taken for a list, more
than 10 user streams over SSE pushing the client out, async callbacks never awaited, local
state frozen while nobody reads, WebSocket refusals without a status, an unreachable server
retried silently forever."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from support.servers import ServerProcess, free_port
from tickwire.client import Client, ClientEvent, ConnectionState, StateChange, StreamRefused


async def take(client: Client, count: int, type_: str = "alert:new", within: float = 10) -> list[ClientEvent]:
    out: list[ClientEvent] = []
    async with asyncio.timeout(within):
        async for event in client.events():
            if event.type == type_ and not event.is_snapshot:
                out.append(event)
                if len(out) == count:
                    return out
    raise AssertionError(f"the client closed after {len(out)} of {count}")


def test_last_event_ids_count_what_was_consumed_not_what_was_queued(server: ServerProcess, kit: Any) -> None:
    """The issue's report: 20 alerts published, 3 consumed, `last_event_ids()` saved, the
    process gone; a new client seeded with those ids must get the other 17."""
    user = kit.uid("consumed")
    token = server.token(user)

    async def main() -> tuple[list[str], list[str]]:
        async with kit.Publisher(server) as publish:
            first = Client(server.url, ["alerts"], token=token, **kit.FAST)
            async with first:
                await first.wait_for_state(ConnectionState.CONNECTED)
                await publish(*(kit.alert(user, n) for n in range(20)))
                async with asyncio.timeout(10):  # all 20 queued, 3 consumed
                    while first.queued < 20:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                consumed = [e.data["alertId"] for e in await take(first, 3)]
                saved = {k: v for k, v in first.last_event_ids().items() if v is not None}
            second = Client(server.url, ["alerts"], token=token, last_event_ids=saved, **kit.FAST)
            async with second:
                rest = [e.data["alertId"] for e in await take(second, 17)]
                assert all(e for e in rest)
            return consumed, rest

    consumed, rest = asyncio.run(main())
    assert consumed == ["a0", "a1", "a2"]
    assert rest == [f"a{n}" for n in range(3, 20)]


def test_a_string_is_one_stream_or_symbol_never_its_letters() -> None:
    client = Client("http://127.0.0.1:9", "prices")
    assert client.references("prices") == 1 and client.references("p") == 0
    client.subscribe("prices", "AAPL")
    assert client.references("prices", "AAPL") == 1 and client.references("prices", "A") == 0
    with pytest.raises(ValueError, match="pass a list"):
        client.subscribe("prices", "AAPL,MSFT")
    with pytest.raises(ValueError, match="not a stream name"):
        Client("http://127.0.0.1:9", "orders,alerts")
    with pytest.raises(TypeError, match="expected strings"):
        client.subscribe("prices", [1, 2])  # type: ignore[list-item]
    both = Client("http://127.0.0.1:9", ["orders", "alerts"])
    assert both.references("orders") == both.references("alerts") == 1


def strategy(user: str, sid: str, n: int) -> dict[str, Any]:
    return {"type": "strategy:update", "user": user, "data": {"strategyId": sid, "status": "running", "n": n}}


@pytest.mark.parametrize("transport", ["sse", "poll"])
def test_more_than_10_user_streams_share_one_connection(
    server: ServerProcess, kit: Any, transport: str
) -> None:
    """12 user streams over SSE used to open 12 responses: the server's per-user cap (10)
    pushed the oldest out and the client ended with `connection:limit`."""
    user = kit.uid("many")
    sids = [kit.uid("s") for _ in range(7)]
    own = ["orders", "positions", "trading", "alerts", "ai-decisions", *(f"strategies/{s}" for s in sids)]

    async def main() -> None:
        async with kit.Publisher(server) as publish:
            await publish(*(strategy(user, sid, 0) for sid in sids))  # the strategies exist
            client = Client(
                server.url, [*own, "prices"], token=server.token(user), transport=transport, **kit.FAST
            )
            async with client:
                async with asyncio.timeout(15):
                    await client.wait_for_state(ConnectionState.CONNECTED)
                await publish(kit.order(user, "o1"), strategy(user, sids[-1], 1), kit.alert(user, 1))
                seen: dict[str, list[str]] = {}
                async with asyncio.timeout(15):
                    async for event in client.events():
                        data = event.data
                        fresh = data.get("n") == 1 or data.get("orderId") or data.get("alertId")
                        if event.type in ("order:update", "strategy:update", "alert:new") and fresh:
                            seen.setdefault(event.stream, []).append(event.type)
                        if len(seen) == 4:
                            break
                assert seen == {
                    "orders": ["order:update"],
                    "trading": ["order:update"],
                    f"strategies/{sids[-1]}": ["strategy:update"],
                    "alerts": ["alert:new"],
                }
                await asyncio.sleep(1.0)
                assert client.state is ConnectionState.CONNECTED
                admin = server.token("admin", "admin")
                async with httpx.AsyncClient() as http:
                    answer = await http.get(
                        server.url + "/api/stream/metrics", headers={"Authorization": f"Bearer {admin}"}
                    )
                metrics = answer.json()
                counts = {c["userId"]: c["clientCount"] for c in metrics["clientsPerUser"]}
                # One for all of the user's streams (prices go anonymously); a long-poll counts
                # only while it waits.
                assert counts.get(user, 0) == 1 if transport == "sse" else counts.get(user, 0) <= 1

    asyncio.run(main())


def test_async_callbacks_are_awaited(server: ServerProcess, kit: Any) -> None:
    user = kit.uid("callbacks")
    changes: list[str] = []
    resets: list[str] = []

    async def on_change(change: StateChange) -> None:
        await asyncio.sleep(0)
        changes.append(change.new.value)

    async def on_reset(event: ClientEvent) -> None:
        await asyncio.sleep(0)
        resets.append(event.stream)

    async def main() -> None:
        # An id of an epoch the server never had: it cannot resume, so it resets.
        client = Client(
            server.url,
            ["alerts"],
            token=server.token(user),
            last_event_ids={"alerts": "1700000000000-1yOyYAFFIa5Ga4Ih3VuHw0"},
            **kit.FAST,
        )
        client.on_state_change(on_change)
        client.on_reset(on_reset)
        async with client:
            await take(client, 1, "stream:reset")
            await asyncio.sleep(0.05)

    asyncio.run(main())
    assert changes[:2] == ["connecting", "connected"] and changes[-1] == "closed"
    assert resets == ["alerts"]


def test_local_state_stays_current_when_nobody_reads(server: ServerProcess, kit: Any) -> None:
    """A program that only looks at `client.local`: the queue of `events()` fills up and
    used to stop the reading, freezing the state."""
    user = kit.uid("unread")
    symbol = kit.sym()

    async def main() -> None:
        client = Client(
            server.url,
            ["orders", f"prices?symbols={symbol}"],
            token=server.token(user),
            transport="ws",
            queue_capacity=5,
            **kit.FAST,
        )
        async with client, kit.Publisher(server) as publish:
            await client.wait_for_state(ConnectionState.CONNECTED)
            await publish(*(kit.order(user, f"o{n}") for n in range(40)))
            await publish(kit.price(symbol, 42.0))
            async with asyncio.timeout(10):
                while "o39" not in client.local.orders or client.local.price(symbol) != 42.0:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            assert len(client.local.orders) == 40

    asyncio.run(main())


def test_a_websocket_refusal_says_its_code(server: ServerProcess, kit: Any) -> None:
    owner, other = kit.uid("owner"), kit.uid("other")
    sid = kit.uid("s")
    server.publish(strategy(owner, sid, 0))

    async def refusal(stream: str) -> StreamRefused:
        client = Client(server.url, [stream], token=server.token(other), transport="ws", **kit.FAST)
        async with client, asyncio.timeout(10):
            with pytest.raises(StreamRefused) as caught:
                async for _ in client.events():
                    pass
        return caught.value

    missing = asyncio.run(refusal(f"strategies/{kit.uid('nope')}"))
    assert missing.status == 4004
    assert missing.code == "not_found"
    forbidden = asyncio.run(refusal(f"strategies/{sid}"))
    assert forbidden.status == 4003
    assert forbidden.code == "forbidden"


async def drain(client: Client) -> None:
    async for _ in client.events():
        pass


def test_an_unreachable_server_is_surfaced_and_the_first_connect_can_time_out(
    kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from tickwire.client import ConnectTimeout

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens

    async def main() -> None:
        caplog.set_level(logging.WARNING, "tickwire.client")
        client = Client(url, ["prices"], first_connect_timeout_s=1.0, **kit.FAST)
        async with client:
            state = await asyncio.wait_for(client.wait_for_state(ConnectionState.RECONNECTING), 5)
            assert state is ConnectionState.RECONNECTING
            assert client.last_error is not None and "cannot connect" in client.last_error
            with pytest.raises(ConnectTimeout, match="within 1 s"):
                await asyncio.wait_for(drain(client), 5)
            assert client.state is ConnectionState.CLOSED
            with pytest.raises(ConnectTimeout):
                await client.ready()

    asyncio.run(main())
    assert any("cannot connect" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
