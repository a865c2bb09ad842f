"""The delivery queue: priority order, what is dropped when full (lowest first, counted),
and backpressure for log events, which are never dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tickwire.client.events import ClientEvent, Priority, droppable, key_of, priority_of
from tickwire.client.queue import DeliveryQueue, QueueClosed


def ev(stream: str, type_: str, **data: Any) -> ClientEvent:
    return ClientEvent(stream, type_, data, None, "sse")


def make(capacity: int, drops: list[tuple[str, str]] | None = None) -> DeliveryQueue[ClientEvent]:
    def key(e: ClientEvent) -> tuple[str, str] | None:
        k = key_of(e.type, e.raw)
        return (e.stream, k) if k is not None else None

    return DeliveryQueue(
        capacity,
        priority=lambda e: priority_of(e.type, e.raw),
        droppable=lambda e: droppable(e.type, e.raw),
        lane=lambda e: e.stream,
        key=key,
        on_drop=lambda e, reason: drops.append((e.type, reason)) if drops is not None else None,
    )


def drain(q: DeliveryQueue[ClientEvent]) -> list[ClientEvent]:
    out = []
    while (item := q.get_nowait()) is not None:
        out.append(item)
    return out


def test_classes() -> None:
    assert priority_of("alert:new", {"level": "error"}) is Priority.CRITICAL
    assert priority_of("strategy:update", {"status": "halted"}) is Priority.CRITICAL
    assert priority_of("stream:reset", {}) is Priority.CRITICAL
    assert priority_of("order:fill", {}) is Priority.ORDERS
    assert priority_of("alert:new", {"level": "info"}) is Priority.NEWS
    assert priority_of("ai:decision", {}) is Priority.NEWS
    assert priority_of("price:update", {"symbol": "A"}) is Priority.TICKS
    assert droppable("price:update", {"symbol": "A"})
    assert not droppable("price:update", {"initializing": True, "prices": []})
    for log_type in ("order:update", "order:fill", "alert:new", "position:update", "ai:decision"):
        assert not droppable(log_type, {})


def test_more_urgent_streams_go_first_and_each_stream_keeps_its_order() -> None:
    q = make(100)
    q.put_nowait(ev("prices", "price:update", symbol="A", price=1))
    q.put_nowait(ev("alerts", "alert:new", level="info", alertId="1"))
    q.put_nowait(ev("orders", "order:update", orderId="o1"))
    q.put_nowait(ev("alerts", "alert:new", level="error", alertId="2"))
    q.put_nowait(ev("orders", "order:update", orderId="o2"))
    out = [
        (e.stream, e.data.get("alertId") or e.data.get("orderId") or e.data.get("symbol")) for e in drain(q)
    ]
    # The error alert pulls its lane ahead, behind the info alert that precedes it in the stream.
    assert out == [("alerts", "1"), ("alerts", "2"), ("orders", "o1"), ("orders", "o2"), ("prices", "A")]


def test_when_full_ticks_are_dropped_oldest_first_and_counted() -> None:
    drops: list[tuple[str, str]] = []
    q = make(4, drops)
    for symbol in "ABC":
        assert q.put_nowait(ev("prices", "price:update", symbol=symbol, price=1))
    assert q.put_nowait(ev("orders", "order:update", orderId="o1"))
    # Full: an order evicts the oldest tick (A), an alert the next (B).
    assert q.put_nowait(ev("orders", "order:update", orderId="o2"))
    assert q.put_nowait(ev("alerts", "alert:new", level="error", alertId="x"))
    assert drops == [("price:update", "full"), ("price:update", "full")]
    # A new tick of a queued symbol replaces it (latest value wins); a new symbol has to go.
    assert q.put_nowait(ev("prices", "price:update", symbol="C", price=2))
    assert q.put_nowait(ev("prices", "price:update", symbol="D", price=1))
    assert drops[2:] == [("price:update", "conflated"), ("price:update", "full")]
    assert q.dropped == 4
    out = drain(q)
    assert [(e.type, e.data.get("price")) for e in out if e.type == "price:update"] == [("price:update", 2)]
    assert [e.data.get("orderId") for e in out if e.stream == "orders"] == ["o1", "o2"]


def test_log_events_are_never_dropped_they_wait() -> None:
    async def main() -> None:
        q = make(3)
        for n in range(3):
            await q.put(ev("orders", "order:update", orderId=f"o{n}"))
        blocked = asyncio.create_task(q.put(ev("orders", "order:update", orderId="o3")))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not blocked.done()  # backpressure: nothing droppable
        assert q.put_nowait(ev("prices", "price:update", symbol="A")) is True  # a tick is dropped instead
        assert q.dropped == 1 and len(q) == 3
        first = await q.get()
        assert first.data["orderId"] == "o0"
        await asyncio.wait_for(blocked, 1)
        assert [e.data["orderId"] for e in drain(q)] == ["o1", "o2", "o3"]
        assert q.waits == 1

    asyncio.run(main())


def test_close_drains_then_raises() -> None:
    async def main() -> None:
        q = make(3)
        await q.put(ev("orders", "order:update", orderId="o1"))
        q.close(RuntimeError("boom"))
        assert (await q.get()).data["orderId"] == "o1"
        with pytest.raises(RuntimeError, match="boom"):
            await q.get()
        q2 = make(3)
        q2.close()
        with pytest.raises(QueueClosed):
            await q2.get()

    asyncio.run(main())


def test_forced_items_go_over_the_bound() -> None:
    q = make(1)
    q.put_nowait(ev("orders", "order:update", orderId="o1"))
    q.force(ev("orders", "order:update", orderId="o2"))
    assert len(q) == 2
    assert [e.data["orderId"] for e in drain(q)] == ["o1", "o2"]


def test_a_slow_user_loses_ticks_never_orders(server: Any, kit: Any) -> None:
    """A user that does not read while 300 events arrive: the small queue drops ticks (counted),
    and when it is full of orders and alerts the client does not stop reading (the local state
    stays current) but spills: what did not fit comes from history once the user reads,
    marked `replayed`, so none is lost and each arrives once, in order."""
    from tickwire.client import Client, ConnectionState

    user = kit.uid()
    symbols = [kit.sym() for _ in range(3)]

    async def main() -> None:
        client = Client(
            server.url,
            ["orders", "alerts", "prices?symbols=" + ",".join(symbols)],
            token=server.token(user),
            transport="ws",
            queue_capacity=20,
            **kit.FAST,
        )
        async with client, kit.Publisher(server) as publish:
            await client.wait_for_state(ConnectionState.CONNECTED)
            items: list[dict[str, Any]] = []
            for n in range(60):
                items.append(kit.order(user, f"o{n}"))
                items += [kit.price(symbols[n % 3], 100 + n), kit.price(symbols[(n + 1) % 3], 200 + n)]
                items += [kit.price(symbols[(n + 2) % 3], 300 + n)]
                if n % 10 == 0:
                    items.append(kit.alert(user, n, level="error"))
            await publish(*items)
            orders: list[str] = []
            alerts: list[str] = []
            async with asyncio.timeout(15):
                while client.local.orders.get("o59") is None:  # noqa: ASYNC110 - state is current unread
                    await asyncio.sleep(0.01)
                assert client.stats.spilled > 0
                replayed = 0
                async for event in client.events():
                    replayed += event.replayed
                    if event.type == "order:update" and not event.is_snapshot:
                        orders.append(event.data["orderId"])
                    elif event.type == "alert:new":
                        alerts.append(event.data["alertId"])
                    if len(orders) == 60 and len(alerts) == 6:
                        break
            assert orders == [f"o{n}" for n in range(60)]
            assert alerts == [f"a{n}" for n in range(0, 60, 10)]
            assert client.stats.dropped > 0 and client.stats.backpressure == 0
            assert client.stats.caught_up > 0 and replayed > 0
            registry = client.metrics.registry
            assert (
                registry.get_sample_value(
                    "wire_stream_dropped_total",
                    {"client": "tickwire", "type": "order:update", "reason": "full"},
                )
                is None
            )
            assert client.local.price(symbols[0]) is not None
            last = {symbols[59 % 3]: 159.0, symbols[60 % 3]: 259.0, symbols[61 % 3]: 359.0}
            assert {s: client.local.price(s) for s in symbols} == last

    asyncio.run(main())
