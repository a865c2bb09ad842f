"""Transport details against a real server: MessagePack on the WebSocket, SSE with and
without gzip, a symbol change on SSE, and the per-user connection limit (fatal: reconnecting
would only push out another connection of the same user)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.e2e_client import SSEClient
from support.servers import ServerProcess
from tickwire.client import Client, ClientEvent, ConnectionState, StreamRefused


async def first(client: Client, match: Any, within: float = 10) -> ClientEvent:
    async with asyncio.timeout(within):
        async for event in client.events():
            if match(event):
                return event
    raise AssertionError("the client closed")


@pytest.mark.parametrize(
    ("transport", "options"), [("ws", {"ws_codec": "msgpack"}), ("sse", {"gzip": False})]
)
def test_encodings(server: ServerProcess, kit: Any, transport: str, options: dict[str, Any]) -> None:
    user = kit.uid()

    async def main() -> None:
        client = Client(
            server.url, ["orders"], token=server.token(user), transport=transport, **options, **kit.FAST
        )
        async with client, kit.Publisher(server) as publish:
            await client.wait_for_state(ConnectionState.CONNECTED)
            ids = await publish(kit.order(user, "o1", price=1.5, tags=["a", "b"]))
            event = await first(client, lambda e: e.data.get("orderId") == "o1")
            assert event.id == ids[0]
            assert event.data["price"] == 1.5 and event.data["tags"] == ["a", "b"]

    asyncio.run(main())


def test_sse_reopens_a_stream_whose_symbols_change(server: ServerProcess, kit: Any) -> None:
    a, b = kit.sym(), kit.sym()

    async def main() -> None:
        client = Client(server.url, [f"prices?symbols={a}"], **kit.FAST)
        async with client, kit.Publisher(server) as publish:
            await client.wait_for_state(ConnectionState.CONNECTED)
            await publish(kit.price(b, 2.0))  # before b is wanted: it must come in b's snapshot
            handle = client.subscribe("prices", [b])
            snap = await first(
                client, lambda e: e.is_snapshot and any(p["symbol"] == b for p in e.data["prices"])
            )
            assert snap.stream == "prices"
            assert client.local.price(b) == 2.0
            await publish(kit.price(a, 1.0), kit.price(b, 3.0))
            await first(client, lambda e: e.data.get("symbol") == b and e.data.get("price") == 3.0)
            assert client.local.price(a) == 1.0
            handle.release()

    asyncio.run(main())


async def collect(client: Client, into: list[ClientEvent]) -> None:
    async with asyncio.timeout(10):
        async for event in client.events():
            into.append(event)


def test_the_connection_limit_is_surfaced_and_final(server: ServerProcess, kit: Any) -> None:
    user = kit.uid()
    token = server.token(user)

    async def main() -> None:
        client = Client(server.url, ["alerts"], token=token, **kit.FAST)
        seen: list[ClientEvent] = []
        await client.start()
        await client.wait_for_state(ConnectionState.CONNECTED)
        others = await asyncio.to_thread(
            lambda: [SSEClient(server.url, "/api/stream/alerts", token=token) for _ in range(10)]
        )
        try:
            with pytest.raises(StreamRefused, match="connection limit"):
                await collect(client, seen)
            assert seen[-1].type == "connection:limit"
            assert client.state is ConnectionState.CLOSED
        finally:
            for other in others:
                other.close()
            await client.close()

    asyncio.run(main())
