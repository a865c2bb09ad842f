"""The broker contract, continued: journals (bounded record lists paged newest first, the
alert history) and leases (one holder at a time, a scan's runner). Memory and Redis alike."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from support.sinks import RecordingSink
from tickwire.brokers.base import Broker, Record
from tickwire.brokers.memory import MemoryBroker
from tickwire.core.clock import FakeClock

Factory = Callable[[], Broker]
DAY_MS = 86_400_000


@pytest.fixture(params=["memory", "redis"])
def factory(request: pytest.FixtureRequest) -> Factory:
    if request.param == "memory":
        return lambda: MemoryBroker(clock=FakeClock())
    from tickwire.brokers.redis import RedisBroker

    server = request.getfixturevalue("contract_redis")
    prefix = f"journals-{uuid.uuid4().hex[:10]}"
    return lambda: RedisBroker(server.url, prefix=prefix)


def run(factory: Factory, body: Callable[[Broker], Awaitable[None]]) -> None:
    async def main() -> None:
        broker = factory()
        await broker.start(RecordingSink())
        try:
            await body(broker)
        finally:
            await broker.stop()

    asyncio.run(main())


def rec(i: int, ms: int | None = None, **value: object) -> Record:
    return Record(f"r{i}", 1_000 + i if ms is None else ms, {"i": i, "x": 0.1 * i, **value})


def ids(records: list[Record]) -> list[str]:
    return [r.id for r in records]


def test_a_journal_pages_newest_first_by_record_id(factory: Factory) -> None:
    async def body(broker: Broker) -> None:
        await broker.journal_add("j", [rec(i) for i in range(5)], cap=100, retention_ms=DAY_MS)
        await broker.journal_add("j", [rec(5), rec(6)], cap=100, retention_ms=DAY_MS)
        assert ids(await broker.journal_page("j", limit=3)) == ["r6", "r5", "r4"]
        assert ids(await broker.journal_page("j", before="r4", limit=3)) == ["r3", "r2", "r1"]
        assert ids(await broker.journal_page("j", before="r1", limit=3)) == ["r0"]
        assert await broker.journal_page("j", before="unknown", limit=3) == []
        assert await broker.journal_page("other", limit=3) == []
        first = (await broker.journal_page("j", before="r1", limit=1))[0]
        assert first == Record("r0", 1000, {"i": 0, "x": 0.0})
        assert ids(await broker.journal_page("j", limit=10, since_ms=1004)) == ["r6", "r5", "r4"]

    run(factory, body)


def test_a_journal_is_bounded_by_count_and_age(factory: Factory) -> None:
    async def body(broker: Broker) -> None:
        await broker.journal_add("j", [rec(i) for i in range(8)], cap=5, retention_ms=DAY_MS)
        assert ids(await broker.journal_page("j", limit=10)) == ["r7", "r6", "r5", "r4", "r3"]
        # One added a day and a bit later pushes out everything older than the retention.
        await broker.journal_add("j", [rec(9, ms=1_010 + DAY_MS)], cap=5, retention_ms=DAY_MS)
        assert ids(await broker.journal_page("j", limit=10)) == ["r9"]

    run(factory, body)


def test_records_are_replaced_in_place_and_patched(factory: Factory) -> None:
    async def body(broker: Broker) -> None:
        await broker.journal_add("j", [rec(1), rec(2)], cap=10, retention_ms=DAY_MS)
        await broker.journal_add("j", [rec(1, kept="yes")], cap=10, retention_ms=DAY_MS)
        assert ids(await broker.journal_page("j")) == ["r2", "r1"]
        patched = await broker.journal_patch("j", "r1", {"ackedAt": "now", "x": 2.5e-7, "n": {"a": [1]}})
        assert patched == Record(
            "r1", 1001, {"i": 1, "x": 2.5e-7, "kept": "yes", "ackedAt": "now", "n": {"a": [1]}}
        )
        assert await broker.journal_get("j", "r1") == patched
        assert await broker.journal_get("j", "r9") is None
        assert await broker.journal_patch("j", "r9", {"a": 1}) is None
        assert await broker.journal_patch("nope", "r1", {"a": 1}) is None

    run(factory, body)


def test_a_lease_has_one_holder_until_it_expires_or_is_released(factory: Factory) -> None:
    async def body(broker: Broker) -> None:
        assert await broker.lease("scan:a", "n1", 5.0)
        assert await broker.lease("scan:a", "n1", 5.0)  # renewed
        assert not await broker.lease("scan:a", "n2", 5.0)
        assert await broker.lease("scan:b", "n2", 5.0)  # another lease
        await broker.release("scan:a", "n2")  # not its holder: nothing happens
        assert not await broker.lease("scan:a", "n2", 5.0)
        await broker.release("scan:a", "n1")
        assert await broker.lease("scan:a", "n2", 0.05)
        if isinstance(broker, MemoryBroker):
            assert isinstance(broker.journals.clock, FakeClock)
            broker.journals.clock.advance(0.1)
        else:
            await asyncio.sleep(0.1)
        assert await broker.lease("scan:a", "n1", 5.0)  # n2's expired

    run(factory, body)
