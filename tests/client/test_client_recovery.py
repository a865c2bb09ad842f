"""Recovery end to end: a server restart that loses history is surfaced as a reset (with
the fresh snapshot applied), never as silent loss; a silent connection is detected as stale
and replaced."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.proxy import FaultProxy
from support.servers import ServerProcess
from tickwire.client import Client, ClientEvent, ConnectionState

ENV = {"TICKWIRE_THROTTLE_MS": "0", "TICKWIRE_KEEPALIVE_S": "1"}


def carries(event: ClientEvent, order_id: str) -> bool:
    """The event is that order, or a snapshot holding it (polling can see either)."""
    if event.is_snapshot:
        return any(o.get("orderId") == order_id for o in event.data.get("orders", []))
    return bool(event.type == "order:update" and event.data.get("orderId") == order_id)


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
def test_restart_with_history_lost_is_a_surfaced_reset(kit: Any, transport: str) -> None:
    first = ServerProcess(ENV).start()
    second = ServerProcess(ENV)
    second.port = first.port  # the same address, a new process: a new epoch, no history
    second.env["TICKWIRE_PORT"] = str(first.port)
    user = kit.uid()
    resets: list[ClientEvent] = []

    async def main() -> None:
        client = Client(
            first.url, ["orders"], token=first.token(user), transport=transport, fallback_after=0, **kit.FAST
        )
        client.on_reset(resets.append)
        seen: list[ClientEvent] = []
        async with client:
            events = client.events()
            async with kit.Publisher(first) as publish:
                await client.wait_for_state(ConnectionState.CONNECTED)
                await publish(kit.order(user, "before-restart"))
                async with asyncio.timeout(10):
                    async for event in events:
                        seen.append(event)
                        if carries(event, "before-restart"):
                            break
            assert "before-restart" in client.local.orders
            first.kill()  # a crash: the memory broker's history is gone
            await asyncio.to_thread(second.start)
            async with kit.Publisher(second) as publish:
                await publish(kit.order(user, "after-restart"))
                async with asyncio.timeout(20):
                    async for event in events:
                        seen.append(event)
                        if carries(event, "after-restart"):
                            break
        reset_at = next(i for i, e in enumerate(seen) if e.is_reset)
        assert seen[reset_at].data["recovered"] is False
        assert seen[reset_at].data["reason"] == "unknown_epoch"
        # Nothing of the new epoch reaches the user before the reset does.
        assert all(e.is_control or carries(e, "before-restart") or e.is_snapshot for e in seen[:reset_at])
        assert resets and resets[0].is_reset
        assert sorted(client.local.orders) == ["after-restart"]  # the old order is gone with its epoch
        assert client.stats.resets == 1

    try:
        asyncio.run(main())
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_a_silent_connection_is_stale_and_replaced(server: ServerProcess, kit: Any, transport: str) -> None:
    user = kit.uid()

    async def main() -> None:
        async with FaultProxy(server.port) as proxy:
            client = Client(
                proxy.url,
                ["orders"],
                token=server.token(user),
                transport=transport,
                stale_timeout_s=1.5,  # the server's keepalive (SSE) or our pings (WS) come faster
                **kit.FAST,
            )
            reasons: list[str] = []
            client.on_state_change(lambda change: reasons.append(change.reason))
            async with client, kit.Publisher(server) as publish:
                async with asyncio.timeout(20):
                    await client.wait_for_state(ConnectionState.CONNECTED)
                    proxy.stall()  # the socket stays open; nothing comes through
                    await client.wait_for_state(ConnectionState.RECONNECTING)
                    proxy.unstall()
                    await client.wait_for_state(ConnectionState.CONNECTED)
                    await publish(kit.order(user, "after"))
                    async for event in client.events():
                        if event.data.get("orderId") == "after":
                            break
            assert any("no bytes for 1.5 s" in r for r in reasons), reasons

    asyncio.run(main())
