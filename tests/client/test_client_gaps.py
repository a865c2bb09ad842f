"""Dedup and gap repair against a real server. A tampering transport (a test double around
the real SSE / WebSocket transport) drops or repeats chosen events after they were read from
the socket; the client must notice, repair from the events endpoint, and count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import Any

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

    async def receive(self) -> WireEvent:
        if self.again:
            return self.again.pop()
        while True:
            event = await self.inner.receive()
            if self.drop(event):
                continue
            if self.repeat(event):
                self.again.append(event)
            return event

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
        assert stats.gaps_detected == 1 and stats.gaps_repaired == 1
        assert 1 <= stats.gap_checks <= 3  # a burst of skips costs one request, not ten

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
