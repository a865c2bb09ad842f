"""Dedup and gap repair against a real server. A tampering transport (a test double around
the real SSE / WebSocket transport) drops or repeats chosen events after they were read from
the socket; the client must notice from the sequence numbers alone, repair from the events
endpoint, and count. The requests to the events endpoint are counted at the HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest

from support.servers import ServerProcess
from tickwire.client import Client, ClientEvent, ConnectionState, Endpoint, StreamSpec, WireEvent
from tickwire.client.transports import Session, Transport, create_transport

Pred = Callable[[WireEvent], bool]


class TamperSession:
    def __init__(self, inner: Session, drop: Pred, repeat: Pred) -> None:
        self.inner = inner
        self.drop = drop
        self.repeat = repeat
        self.again: list[WireEvent] = []
        self.transport = inner.transport

    @property
    def last_activity(self) -> float:
        return self.inner.last_activity

    @property
    def streams(self) -> dict[str, StreamSpec]:
        return self.inner.streams

    async def receive_batch(self) -> list[WireEvent]:
        out: list[WireEvent] = []
        while not out:
            for event in await self.inner.receive_batch():
                if self.drop(event):
                    continue
                out.append(event)
                if self.repeat(event):
                    out.append(event)
        return out

    async def reauthenticate(self, token: str) -> bool:
        return await self.inner.reauthenticate(token)

    async def update(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> None:
        await self.inner.update(wanted, last_ids)

    async def close(self) -> None:
        await self.inner.close()


def tampering(drop: Pred = lambda e: False, repeat: Pred = lambda e: False) -> Callable[[str, Endpoint], Any]:
    class Tamper:
        def __init__(self, inner: Transport) -> None:
            self.inner = inner
            self.name = inner.name
            self.streaming = inner.streaming

        async def open(self, wanted: Mapping[str, StreamSpec], last_ids: Mapping[str, str | None]) -> Session:
            return TamperSession(await self.inner.open(wanted, last_ids), drop, repeat)

    return lambda name, endpoint: Tamper(create_transport(name, endpoint))


def once(pred: Pred) -> Pred:
    seen: set[str | None] = set()

    def check(event: WireEvent) -> bool:
        if pred(event) and event.id not in seen:
            seen.add(event.id)
            return True
        return False

    return check


class EventsRequests:
    """An HTTP client for the Client that counts its requests to the events endpoint, and
    can hold them (`gate`) to show what goes on while a repair waits for its answer."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.gate: asyncio.Event | None = None
        self.asked = asyncio.Event()
        self.http = httpx.AsyncClient(event_hooks={"request": [self._request]})

    async def _request(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/events"):
            self.paths.append(request.url.path)
            self.asked.set()
            if self.gate is not None:
                await self.gate.wait()

    async def __aenter__(self) -> EventsRequests:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()


def order_id(event: WireEvent) -> Any:
    return event.data.get("orderId") if isinstance(event.data, dict) else None


async def collect(client: Client, until: Callable[[list[ClientEvent]], bool]) -> list[ClientEvent]:
    out: list[ClientEvent] = []
    async with asyncio.timeout(15):
        async for event in client.events():
            out.append(event)
            if until(out):
                return out
    return out


def orders_of(events: list[ClientEvent]) -> list[str]:
    return [e.data["orderId"] for e in events if e.type == "order:update" and not e.is_snapshot]


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_dropped_events_are_repaired_before_later_ones(
    server: ServerProcess, kit: Any, transport: str
) -> None:
    user = kit.uid()
    lost = {"o3", "o4", "o7"}

    async def main() -> None:
        client = Client(
            server.url,
            ["orders"],
            token=server.token(user),
            transport=transport,
            transport_factory=tampering(drop=once(lambda e: order_id(e) in lost)),
            **kit.FAST,
        )
        async with client, kit.Publisher(server) as publish:
            await client.wait_for_state(ConnectionState.CONNECTED)
            await publish(*(kit.order(user, f"o{n}") for n in range(10)))
            events = await collect(client, lambda out: len(orders_of(out)) >= 10)
        assert orders_of(events) == [f"o{n}" for n in range(10)]
        repaired = {e.data["orderId"] for e in events if e.repaired}
        assert repaired == lost
        stats = client.stats
        # One request: its answer (the whole batch) also settles the second candidate.
        assert (stats.gaps_detected, stats.gaps_repaired, stats.gap_checks) == (2, 2, 1)
        assert (
            client.metrics.registry.get_sample_value(
                "wire_stream_gaps_repaired_total", {"client": "tickwire", "transport": transport}
            )
            == 2
        )

    asyncio.run(main())


def test_filtered_skips_are_not_gaps_and_one_check_covers_a_burst(server: ServerProcess, kit: Any) -> None:
    """Orders and alerts share the user's log: the orders stream skips the alerts' offsets."""
    user = kit.uid()

    async def main() -> None:
        client = Client(
            server.url,
            ["orders"],
            token=server.token(user),
            transport_factory=tampering(drop=once(lambda e: order_id(e) == "o5")),
            **kit.FAST,
        )
        async with client, kit.Publisher(server) as publish:
            await client.wait_for_state(ConnectionState.CONNECTED)
            items = []
            for n in range(10):
                items += [kit.order(user, f"o{n}"), kit.alert(user, n)]
            await publish(*items)
            events = await collect(client, lambda out: len(orders_of(out)) >= 10)
        assert orders_of(events) == [f"o{n}" for n in range(10)]
        assert [e.data["orderId"] for e in events if e.repaired] == ["o5"]
        stats = client.stats
        assert (stats.gaps_detected, stats.gaps_repaired, stats.gap_checks) == (1, 1, 1)

    asyncio.run(main())


def fill(user: str, order: str, n: int) -> dict[str, Any]:
    return {
        "type": "order:fill",
        "user": user,
        "data": {"orderId": order, "filledQty": n, "filledAvgPrice": 1.0, "status": "partially_filled"},
    }


@pytest.mark.parametrize(("transport", "codec"), [("sse", "json"), ("ws", "json"), ("ws", "msgpack")])
def test_an_unbroken_filtered_stream_costs_no_request(
    server: ServerProcess, kit: Any, transport: str, codec: str
) -> None:
    """Orders, fills and alerts interleave in the user's log, so the orders stream skips
    offsets all the time; its sequence numbers say nothing is missing: no request at all."""
    user = kit.uid()
    seqs: dict[str, list[int | None]] = {}

    def note(event: WireEvent) -> bool:  # drops nothing: records what each transport decoded
        if order_id(event) is not None and not event.data.get("snapshot"):
            seqs.setdefault(event.type, []).append(event.seq)
        return False

    async def main() -> None:
        async with EventsRequests() as requests:
            client = Client(
                server.url,
                ["orders"],
                token=server.token(user),
                transport=transport,
                ws_codec=codec,
                transport_factory=tampering(drop=note),
                http=requests.http,
                **kit.FAST,
            )
            async with client, kit.Publisher(server) as publish:
                await client.ready()
                for n in range(20):
                    await publish(kit.order(user, f"o{n}"), kit.alert(user, n), fill(user, f"o{n}", 1))
                events = await collect(
                    client,
                    lambda out: sum(e.type == "order:fill" for e in out) >= 20 and len(orders_of(out)) >= 20,
                )
            assert orders_of(events) == [f"o{n}" for n in range(20)]
            assert seqs == {"order:update": list(range(1, 21)), "order:fill": list(range(1, 21))}
            assert requests.paths == []
            assert (client.stats.gap_checks, client.stats.gaps_detected) == (0, 0)

    asyncio.run(main())


async def take(
    events: AsyncIterator[ClientEvent], until: Callable[[list[ClientEvent]], bool]
) -> list[ClientEvent]:
    out: list[ClientEvent] = []
    while not until(out):
        out.append(await anext(events))
    return out


def test_a_repair_holds_only_its_own_stream(server: ServerProcess, kit: Any) -> None:
    """On one WebSocket: while the orders repair waits for its answer (held at the HTTP
    client), alerts keep coming; the orders then arrive complete and in order."""
    user = kit.uid()

    async def main() -> None:
        async with EventsRequests() as requests:
            client = Client(
                server.url,
                ["orders", "alerts"],
                token=server.token(user),
                transport="ws",
                transport_factory=tampering(drop=once(lambda e: order_id(e) == "o1")),
                http=requests.http,
                **kit.FAST,
            )
            requests.gate = asyncio.Event()
            async with client, kit.Publisher(server) as publish, asyncio.timeout(15):
                await client.ready()
                events = aiter(client.events())
                await publish(*(kit.order(user, f"o{n}") for n in range(4)))
                await requests.asked.wait()  # the repair asked, and waits for its answer
                await publish(kit.alert(user, 1), kit.alert(user, 2))
                seen = await take(events, lambda out: sum(e.type == "alert:new" for e in out) == 2)
                assert orders_of(seen) == ["o0"]  # o2 and o3 wait behind the hole
                requests.gate.set()
                seen += await take(events, lambda out: len(orders_of(out)) == 3)
            assert orders_of(seen) == ["o0", "o1", "o2", "o3"]
            assert [e.data["orderId"] for e in seen if e.repaired] == ["o1"]
            assert requests.paths == ["/api/stream/orders/events"]

    asyncio.run(main())


def test_repeated_events_are_dropped_and_counted(server: ServerProcess, kit: Any) -> None:
    user = kit.uid()

    async def main() -> None:
        client = Client(
            server.url,
            ["orders", "alerts"],
            token=server.token(user),
            transport="ws",
            transport_factory=tampering(repeat=lambda e: e.id is not None),
            **kit.FAST,
        )
        async with client, kit.Publisher(server) as publish:
            await client.wait_for_state(ConnectionState.CONNECTED)
            await publish(
                *(kit.order(user, f"o{n}") for n in range(5)), *(kit.alert(user, n) for n in range(5))
            )
            events = await collect(
                client, lambda out: len(orders_of(out)) >= 5 and sum(e.type == "alert:new" for e in out) >= 5
            )
        ids = [e.id for e in events if e.id is not None]
        assert len(ids) == len(set(ids))
        assert client.stats.dupes_dropped >= 10

    asyncio.run(main())


@pytest.fixture(scope="module")
def tiny_history() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_USER_BUFFER": "3", "TICKWIRE_THROTTLE_MS": "0"}).start()
    yield proc
    proc.stop()


def test_a_gap_older_than_history_is_surfaced_as_a_reset(tiny_history: ServerProcess, kit: Any) -> None:
    user = kit.uid()
    resets: list[ClientEvent] = []

    async def main() -> None:
        client = Client(
            tiny_history.url,
            ["orders"],
            token=tiny_history.token(user),
            transport_factory=tampering(drop=lambda e: order_id(e) in {f"o{n}" for n in range(1, 9)}),
            **kit.FAST,
        )
        client.on_reset(resets.append)
        async with client, kit.Publisher(tiny_history) as publish:
            await client.wait_for_state(ConnectionState.CONNECTED)
            await publish(*(kit.order(user, f"o{n}") for n in range(10)))
            events = await collect(client, lambda out: any(e.is_snapshot and e.data["orders"] for e in out))
        types = [e.type for e in events if not e.is_snapshot or e.data["orders"]]
        assert types[-2:] == ["stream:reset", "order:update"]
        assert events[-2].data["reason"] == "history_trimmed"
        assert len(resets) == 1
        assert sorted(client.local.orders) == [f"o{n}" for n in range(10)]  # the fresh snapshot
        assert client.stats.gaps_detected == 1 and client.stats.resets == 1

    asyncio.run(main())
