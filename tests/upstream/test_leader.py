"""`leader_only` upstreams with several nodes on one Redis: one node at a time holds the
connection (a lease), it subscribes for every node's readers, and another node takes over
when it stops. Without `leader_only`, each node holds its own connection for its readers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest

from support.manual_time import ManualTime
from support.redis_server import RedisServer, require_redis_server
from support.upstream_fakes import TOKEN, FinnhubFake
from support.upstream_harness import Readers, running_node, upstream
from support.waiting import until
from tickwire.node import Node
from tickwire.upstream.leader import SHARE_S
from tickwire.upstream.state import UpstreamState

S = UpstreamState


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server()).start()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)


def run(body: Any) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


@asynccontextmanager
async def nodes(
    redis: RedisServer, fake: FinnhubFake, time: ManualTime, count: int, **settings: Any
) -> AsyncIterator[list[tuple[Node, Readers]]]:
    broker = f"{redis.url}?prefix=up{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        out = []
        for _ in range(count):
            config = upstream(fake, "finnhub", linger_s=0, **settings)
            out.append(await stack.enter_async_context(running_node([config], time, broker=broker)))
        yield out


async def until_ticked(time: ManualTime, check: Any) -> None:
    """Until `check()` holds, letting the nodes' leadership loops tick (each node shares its
    readers' symbols on its tick and the leader gathers them on its own: one tick of time may
    run the leader's before the other's write landed, so time moves on until both did)."""
    async with asyncio.timeout(15):
        while not check():
            await time.advance(SHARE_S)
            await asyncio.sleep(0.02)


def holder(all_nodes: list[tuple[Node, Readers]]) -> list[Node]:
    return [node for node, _ in all_nodes if node.upstreams.connections["feed"].running]


def test_one_node_holds_a_leader_only_upstream_for_the_readers_of_every_node(redis: RedisServer) -> None:
    async def body() -> None:
        time = ManualTime()
        async with FinnhubFake() as fake, nodes(redis, fake, time, 2, leader_only=True) as both:
            await until(lambda: len(holder(both)) == 1 and fake.clients)
            leader = holder(both)[0]
            follower, follower_readers = next((n, r) for n, r in both if n is not leader)
            assert follower.upstreams.connections["feed"].state is S.STANDBY
            assert fake.handshakes == 1
            reader = await follower_readers.open("AAPL")  # a reader of the node without the lease
            await until_ticked(time, lambda: fake.all_held == {"AAPL"})  # shared, then read by the leader
            await fake.push("AAPL", 187.5)
            await until(lambda: follower_readers.live(reader))  # published by the leader, via Redis
            assert follower_readers.live(reader)[0]["source"] == "feed"
            follower_readers.close(reader)
            await until_ticked(time, lambda: fake.all_held == set())

            await leader.upstreams.stop()  # the leader goes away: it releases the lease
            await time.advance(1.0)
            await until(lambda: follower.upstreams.connections["feed"].running and fake.handshakes == 2)
            await until(lambda: follower.upstreams.connections["feed"].state is S.CONNECTED)

    run(body)


def test_without_leader_only_each_node_holds_its_own_connection(redis: RedisServer) -> None:
    async def body() -> None:
        time = ManualTime()
        async with FinnhubFake() as fake, nodes(redis, fake, time, 2) as both:
            await until(lambda: len(fake.clients) == 2)
            (_, readers_one), (_, readers_two) = both
            await readers_one.open("AAPL")
            await readers_two.open("MSFT")
            await until(lambda: sorted(map(sorted, fake.held.values())) == [["AAPL"], ["MSFT"]])
            instances = {n.upstreams.connections["feed"].instance for n, _ in both}
            assert len(instances) == 2 and all(i.startswith("feed@") for i in instances)

    run(body)
