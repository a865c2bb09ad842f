"""Consumers (client/consumers.py, outlet.py): per-subscription handlers and iterators,
`ready()`, `history()`, and the tick policy of a consumer that falls behind, against a real
server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.servers import ServerProcess
from tickwire.client import Client, ClientEvent, OrderUpdate, PricesSnapshot


def test_handlers_and_iterators_get_their_subscriptions_events(server: ServerProcess, kit: Any) -> None:
    user = kit.uid("subs")
    a, b = kit.sym(), kit.sym()
    orders: list[str] = []
    alerts: list[str] = []
    done = asyncio.Event()

    def on_order(event: ClientEvent) -> None:  # a plain function
        if isinstance(event.data, OrderUpdate):
            orders.append(event.data.order_id or "")

    async def on_alert(event: ClientEvent) -> None:  # an async one; a failure is counted
        if event.type == "alert:new":
            alerts.append(event.data.alert_id)
            if event.data.alert_id == "a1":
                raise RuntimeError("a handler that fails does not stop the others")
            if len(alerts) == 2:
                done.set()

    async def main() -> None:
        async with kit.Publisher(server) as publish:
            await publish(kit.price(a, 1.0), kit.price(b, 2.0))
            client = Client(server.url, ["agents"], token=server.token(user), transport="ws", **kit.FAST)
            client.subscribe("orders", handler=on_order)
            client.subscribe("alerts", handler=on_alert)
            prices = client.subscribe("prices", [a])
            async with client, asyncio.timeout(15):
                await client.ready()
                await prices.ready()
                assert client.local.price(a) == 1.0  # ready: the snapshot is applied
                await publish(
                    kit.order(user, "o1"), kit.alert(user, 1), kit.alert(user, 2), kit.price(a, 3.0)
                )
                await publish(
                    kit.price(b, 4.0), {"type": "agent:status", "data": {"agentId": "x", "state": "up"}}
                )
                seen: list[Any] = []
                async for event in prices:  # what waited in events() is the subscription's now
                    if not event.is_control:
                        seen.append(event.data)
                    if event.type == "price:update" and event.raw.get("price") == 3.0:
                        break
                assert isinstance(seen[0], PricesSnapshot) and [p.symbol for p in seen[0].prices or ()] == [a]
                await done.wait()
                plain = [e async for e in until(client, "agent:status")]
                assert {e.stream for e in plain} <= {"agents"}  # subscriptions' events are not here
                assert client.stats.handler_errors == 1
        assert orders == ["o1"]
        assert alerts == ["a1", "a2"]

    asyncio.run(main())


async def until(client: Client, type_: str) -> Any:
    async for event in client.events():
        yield event
        if event.type == type_:
            return


def test_history_reads_the_events_endpoint(server: ServerProcess, kit: Any) -> None:
    user = kit.uid("history")

    async def main() -> None:
        async with kit.Publisher(server) as publish:
            ids = await publish(*(kit.alert(user, n) for n in range(5)))
        client = Client(server.url, token=server.token(user))
        try:
            page = await client.history("alerts", after=ids[0], limit=3)
            assert [e.data.alert_id for e in page] == ["a1", "a2", "a3"]
            assert page.recovered and page.last_event_id == ids[3] and all(e.replayed for e in page)
            rest = await client.history("alerts", after=page.last_event_id)
            assert [e.id for e in rest] == [ids[4]]
            with pytest.raises(ValueError, match="1 to 1000"):
                await client.history("alerts", limit=0)
        finally:
            await client.close()

    asyncio.run(main())


@pytest.mark.parametrize(("policy", "conflated"), [("latest", True), ("never", False)])
def test_the_tick_policy_of_a_consumer_that_falls_behind(
    server: ServerProcess, kit: Any, policy: str, conflated: bool
) -> None:
    """A consumer that awaits per event behind a feed of 600 ticks over 3 symbols: with
    `latest` (the default) its queue keeps the newest tick per symbol and says how many it
    conflated; with `never` it gets every tick (the client waits for room)."""
    symbols = [kit.sym() for _ in range(3)]

    async def main() -> tuple[int, int]:
        client = Client(
            server.url,
            [f"prices?symbols={','.join(symbols)}"],
            queue_capacity=20,
            conflate={"prices": policy},
            **kit.FAST,
        )
        received = 0
        async with client, kit.Publisher(server) as publish, asyncio.timeout(30):
            await client.ready()
            await publish(*(kit.price(symbols[n % 3], 100 + n) for n in range(600)))
            last: dict[str, float] = {}
            async for event in client.events():
                if event.type == "price:update" and not event.is_snapshot:
                    received += 1
                    last[event.raw["symbol"]] = event.raw["price"]
                    await asyncio.sleep(0.0005)  # a slow consumer
                    if last == {symbols[0]: 697, symbols[1]: 698, symbols[2]: 699}:
                        break
            return received, client.stats.conflated

    received, conflated_count = asyncio.run(main())
    if conflated:
        assert received < 600 and conflated_count > 0 and received + conflated_count >= 600
    else:
        assert received == 600 and conflated_count == 0


def test_last_event_ids_pass_a_handlers_event_only_once_it_returned(server: ServerProcess, kit: Any) -> None:
    """A handler still busy with an event has not consumed it: `last_event_ids()` stays on
    the event before, however many wait behind it, and moves once the handler returned. An
    iterator's event counts as soon as it is yielded."""
    user = kit.uid("handled")
    gate = asyncio.Event()
    entered = asyncio.Event()
    handled: list[str] = []

    async def on_alert(event: ClientEvent) -> None:
        if event.type != "alert:new":
            return
        if event.data.alert_id == "a1":
            entered.set()
            await gate.wait()
        handled.append(event.data.alert_id)

    async def main() -> None:
        client = Client(server.url, token=server.token(user), transport="ws", **kit.FAST)
        alerts = client.subscribe("alerts", handler=on_alert)
        orders = client.subscribe("orders")
        async with client, kit.Publisher(server) as publish, asyncio.timeout(15):
            await client.ready()
            ids = await publish(kit.alert(user, 0), kit.alert(user, 1), kit.alert(user, 2))
            await entered.wait()
            assert alerts.outlet is not None
            while len(alerts.outlet) < 1:  # a2 waits behind the busy handler  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            assert handled == ["a0"]
            assert client.last_event_ids()["alerts"] == ids[0]

            gate.set()
            while client.last_event_ids()["alerts"] != ids[2]:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            assert handled == ["a0", "a1", "a2"]

            [order_id] = await publish(kit.order(user, "o1"))
            async for event in orders:
                if event.id == order_id:
                    assert client.last_event_ids()["orders"] == order_id  # taken, not yet finished
                    break

    asyncio.run(main())
