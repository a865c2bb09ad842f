"""The client through a fault-injecting proxy in front of a real server: 50 random cuts
(about half of them in the middle of a chunk) and spells of latency while 5,000 events are
published in batches.
Every order (a log event) arrives exactly once and in order; prices converge to the last
value, in the delivered events and in the local state. For SSE and for WebSocket."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest

from support.proxy import FaultProxy
from support.servers import ServerProcess
from tickwire.client import Client, ConnectionState

N_EVENTS = 5000
N_PRICES = 1000
BATCH = 50
CUTS = 50


@pytest.fixture(scope="module")
def big_server() -> Iterator[ServerProcess]:
    """History large enough that no resume in this test falls off the end of it."""
    proc = ServerProcess(
        {"TICKWIRE_THROTTLE_MS": "0", "TICKWIRE_USER_BUFFER": "20000", "TICKWIRE_KEEPALIVE_S": "1"}
    ).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_every_order_once_in_order_and_prices_converge_across_50_cuts(
    big_server: ServerProcess, kit: Any, transport: str
) -> None:
    rng = random.Random(f"chaos-{transport}")
    user = kit.uid("chaos")
    symbols = [kit.sym() for _ in range(5)]
    kinds = ["price"] * N_PRICES + ["order"] * (N_EVENTS - N_PRICES)
    rng.shuffle(kinds)
    items: list[dict[str, Any]] = []
    last_price: dict[str, float] = {}
    for n, kind in enumerate(kinds):
        if kind == "order":
            items.append(kit.order(user, f"o{n}"))
        else:
            symbol = rng.choice(symbols)
            last_price[symbol] = round(100 + rng.random() * 10, 4)
            items.append(kit.price(symbol, last_price[symbol]))
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    cut_at = set(rng.sample(range(1, len(batches)), CUTS))
    order_count = N_EVENTS - N_PRICES

    async def main() -> None:
        async with FaultProxy(big_server.port, seed=rng.randrange(1 << 30)) as proxy:
            client = Client(
                proxy.url,
                ["orders", "prices?symbols=" + ",".join(symbols)],
                token=big_server.token(user),
                transport=transport,
                stale_timeout_s=10,
                **kit.FAST,
            )
            got_orders: list[tuple[str, str]] = []
            delivered_price: dict[str, float] = {}
            done = asyncio.Event()

            def converged() -> bool:
                return len(got_orders) >= order_count and delivered_price == last_price

            async def consume() -> None:
                async for event in client.events():
                    if (
                        event.type == "order:update"
                        and not event.is_snapshot
                        and event.data["orderId"] != "seed"
                    ):
                        assert event.id is not None
                        got_orders.append((event.data["orderId"], event.id))
                    elif event.type == "price:update" and not event.is_snapshot:
                        delivered_price[event.data["symbol"]] = event.data["price"]
                    if converged():
                        done.set()

            published: list[str] = []
            async with kit.Publisher(big_server) as publish:
                # The user's log gets a position before the client starts: a stream that has none
                # yet (an empty log's snapshot has no id) can only restart from a fresh snapshot.
                await publish(kit.order(user, "seed"))
                consumer = asyncio.create_task(consume())
                async with asyncio.timeout(20):
                    await client.wait_for_state(ConnectionState.CONNECTED)
                for index, batch in enumerate(batches):
                    proxy.delay = 0.003 if index % 20 < 5 else 0.0  # latency on a quarter of the run
                    ids = await publish(*batch)
                    published.extend(
                        i for i, item in zip(ids, batch, strict=True) if item["type"] == "order:update"
                    )
                    if index in cut_at:
                        async with asyncio.timeout(20):
                            await client.wait_for_state(ConnectionState.CONNECTED)
                        assert proxy.cut_all(mid_event=rng.random() < 0.5) > 0
                        async with asyncio.timeout(20):
                            await client.wait_for_state(ConnectionState.RECONNECTING)
            try:
                async with asyncio.timeout(30):
                    await done.wait()
                    await client.wait_for_state(ConnectionState.CONNECTED)  # after the last cut
            except TimeoutError:
                raise AssertionError(
                    f"not converged: {len(got_orders)} orders, prices {delivered_price} != {last_price}, "
                    f"{client.stats}, {client.state}"
                ) from None
            finally:
                stats = client.stats
                await client.close()
                consumer.cancel()
            expected = [
                (item["data"]["orderId"], i)
                for item, i in zip(
                    [it for it in items if it["type"] == "order:update"], published, strict=True
                )
            ]
            assert got_orders == expected  # exactly once, in order
            assert delivered_price == last_price
            assert {s: client.local.price(s) for s in symbols} == last_price
            assert stats.reconnects >= CUTS
            assert proxy.cuts >= CUTS

    asyncio.run(main())
