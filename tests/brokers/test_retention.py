"""How long the embedded broker keeps a user (brokers/retention.py), on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from support.sinks import RecordingSink
from tickwire.brokers.base import Batch, IndexChange, Publication, StateWrite, Stored
from tickwire.brokers.memory import MemoryBroker
from tickwire.brokers.retention import UserRetention
from tickwire.core.clock import FakeClock
from tickwire.core.ids import Position
from tickwire.core.log import TOO_OLD, UNKNOWN_EPOCH
from tickwire.domain.alert_history import AlertHistory, HistoryReader

WEEK_S = 7 * 86400


def retention(clock: FakeClock, max_users: int = 100) -> UserRetention:
    return UserRetention(clock, buffer_ttl_s=300, state_ttl_s=3600, max_users=max_users)


def test_history_goes_a_buffer_ttl_after_the_last_connection_closed() -> None:
    clock = FakeClock()
    r = retention(clock)
    r.opened("u")
    r.opened("u")
    r.closed("u")
    clock.advance(1000)
    assert r.history_expired() == []  # one connection is still open
    r.closed("u")
    clock.advance(299)
    assert r.history_expired() == []
    clock.advance(1)
    assert r.history_expired() == ["u"]
    assert r.history_expired() == []


def test_a_user_is_forgotten_after_the_state_ttl_without_activity_unless_connected() -> None:
    clock = FakeClock()
    r = retention(clock)
    r.touch("idle")
    r.opened("online")
    clock.advance(3599)
    r.touch("busy")
    clock.advance(1)
    assert r.expired() == ["idle"]
    assert "online" in r and "busy" in r and "idle" not in r
    clock.advance(3600)
    assert r.expired() == ["busy"]


def test_over_the_cap_the_least_recently_active_idle_users_go_first() -> None:
    clock = FakeClock()
    r = retention(clock, max_users=3)
    r.opened("first")  # the oldest, but connected
    for user in ("a", "b", "c", "d"):
        clock.advance(1)
        r.touch(user)
    r.touch("a")  # active again: now the most recent
    assert r.expired() == ["b", "c"]
    assert len(r) == 3


def run(body: Callable[[MemoryBroker, FakeClock], Awaitable[None]], **kw: float) -> None:
    async def main() -> None:
        clock = FakeClock()
        broker = MemoryBroker(clock=clock, buffer_ttl_s=300, state_ttl_s=3600, **kw)  # type: ignore[arg-type]
        await broker.start(RecordingSink())
        await body(broker, clock)

    asyncio.run(main())


def alert(user: str, i: int) -> Publication:
    return Publication("alert:new", {"message": f"m{i}"}, f"user:{user}")


def test_the_broker_frees_history_then_everything_and_resets_old_ids() -> None:
    async def body(broker: MemoryBroker, clock: FakeClock) -> None:
        (first, second) = await broker.publish([alert("u", 1), alert("u", 2)], 1)
        order = Publication("order:update", {"orderId": "o1"}, "user:u", state=("orders", "o1"))
        await broker.submit(
            Batch(
                [order],
                2,
                writes=[StateWrite("user:u", "book", {"n": 1}, 0)],
                index=[IndexChange("h", "user:u", True)],
            )
        )
        assert broker.buffered == 3 and broker.held_users() == 1
        broker.connection_opened("u", 1)
        broker.connection_closed("u", 1)
        clock.advance(300)
        await broker.maintain()
        assert broker.buffered == 0
        assert first.pos is not None
        trimmed = await broker.history("user:u", first.pos)
        assert trimmed.reset == TOO_OLD  # offsets kept counting: the id is known to be too old
        assert await broker.get_state("user:u", "orders", "o1") is not None  # state outlives history
        clock.advance(3600)
        await broker.maintain()
        assert broker.held_users() == 0
        assert await broker.load([("user:u", "book")]) == [Stored()]
        assert await broker.members("h") == set()
        assert second.pos is not None
        again = await broker.history("user:u", second.pos)
        assert again.reset == UNKNOWN_EPOCH  # a new log: never a silent gap

    run(body)


def test_the_cap_evicts_idle_users_and_counts_what_it_holds() -> None:
    async def body(broker: MemoryBroker, clock: FakeClock) -> None:
        for i in range(10):
            clock.advance(1)
            await broker.publish([alert(f"u{i}", 1)], i)
        broker.connection_opened("u0", 1)  # the oldest, but connected: kept
        await broker.maintain()
        assert broker.held_users() == 4
        kept = {u for u in (f"u{i}" for i in range(10)) if u in broker.retention}
        assert kept == {"u0", "u7", "u8", "u9"}
        assert broker.buffered == 4
        gone = await broker.history("user:u3", Position(1, 1, 1))
        assert gone.reset is not None

    run(body, max_users=4)


async def fire_alert(broker: MemoryBroker, clock: FakeClock, user: str, retention_s: float = WEEK_S) -> None:
    """An `alert:new` stamped on the user's log, then kept in their alert history, as the
    pipeline's last processor does."""
    events = await broker.publish([alert(user, 1)], clock.wall_ms())
    await AlertHistory(broker, cap=1000, retention_s=retention_s).after(events)


async def alert_history(broker: MemoryBroker, clock: FakeClock, user: str) -> list[dict[str, object]]:
    page, _ = await HistoryReader(broker, clock, retention_s=WEEK_S).page(user, limit=10)
    return page


def test_a_users_alert_history_is_forgotten_with_them_after_the_state_ttl() -> None:
    async def body(broker: MemoryBroker, clock: FakeClock) -> None:
        await fire_alert(broker, clock, "u")  # kept a week, but the user goes after an idle hour
        clock.advance(3599)
        await broker.maintain()
        assert [a["message"] for a in await alert_history(broker, clock, "u")] == ["m1"]
        clock.advance(1)
        await broker.maintain()
        assert broker.held_users() == 0
        assert await alert_history(broker, clock, "u") == []
        assert len(broker.journals) == 0

    run(body)


def test_the_cap_evicts_an_idle_users_alert_history_with_them() -> None:
    async def body(broker: MemoryBroker, clock: FakeClock) -> None:
        for user in ("old", "a", "b"):
            clock.advance(1)
            await fire_alert(broker, clock, user)
        await broker.maintain()
        assert {u for u in ("old", "a", "b") if u in broker.retention} == {"a", "b"}
        assert await alert_history(broker, clock, "old") == []
        assert len(await alert_history(broker, clock, "a")) == 1
        assert len(broker.journals) == 2

    run(body, max_users=2)


def test_alert_retention_still_bounds_the_history_of_a_user_who_is_kept() -> None:
    async def body(broker: MemoryBroker, clock: FakeClock) -> None:
        broker.connection_opened("u", 1)  # connected: never forgotten
        await fire_alert(broker, clock, "u", retention_s=60)
        clock.advance(61)
        await broker.maintain()
        assert "u" in broker.retention
        assert len(broker.journals) == 0

    run(body)
