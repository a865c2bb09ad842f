"""A rolling restart with the Redis broker: node A gets SIGTERM while orders keep being
published through node B. A's clients see their streams end at once (SSE: the response
ends cleanly; WebSocket: 1001), resume on B with their last ids, and receive every order
published before, during and after the handover as an event, exactly once and in order:
none only inside a snapshot, none twice, no reset."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from support.async_streams import SSEStream, WSStream, many_connections_http
from support.e2e import order, publish, uid
from support.redis_server import RedisServer, redis_node
from support.servers import ServerProcess

CLIENTS = 500  # of each transport, on node A
USERS = 20
ENV = {"TICKWIRE_SHUTDOWN_GRACE_S": "2", "TICKWIRE_MAX_CONNS_PER_USER": "1000", "TICKWIRE_KEEPALIVE_S": "60"}
FINAL = "final"


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    a = redis_node(redis_server.url, ENV).start()
    b = redis_node(redis_server.url, ENV).start()
    yield a, b
    a.stop()
    b.stop()


class Publisher:
    """Publishes one order per user and batch through node B until told to finish."""

    def __init__(self, server: ServerProcess, users: list[str]) -> None:
        self.server = server
        self.users = users
        self.batches = 0
        self.flowing = asyncio.Event()  # a few batches are out
        self.finish = asyncio.Event()

    async def run(self, http: httpx.AsyncClient) -> None:
        token = self.server.token("test-publisher", "publisher")
        while True:
            last = self.finish.is_set()
            body = [order(user, FINAL if last else f"o{self.batches}") for user in self.users]
            response = await http.post(
                self.server.url + "/api/publish", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
            if last:
                return
            self.batches += 1
            if self.batches == 3:
                self.flowing.set()
            await asyncio.sleep(0.01)  # pacing only: the test waits on events, not on time

    def expected(self) -> list[str]:
        return [f"o{n}" for n in range(self.batches)] + [FINAL]


def has_final(datas: list[dict[str, Any]]) -> bool:
    return any(d.get("orderId") == FINAL for d in datas)


class SSEReader:
    """One client's SSE stream of its orders, moving from node to node by Last-Event-ID."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token
        self.streams: list[SSEStream] = []
        self.first_end: str | None = None

    async def connect(self, base_url: str) -> None:
        last_id = self.streams[-1].last_id() if self.streams else None
        stream = SSEStream(self.http, base_url, "orders", self.token)
        await stream.open(last_id)
        if last_id is None:  # a new reader: its snapshot comes before anything else
            await stream.read_until(lambda events: any(e.event == "order:update" for e in events))
        self.streams.append(stream)

    async def hand_over(self, base_url: str) -> None:
        self.first_end = await self.streams[-1].read_to_end()
        await self.connect(base_url)

    async def read_to_final(self) -> None:
        stream = self.streams[-1]
        await stream.read_until(
            lambda events: has_final([orjson.loads(e.data) for e in events if e.event == "order:update"])
        )

    def orders(self) -> list[dict[str, Any]]:
        return [d for s in self.streams for d in s.of_type("order:update")]

    def resets(self) -> int:
        return sum(len(s.of_type("stream:reset")) for s in self.streams)

    async def close(self) -> None:
        for stream in self.streams:
            await stream.close()


async def ws_hand_over(ws: WSStream, base_url: str) -> int | None:
    code = await ws.read_to_close()
    await ws.open([{"stream": "orders", "lastEventId": ws.last_id("orders")}], base_url)
    return code


async def ws_read_to_final(ws: WSStream) -> None:
    await ws.until(
        lambda messages: has_final([m["data"] for m in messages if m.get("event") == "order:update"])
    )


def ws_orders(ws: WSStream) -> list[dict[str, Any]]:
    return [e["data"] for e in ws.events("order:update")]


def test_clients_of_a_stopping_node_resume_on_another_and_get_every_order_as_an_event(
    nodes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = nodes
    users = [uid("handover") for _ in range(USERS)]
    tokens = [b.token(user) for user in users]
    publish(b, *(order(user, "o-init") for user in users))  # snapshots with an id to resume from
    publisher = Publisher(b, users)

    async def main() -> tuple[list[SSEReader], list[WSStream], list[int | None]]:
        async with many_connections_http(CLIENTS + 20) as http, asyncio.timeout(90):
            sse = [SSEReader(http, tokens[n % USERS]) for n in range(CLIENTS)]
            ws = [WSStream(a.url, tokens[n % USERS]) for n in range(CLIENTS)]
            try:
                ws_codes = await handover(http, sse, ws)
            finally:
                await asyncio.gather(*(s.close() for s in sse), *(w.close() for w in ws))
            return sse, ws, ws_codes

    async def handover(http: httpx.AsyncClient, sse: list[SSEReader], ws: list[WSStream]) -> list[int | None]:
        await asyncio.gather(*(s.connect(a.url) for s in sse), *(w.open([{"stream": "orders"}]) for w in ws))
        publishing = asyncio.create_task(publisher.run(http))
        await publisher.flowing.wait()
        assert a.proc is not None
        a.proc.send_signal(signal.SIGTERM)
        _, ws_codes = await asyncio.gather(
            asyncio.gather(*(s.hand_over(b.url) for s in sse)),
            asyncio.gather(*(ws_hand_over(w, b.url) for w in ws)),
        )
        publisher.finish.set()  # every client reads B now: one more batch, the last
        await publishing
        await asyncio.gather(*(s.read_to_final() for s in sse), *(ws_read_to_final(w) for w in ws))
        return list(ws_codes)

    sse, ws, ws_codes = asyncio.run(main())
    expected = publisher.expected()
    assert publisher.batches >= 3
    assert [s.first_end for s in sse] == ["clean"] * CLIENTS
    assert ws_codes == [1001] * CLIENTS
    for reader in sse:
        orders = reader.orders()
        assert [d.get("snapshot", False) for d in orders[:1]] == [True]
        assert [d["orderId"] for d in orders[1:]] == expected
        assert reader.resets() == 0
    for socket_ in ws:
        orders = ws_orders(socket_)
        assert [d.get("snapshot", False) for d in orders[:1]] == [True]
        assert [d["orderId"] for d in orders[1:]] == expected
        assert not socket_.events("stream:reset")
