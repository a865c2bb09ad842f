"""The broker contract: every broker (memory and Redis) must pass this suite unchanged.
It speaks only the `Broker` interface (and the sink only the `BrokerSink` protocol)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from support.sinks import RecordingSink as Sink
from tickwire.brokers.base import Batch, Broker, IndexChange, Publication, StateWrite, Stored
from tickwire.brokers.memory import MemoryBroker
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.core.log import AHEAD, TOO_OLD, UNKNOWN_EPOCH
from tickwire.errors import StateConflict

T = TypeVar("T")
HISTORY = 10


BrokerFactory = Callable[[], Broker]


def memory_factory() -> Broker:
    return MemoryBroker(user_history=HISTORY, public_history=HISTORY, state_capacity=100)


def redis_factory(request: pytest.FixtureRequest) -> BrokerFactory:
    """A RedisBroker on the session's private redis-server, in a key space of its own."""
    from tickwire.brokers.redis import RedisBroker

    server = request.getfixturevalue("contract_redis")
    prefix = f"contract-{uuid.uuid4().hex[:10]}"

    def make() -> Broker:
        return RedisBroker(
            server.url, prefix=prefix, user_history=HISTORY, public_history=HISTORY, state_capacity=100
        )

    return make


@pytest.fixture(params=["memory", "redis"])
def factory(request: pytest.FixtureRequest) -> BrokerFactory:
    if request.param == "redis":
        return redis_factory(request)
    return memory_factory


def run(factory: BrokerFactory, body: Callable[[Broker, Sink], Awaitable[T]]) -> T:
    async def main() -> T:
        broker = factory()
        sink = Sink()
        await broker.start(sink)
        try:
            result = await body(broker, sink)
        finally:
            await broker.stop()
        assert sink.resets == [], "a broker reset a log nothing had lost"
        assert sink.evicted == [], "no connection of this sink was registered"
        return result

    return asyncio.run(main())


def alert(user: str, i: int) -> Publication:
    return Publication("alert:new", {"message": f"m{i}", "i": i}, f"user:{user}")


def price(symbol: str, value: float) -> Publication:
    return Publication(
        "price:update", {"symbol": symbol, "price": value}, "prices", tick=True, state=("prices", symbol)
    )


def pos_of(event: Event) -> Position:
    assert event.pos is not None
    return event.pos


def test_publish_stamps_increasing_offsets_and_delivers_in_order(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        stamped = await broker.publish([alert("a", i) for i in range(5)], 1000)
        offsets = [pos_of(e).offset for e in stamped]
        assert offsets == sorted(offsets) and len(set(offsets)) == 5
        assert offsets[-1] - offsets[0] == 4
        assert [e.id for e in sink.events] == [e.id for e in stamped]
        assert all(e.id is not None and e.id.startswith("0000000001000-") for e in stamped)

    run(factory, body)


def test_logs_are_independent(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        a = await broker.publish([alert("a", 1)], 1)
        b = await broker.publish([alert("b", 1)], 1)
        assert pos_of(a[0]).offset == pos_of(b[0]).offset == 1

    run(factory, body)


def test_ids_are_unique_across_logs_stamped_in_the_same_millisecond(factory: BrokerFactory) -> None:
    """SPEC 1: no two events of a deployment share an id, whatever their logs."""

    async def body(broker: Broker, sink: Sink) -> None:
        ids: list[str | None] = []
        for batch in range(10):  # 10,000 events across 1,000 user logs, in batches of 1,000
            pubs = [Publication("ai:decision", {"n": batch * 1000 + u}, f"user:u{u}") for u in range(1000)]
            ids += [e.id for e in await broker.publish(pubs, 1_767_350_400_000)]
        assert None not in ids and len(set(ids)) == len(ids) == 10_000

    run(factory, body)


def test_log_events_are_numbered_per_type_and_item(factory: BrokerFactory) -> None:
    """`seq` counts a log's events of one type (of one item: a strategy, a scan), consecutively
    from 1; ticks have none."""

    async def body(broker: Broker, sink: Sink) -> None:
        pubs = [
            alert("a", 1),
            Publication("order:update", {"orderId": "o1"}, "user:a"),
            alert("a", 2),
            Publication("strategy:update", {"strategyId": "s1"}, "user:a", strategy="s1", item="s1"),
            Publication("strategy:update", {"strategyId": "s2"}, "user:a", strategy="s2", item="s2"),
            Publication("strategy:update", {"strategyId": "s1"}, "user:a", strategy="s1", item="s1"),
            alert("b", 1),
            price("AAPL", 1),
            Publication("scan:result", {"scanId": "m"}, "scans", item="m"),
            Publication("scan:result", {"scanId": "v"}, "scans", item="v"),
            Publication("scan:result", {"scanId": "m"}, "scans", item="m"),
        ]
        stamped = await broker.publish(pubs, 1)
        assert [e.seq for e in stamped] == [1, 1, 2, 1, 1, 2, 1, None, 1, 1, 2]
        assert [e.seq for e in sink.events] == [1, 1, 2, 1, 1, 2, 1, None, 1, 1, 2]
        assert await broker.strategy_owner("m") is None  # an item is not a strategy
        (third,) = await broker.publish([alert("a", 3)], 2)
        assert third.seq == 3
        replayed = (await broker.history("user:a", None)).events
        assert [e.seq for e in replayed] == [1, 1, 2, 1, 1, 2, 3]

    run(factory, body)


def test_log_event_numbers_reach_every_node(request: pytest.FixtureRequest) -> None:
    """Another node learns an event's `seq` from the store's message, not by counting."""
    make = redis_factory(request)

    async def body(broker: Broker, sink: Sink) -> None:
        other, other_sink = make(), Sink(watched={"user:a"})
        await other.start(other_sink)
        try:
            await broker.publish([alert("a", 1), alert("a", 2), price("AAPL", 1)], 1)
            await other_sink.wait_until(lambda: len(other_sink.events) == 3)
            assert [e.seq for e in other_sink.events] == [1, 2, None]
        finally:
            await other.stop()

    run(make, body)


def test_ticks_get_unique_ids_but_no_history(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        ticks = await broker.publish([price("AAPL", 1), price("AAPL", 2), price("MSFT", 3)], 5)
        assert len({e.id for e in ticks}) == 3
        assert all(e.tick for e in ticks)
        history = await broker.history("prices", None)
        assert history.events == []

    run(factory, body)


def test_history_after_a_position_is_exact(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        stamped = await broker.publish([alert("a", i) for i in range(6)], 1)
        history = await broker.history("user:a", pos_of(stamped[2]))
        assert history.reset is None
        assert [e.data["i"] for e in history.events] == [3, 4, 5]
        assert [e.id for e in history.events] == [e.id for e in stamped[3:]]
        assert history.end == pos_of(stamped[-1])
        everything = await broker.history("user:a", None)
        assert [e.data["i"] for e in everything.events] == list(range(6))

    run(factory, body)


def test_history_is_bounded_and_old_positions_reset(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        stamped = await broker.publish([alert("a", i) for i in range(HISTORY + 5)], 1)
        retained = await broker.history("user:a", None)
        assert len(retained.events) == HISTORY
        assert (await broker.history("user:a", pos_of(stamped[0]))).reset == TOO_OLD
        ok = await broker.history("user:a", pos_of(stamped[4]))  # the boundary: offsets 6.. are kept
        assert ok.reset is None and len(ok.events) == HISTORY

    run(factory, body)


def test_unknown_epoch_and_future_positions_reset(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        (event,) = await broker.publish([alert("a", 1)], 1)
        pos = pos_of(event)
        other_epoch = Position(pos.epoch % 1000 + 1 if pos.epoch != 1 else 2, pos.offset, pos.tick)
        assert (await broker.history("user:a", other_epoch)).reset == UNKNOWN_EPOCH
        ahead = Position(pos.epoch, pos.offset + 5, pos.tick + 5)
        assert (await broker.history("user:a", ahead)).reset == AHEAD

    run(factory, body)


def test_resume_from_a_tick_gives_log_events_then_changed_tick_values(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        (first,) = await broker.publish([price("AAPL", 1)], 1)
        await broker.publish([price("AAPL", 2), price("MSFT", 7), price("AAPL", 3)], 2)
        history = await broker.history("prices", pos_of(first))
        assert history.events == []
        latest = {e.data["symbol"]: e.data["price"] for e in history.ticks}
        assert latest == {"AAPL": 3, "MSFT": 7}
        assert len(history.ticks) == 2
        assert all(pos_of(t).after(pos_of(first)) for t in history.ticks)

    run(factory, body)


def test_resume_since_a_time_also_gives_values_ticks_changed_before_the_position(
    factory: BrokerFactory,
) -> None:
    """A throttle that fans ticks out after stamping may send an older tick after a newer
    one: `since_ms` asks for the values stamped in that window too, in position order."""

    async def body(broker: Broker, sink: Sink) -> None:
        await broker.publish([price("OLD", 1)], 1_000)
        await broker.publish([price("HELD", 2)], 5_000)
        (seen,) = await broker.publish([price("SENT", 3)], 5_050)
        await broker.publish([price("NEXT", 4)], 5_060)
        plain = await broker.history("prices", pos_of(seen))
        assert [t.data["symbol"] for t in plain.ticks] == ["NEXT"]
        late = await broker.history("prices", pos_of(seen), since_ms=4_000)
        assert [t.data["symbol"] for t in late.ticks] == ["HELD", "NEXT"]  # not OLD, not SENT itself
        assert [pos_of(t) for t in late.ticks] == sorted(pos_of(t) for t in late.ticks)

    run(factory, body)


def test_log_event_state_changes_are_replayed_not_sent_as_ticks(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        (start,) = await broker.publish([alert("a", 0)], 1)
        pos_pub = Publication(
            "position:update", {"symbol": "A", "quantity": 1}, "user:a", state=("positions", "A")
        )
        mark = Publication(
            "position:update",
            {"symbol": "B", "quantity": 2, "currentPrice": 5},
            "user:a",
            tick=True,
            state=("positions", "B"),
        )
        await broker.publish([pos_pub, mark], 2)
        history = await broker.history("user:a", pos_of(start))
        assert [e.data["symbol"] for e in history.events] == ["A"]
        assert [t.data["symbol"] for t in history.ticks] == ["B"]

    run(factory, body)


def test_state_merges_deltas_and_snapshots_it(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        empty = await broker.snapshot("user:a", ["orders"])
        assert empty.empty and empty.states == {"orders": []}
        order = {"orderId": "o1", "symbol": "AAPL", "status": "new", "qty": 5}
        await broker.publish([Publication("order:update", order, "user:a", state=("orders", "o1"))], 1)
        fill = {"orderId": "o1", "status": "filled", "filledQty": 5}
        stamped = await broker.publish([Publication("order:fill", fill, "user:a", state=("orders", "o1"))], 2)
        assert await broker.get_state("user:a", "orders", "o1") == {
            "orderId": "o1",
            "symbol": "AAPL",
            "status": "filled",
            "qty": 5,
            "filledQty": 5,
        }
        snap = await broker.snapshot("user:a", ["orders", "positions"])
        assert not snap.empty
        assert snap.end == pos_of(stamped[0])
        assert snap.states["orders"][0]["status"] == "filled"
        assert snap.states["positions"] == []
        assert await broker.get_state("user:a", "orders", "nope") is None

    run(factory, body)


def test_strategy_owner_is_the_first_publisher(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        assert await broker.strategy_owner("s1") is None
        for user in ("alice", "bob"):
            await broker.publish(
                [Publication("strategy:update", {"strategyId": "s1"}, f"user:{user}", strategy="s1")], 1
            )
        assert await broker.strategy_owner("s1") == "alice"

    run(factory, body)


def test_forgetting_history_keeps_offsets_counting(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        stamped = await broker.publish([alert("a", i) for i in range(3)], 1)
        await broker.forget_history("user:a")
        assert (await broker.history("user:a", None)).events == []
        assert (await broker.history("user:a", pos_of(stamped[0]))).reset == TOO_OLD
        assert (await broker.history("user:a", pos_of(stamped[-1]))).reset is None
        (later,) = await broker.publish([alert("a", 9)], 2)
        assert pos_of(later).offset == pos_of(stamped[-1]).offset + 1
        assert later.seq == 4  # numbering survives forgetting, so a reader sees no false hole

    run(factory, body)


def test_broadcast_reaches_the_sink_and_is_not_kept(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        await broker.broadcast("test", {"message": "hi"})
        assert sink.broadcasts == [("test", {"message": "hi"})]
        assert sink.events == []

    run(factory, body)


def test_concurrent_publishers_get_one_strict_order(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        async def publisher(tag: str) -> None:
            for i in range(50):
                await broker.publish([alert("a", i), alert("a", i)], 1)

        await asyncio.gather(publisher("x"), publisher("y"))
        offsets = [pos_of(e).offset for e in sink.events]
        assert offsets == list(range(1, 201))

    run(factory, body)


def test_submit_fixes_the_order_before_anything_is_awaited(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        pending = [broker.submit(Batch([alert("a", i), alert("a", i)], 1)) for i in range(20)]
        results = await asyncio.gather(*pending)
        offsets = [pos_of(e).offset for batch in results for e in batch]
        assert offsets == list(range(1, 41))
        assert [e.id for e in sink.events] == [e.id for batch in results for e in batch]
        assert await broker.submit(Batch([], 1)) == []

    run(factory, body)


def test_healthy(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> bool:
        return await broker.healthy()

    assert run(factory, body) is True


# -- processor state ----------------------------------------------------------------------


def test_processor_state_is_versioned_and_written_with_its_batch(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        assert await broker.load([("user:a", "book")]) == [Stored()]
        write = StateWrite("user:a", "book", {"n": 1, "x": [1.5, "é"]}, expect=0)
        (event,) = await broker.submit(Batch([alert("a", 1)], 1, writes=[write]))
        assert event.id is not None
        assert await broker.load([("user:a", "book"), ("user:b", "book")]) == [
            Stored(1, {"n": 1, "x": [1.5, "é"]}),
            Stored(),
        ]
        await broker.submit(Batch([], 2, writes=[StateWrite("user:a", "book", {"n": 2}, expect=1)]))
        assert (await broker.load([("user:a", "book")]))[0] == Stored(2, {"n": 2})

    run(factory, body)


def test_a_write_from_an_old_version_refuses_the_whole_batch(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        await broker.submit(Batch([alert("a", 1)], 1, writes=[StateWrite("user:a", "book", {"n": 1}, 0)]))
        stale = Batch([alert("a", 2), alert("b", 1)], 2, writes=[StateWrite("user:a", "book", {"n": 9}, 0)])
        with pytest.raises(StateConflict):
            await broker.submit(stale)
        assert (await broker.load([("user:a", "book")]))[0] == Stored(1, {"n": 1})
        assert [e.data["i"] for e in sink.events] == [1]  # nothing of the refused batch
        assert (await broker.history("user:b", None)).events == []

    run(factory, body)


def test_a_conditional_tick_is_left_out_once_its_state_moved_on(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        await broker.submit(Batch([alert("a", 1)], 1, writes=[StateWrite("user:a", "book", {"n": 1}, 0)]))

        def mark(v: int, expect: int) -> Publication:
            return Publication(
                "position:update",
                {"symbol": "A", "v": v},
                "user:a",
                tick=True,
                state=("positions", "A"),
                only_if=("book", expect),
            )

        stamped = await broker.submit(Batch([mark(1, 1), mark(2, 0), price("A", 1.0)], 2))
        assert [e.type for e in stamped] == ["position:update", "price:update"]
        assert stamped[0].data["v"] == 1
        assert await broker.get_state("user:a", "positions", "A") == {"symbol": "A", "v": 1}

    run(factory, body)


def test_sets_of_logs(factory: BrokerFactory) -> None:
    async def body(broker: Broker, sink: Sink) -> None:
        add = [IndexChange("holders:A", "user:a", True), IndexChange("holders:A", "user:b", True)]
        await broker.submit(Batch([], 1, index=add))
        assert await broker.members("holders:A") == {"user:a", "user:b"}
        await broker.submit(Batch([], 2, index=[IndexChange("holders:A", "user:a", False)]))
        assert await broker.members("holders:A") == {"user:b"}
        assert await broker.members("holders:B") == set()

    run(factory, body)
