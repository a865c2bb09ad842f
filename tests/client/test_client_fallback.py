"""Fallback to polling when the proxy refuses the streaming endpoints (SSE streams, the
WebSocket upgrade) but lets the events endpoint through, and the return to streaming as soon
as they come back. Every order arrives once, in order, across both switches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.proxy import FaultProxy
from support.servers import ServerProcess
from tickwire.client import Client, ClientEvent, ConnectionState


def streaming_request(line: str) -> bool:
    return "/api/stream/" in line and "/events" not in line


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_falls_back_to_polling_and_returns(server: ServerProcess, kit: Any, transport: str) -> None:
    user = kit.uid()

    async def main() -> None:
        async with FaultProxy(server.port) as proxy:
            proxy.refuse(streaming_request)
            client = Client(
                proxy.url,
                ["orders"],
                token=server.token(user),
                transport=transport,
                fallback_probe_s=0.3,
                **kit.FAST,
            )
            changes: list[tuple[ConnectionState, str]] = []
            client.on_state_change(lambda change: changes.append((change.new, change.transport)))
            got: list[ClientEvent] = []

            async def until(order_id: str | None) -> None:
                async for event in client.events():
                    if event.is_snapshot and order_id is None:
                        return  # the stream's starting point: what follows are events
                    if event.type == "order:update" and not event.is_snapshot:
                        got.append(event)
                        if event.data["orderId"] == order_id:
                            return

            async with kit.Publisher(server) as publish:
                # A log with a position: polling then has an id to ask "after" from the start
                # (an empty log's snapshot has none, so the first events would come as snapshots).
                await publish(kit.order(user, "init"))
            async with client, kit.Publisher(server) as publish:
                async with asyncio.timeout(20):
                    await client.wait_for_state(ConnectionState.FALLBACK)
                    assert client.transport == "poll"
                    assert client.fallback_reason is not None
                    assert f"{transport} failed 5 times in a row" in client.fallback_reason
                    assert proxy.refused >= 5
                    await until(None)
                    await publish(*(kit.order(user, f"p{n}") for n in range(5)))
                    await until("p4")
                    proxy.refuse(None)  # streaming is back
                    await client.wait_for_state(ConnectionState.CONNECTED)
                    assert client.transport == transport
                    assert client.fallback_reason is None
                    await publish(*(kit.order(user, f"s{n}") for n in range(5)))
                    await until("s4")
            assert [e.data["orderId"] for e in got] == [f"p{n}" for n in range(5)] + [
                f"s{n}" for n in range(5)
            ]
            assert {e.transport for e in got[:5]} == {"poll"}
            assert {e.transport for e in got[5:]} == {transport}
            states = [state for state, _ in changes]
            assert states[: states.index(ConnectionState.FALLBACK) + 1][-1] is ConnectionState.FALLBACK
            assert (ConnectionState.CONNECTED, transport) in changes[
                changes.index((ConnectionState.FALLBACK, "poll")) :
            ]
            assert client.stats.fallbacks == 1
            gauge = client.metrics.registry.get_sample_value(
                "wire_stream_connection_state", {"client": "tickwire", "transport": transport}
            )
            assert gauge == ConnectionState.CLOSED.code

    asyncio.run(main())


def test_fallback_reason_and_state_are_visible_while_polling(server: ServerProcess, kit: Any) -> None:
    async def main() -> None:
        async with FaultProxy(server.port) as proxy:
            proxy.refuse(streaming_request)
            client = Client(proxy.url, ["prices"], fallback_after=2, fallback_probe_s=60, **kit.FAST)
            async with client:
                async with asyncio.timeout(20):
                    await client.wait_for_state(ConnectionState.FALLBACK)
                registry = client.metrics.registry
                assert registry.get_sample_value("wire_stream_fallback_active", {"client": "tickwire"}) == 1
                assert (
                    registry.get_sample_value(
                        "wire_stream_connection_state", {"client": "tickwire", "transport": "poll"}
                    )
                    == ConnectionState.FALLBACK.code
                )
                assert client.state_reason == client.fallback_reason
                assert "sse failed 2 times in a row" in client.state_reason

    asyncio.run(main())
