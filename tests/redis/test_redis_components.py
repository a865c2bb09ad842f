"""The Redis broker's components on their own: ordered delivery, holds and repair fed events
directly (a fake history, no Redis, repairs driven one step at a time), the subscription's
decoding of messages, the heartbeat's check of the subscription, the publish argument."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgpack
import orjson
import pytest

from support.redis_server import RedisServer
from support.sinks import RecordingSink
from tickwire.brokers.base import History, Publication
from tickwire.brokers.redis import delivery as delivery_module
from tickwire.brokers.redis.delivery import Delivery, Step
from tickwire.brokers.redis.presence import Presence
from tickwire.brokers.redis.publishing import pack
from tickwire.brokers.redis.scripts import Link
from tickwire.brokers.redis.subscription import Subscription
from tickwire.brokers.redis.tasks import Tasks
from tickwire.core.clock import FakeClock
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.core.log import TOO_OLD
from tickwire.errors import BrokerUnavailable, PublishError

LOG = "user:a"
EPOCH = 7


class Sink(RecordingSink):
    def ticks(self) -> list[int]:
        return [e.pos.tick for e in self.events if e.pos is not None]


class ManualTasks(Tasks):
    """Repairs are driven by the test (`repair_once`), not by background tasks."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[str] = []

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        self.spawned.append(name)
        assert isinstance(coro, Coroutine)
        coro.close()
        return None  # type: ignore[return-value]  # nobody keeps it


class Channel:
    def __init__(self) -> None:
        self.subscribed = True
        self.syncs = 0

    async def sync(self) -> None:
        self.syncs += 1


class Reader:
    """History as Redis would answer it: the next answer, or an error to raise."""

    def __init__(self) -> None:
        self.answers: list[History | Exception] = []
        self.asked: list[Position | None] = []

    async def history(self, log_name: str, after: Position | None) -> History:
        self.asked.append(after)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ev(tick: int, offset: int | None = None, *, epoch: int = EPOCH, is_tick: bool = False) -> Event:
    """An event of LOG: log events count offsets with ticks here unless told."""
    pos = Position(epoch, tick if offset is None else offset, tick)
    return Event("alert:new", {"t": tick}, LOG, pos, 1, tick=is_tick)


def setup(watched: set[str] | None = None) -> tuple[Delivery, Sink, Reader, Channel, ManualTasks]:
    sink, reader, channel, tasks = Sink(watched), Reader(), Channel(), ManualTasks()
    delivery = Delivery(reader, channel, tasks, echo_timeout_s=1.0)
    delivery.attach(sink)
    return delivery, sink, reader, channel, tasks


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


# -- ordered delivery -------------------------------------------------------------------


def test_events_in_sequence_are_delivered_and_repeats_dropped() -> None:
    delivery, sink, _, _, tasks = setup()
    for tick in (1, 2, 2, 3, 1, 4):
        delivery.accept(ev(tick))
    assert sink.ticks() == [1, 2, 3, 4]
    assert tasks.spawned == []


def test_the_first_event_of_a_log_starts_its_track_wherever_it_is() -> None:
    delivery, sink, _, _, _ = setup()
    delivery.accept(ev(40))
    delivery.accept(ev(41))
    assert sink.ticks() == [40, 41]
    track = delivery.track(LOG)
    assert track is not None and track.last == Position(EPOCH, 41, 41)


def test_a_hole_holds_later_events_until_the_repair_filled_it_in_position_order() -> None:
    async def body() -> None:
        delivery, sink, reader, _, tasks = setup()
        delivery.accept(ev(1))
        delivery.accept(ev(4, 3))  # ticks 2 (a tick: offset 1) and 3 (offset 2) are missing
        delivery.accept(ev(5, 4))
        assert sink.ticks() == [1]
        assert tasks.spawned == [f"tickwire-repair-{LOG}"]
        delivery.accept(ev(6, 5))  # held too: one repair at a time
        assert tasks.spawned == [f"tickwire-repair-{LOG}"]
        # Read when the log had reached tick 5: the stream has its log events after offset 1,
        # the state the value tick 2 changed.
        reader.answers.append(
            History(
                Position(EPOCH, 4, 5), events=[ev(3, 2), ev(4, 3), ev(5, 4)], ticks=[ev(2, 1, is_tick=True)]
            )
        )
        assert await delivery.repair_once(LOG) is Step.DONE
        assert reader.asked == [Position(EPOCH, 1, 1)]
        assert sink.ticks() == [1, 2, 3, 4, 5, 6]
        track = delivery.track(LOG)
        assert track is not None and not track.repairing and track.pending == []
        assert delivery.repairs == 1 and delivery.resets == 0

    run(body)


def test_held_events_showing_another_hole_take_another_step() -> None:
    async def body() -> None:
        delivery, sink, reader, _, _ = setup()
        delivery.accept(ev(1))
        delivery.accept(ev(3))
        delivery.accept(ev(6))  # 4 and 5 missing as well
        reader.answers.append(History(Position(EPOCH, 3, 3), events=[ev(2), ev(3)]))
        assert await delivery.repair_once(LOG) is Step.AGAIN
        assert sink.ticks() == [1, 2, 3]
        reader.answers.append(History(Position(EPOCH, 6, 6), events=[ev(4), ev(5), ev(6)]))
        assert await delivery.repair_once(LOG) is Step.DONE
        assert sink.ticks() == [1, 2, 3, 4, 5, 6]

    run(body)


def test_a_log_that_cannot_be_repaired_is_reset_and_follows_on_from_its_end() -> None:
    async def body() -> None:
        delivery, sink, reader, _, _ = setup()
        delivery.accept(ev(1))
        delivery.accept(ev(30))
        delivery.accept(ev(31))
        reader.answers.append(History(Position(EPOCH, 30, 30), reset=TOO_OLD))
        assert await delivery.repair_once(LOG) is Step.DONE
        assert sink.resets == [(LOG, "history_trimmed")]
        assert sink.ticks() == [1, 31]  # 30 is in the snapshot the reset gives its clients
        assert delivery.resets == 1

    run(body)


def test_a_new_epoch_is_repaired_from_its_start() -> None:
    async def body() -> None:
        delivery, sink, reader, _, tasks = setup()
        delivery.accept(ev(5))
        delivery.accept(ev(2, epoch=EPOCH + 1))  # Redis lost the log: a new epoch
        assert tasks.spawned and sink.ticks() == [5]
        reader.answers.append(History(Position(EPOCH + 1, 2, 2), reset=TOO_OLD))
        assert await delivery.repair_once(LOG) is Step.DONE
        delivery.accept(ev(3, epoch=EPOCH + 1))
        assert sink.resets == [(LOG, "history_trimmed")]
        assert [(e.pos.epoch, e.pos.tick) for e in sink.events if e.pos] == [(EPOCH, 5), (EPOCH + 1, 3)]

    run(body)


def test_unreadable_history_resets_the_log_and_forgets_it() -> None:
    async def body() -> None:
        delivery, sink, reader, _, _ = setup()
        delivery.accept(ev(1))
        delivery.accept(ev(3))
        reader.answers.append(ValueError("garbage in the stream"))
        assert await delivery.repair_once(LOG) is Step.DONE
        assert sink.resets == [(LOG, "repair_failed")]
        assert delivery.track(LOG) is None
        delivery.accept(ev(4))  # followed afresh
        assert sink.ticks() == [1, 4]

    run(body)


def test_while_redis_is_away_a_repair_waits_and_holds() -> None:
    async def body() -> None:
        delivery, sink, reader, _, _ = setup()
        delivery.accept(ev(1))
        delivery.accept(ev(3))
        reader.answers.append(BrokerUnavailable("away"))
        assert await delivery.repair_once(LOG) is Step.AWAY
        delivery.accept(ev(4))
        track = delivery.track(LOG)
        assert track is not None and track.repairing and len(track.pending) == 2
        assert sink.ticks() == [1]
        reader.answers.append(History(Position(EPOCH, 2, 2), events=[ev(2)]))
        assert await delivery.repair_once(LOG) is Step.DONE
        assert sink.ticks() == [1, 2, 3, 4]

    run(body)


def test_too_many_held_events_are_read_again_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_module, "MAX_PENDING", 3)

    async def body() -> None:
        delivery, sink, reader, _, _ = setup()
        delivery.accept(ev(1))
        for tick in range(3, 9):
            delivery.accept(ev(tick))
        track = delivery.track(LOG)
        assert track is not None and track.overflow and len(track.pending) <= 3
        reader.answers.append(History(Position(EPOCH, 2, 2), events=[ev(2)]))
        assert await delivery.repair_once(LOG) is Step.AGAIN  # what overflowed is read again
        reader.answers.append(History(Position(EPOCH, 8, 8), events=[ev(t) for t in range(3, 9)]))
        assert await delivery.repair_once(LOG) is Step.DONE
        assert sink.ticks() == list(range(1, 9))

    run(body)


def test_a_publisher_waiting_for_its_echo_is_woken_by_the_delivery() -> None:
    async def body() -> None:
        delivery, _, reader, _, _ = setup()
        delivery.accept(ev(1))
        assert await delivery.delivered(LOG, Position(EPOCH, 1, 1), 1.0)  # already there
        waiting = asyncio.ensure_future(delivery.delivered(LOG, Position(EPOCH, 3, 3), 5.0))
        delivery.accept(ev(3))  # a hole: not yet
        delivery.accept(ev(4))
        reader.answers.append(History(Position(EPOCH, 2, 2), events=[ev(2)]))
        assert await delivery.repair_once(LOG) is Step.DONE
        assert await asyncio.wait_for(waiting, 1.0)

    run(body)


def test_catching_up_on_a_log_nobody_follows_starts_following_it_at_its_end() -> None:
    async def body() -> None:
        delivery, sink, _, channel, _ = setup()
        await delivery.catch_up(LOG, Position(EPOCH, 9, 9))
        assert channel.syncs == 1  # what was in flight came through first
        delivery.accept(ev(9))  # already covered by what the caller read
        delivery.accept(ev(10))
        assert sink.ticks() == [10]

    run(body)


def test_after_a_lost_subscription_watched_logs_are_repaired_and_the_rest_forgotten() -> None:
    delivery, _, _, _, tasks = setup(watched={LOG})
    delivery.accept(ev(1))
    delivery.accept(Event("price:update", {}, "prices", Position(EPOCH, 0, 1), 1, tick=True))
    delivery.resync()
    assert tasks.spawned == [f"tickwire-repair-{LOG}"]
    assert delivery.track("prices") is None
    track = delivery.track(LOG)
    assert track is not None and track.repairing


def test_tracked_logs_are_bounded_keeping_the_watched_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_module, "MAX_TRACKED_LOGS", 10)
    delivery, _, _, _, _ = setup(watched={"user:0"})
    for i in range(11):
        delivery.accept(Event("alert:new", {}, f"user:{i}", Position(EPOCH, 1, 1), 1))
    kept = [i for i in range(11) if delivery.track(f"user:{i}") is not None]
    assert kept == [0, 3, 4, 5, 6, 7, 8, 9, 10]  # down to 90%, least recently active first


def test_a_stopping_broker_starts_no_repair() -> None:
    delivery, sink, _, _, tasks = setup()
    tasks.stopping = True
    delivery.accept(ev(1))
    delivery.accept(ev(3))
    assert tasks.spawned == [] and sink.ticks() == [1]


# -- the subscription's messages --------------------------------------------------------


def test_the_subscription_decodes_batches_and_control_messages() -> None:
    async def body() -> None:
        sink, accepted = Sink(), []
        subscription = Subscription(
            Link("redis://127.0.0.1:1/0", "tw"), Tasks(), node_id="n1", clock=FakeClock(), echo_timeout_s=1.0
        )
        subscription.attach(sink, accepted.append, lambda: None)
        batch = {
            "v": 1,
            "events": [
                ["user:a", 3, 1, 1, 1000, "order:update", 0, "orders", "o1", {"orderId": "o1"}],
                ["prices", 4, 0, 9, 1001, "price:update", 1, "prices", "AAPL", {"symbol": "AAPL"}],
                ["user:a", 3, 2, 2, 1002, "alert:new", 0, None, None, {"message": "hi"}],
            ],
        }
        subscription.on_batch(orjson.dumps(batch))
        assert [(e.log, e.pos, e.ms, e.type, e.tick, e.key) for e in accepted] == [
            ("user:a", Position(3, 1, 1), 1000, "order:update", False, "user:a|orders|o1"),
            ("prices", Position(4, 0, 9), 1001, "price:update", True, "prices|prices|AAPL"),
            ("user:a", Position(3, 2, 2), 1002, "alert:new", False, None),
        ]
        assert accepted[0].data == {"orderId": "o1"}
        subscription.on_control(orjson.dumps({"t": "broadcast", "type": "test", "data": {"x": 1}, "n": "z"}))
        subscription.on_control(orjson.dumps({"t": "evict", "m": "n1:5", "limit": 2}))
        subscription.on_control(orjson.dumps({"t": "evict", "m": "n2:6", "limit": 2}))  # another node's
        subscription.on_control(orjson.dumps({"t": "ping", "n": "n2"}))
        assert sink.broadcasts == [("test", {"x": 1})]
        assert sink.evicted == [5]
        assert not subscription.restart_if_silent(0.0)  # not subscribed: nothing to restart

    run(body)


# -- the heartbeat ----------------------------------------------------------------------


class Watchdog:
    def __init__(self) -> None:
        self.limits: list[float] = []

    def restart_if_silent(self, limit_s: float) -> bool:
        self.limits.append(limit_s)
        return False


@pytest.mark.parametrize(("heartbeat_s", "limit"), [(0.1, 2.0), (1.0, 3.0), (5.0, 15.0)])
def test_each_heartbeat_checks_the_subscription_heard_something_lately(
    redis_server: RedisServer, heartbeat_s: float, limit: float
) -> None:
    async def body() -> None:
        link = Link(redis_server.url, f"t{uuid.uuid4().hex[:10]}")
        watchdog = Watchdog()
        presence = Presence(
            link,
            Tasks(),
            watchdog,
            node_id="n1",
            max_conns_per_user=2,
            buffer_ttl_ms=1000,
            heartbeat_s=heartbeat_s,
            dead_after_ms=10_000,
        )
        try:
            assert await presence.heartbeat_once() == 0
            assert watchdog.limits == [limit]
            assert presence.beats == 1
            assert await link.client.zscore(f"{link.prefix}:nodes", "n1") is not None
        finally:
            await link.close()

    run(body)


# -- the publish argument ---------------------------------------------------------------


def test_the_batch_argument_is_one_msgpack_array_of_strings() -> None:
    pubs = [
        Publication(
            "order:update", {"orderId": "o1", "qty": 10, "px": 0.1 + 0.2}, "user:a", state=("orders", "o1")
        ),
        Publication("price:update", {"symbol": "é✓", "n": None}, "prices", tick=True, state=("prices", "é✓")),
        Publication("strategy:update", {"strategyId": "s1"}, "user:a", strategy="s1", item="s1"),
        Publication("alert:new", {}, "user:b"),
        Publication("price:update", {"p": 1}, "user:b", tick=True, only_if=("portfolio", 7)),
    ]
    flat: list[str | bytes] = []
    for pub in pubs:
        kind, key = pub.state or ("", "")
        flat += [
            pub.log,
            pub.type,
            "1" if pub.tick else "0",
            kind,
            key,
            pub.strategy or "",
            pub.item or "",
            pub.only_if[0] if pub.only_if else "",
            str(pub.only_if[1]) if pub.only_if else "0",
            str(len(pub.data)),
        ]
        for name, value in pub.data.items():
            flat += [orjson.dumps(name), orjson.dumps(value)]
    expected = msgpack.packb(flat, use_bin_type=False)
    packer = msgpack.Packer(use_bin_type=False, autoreset=False)
    assert pack(pubs) == expected
    assert pack(pubs, packer) == expected
    bad = Publication("alert:new", {"ok": 1, 2: "not a string key"}, "user:a")  # type: ignore[dict-item]
    with pytest.raises(PublishError, match="data keys must be strings"):
        pack([pubs[0], bad], packer)
    assert pack(pubs, packer) == expected  # nothing of the refused batch is left in the packer
    assert msgpack.unpackb(expected, raw=True)[:10] == [
        b"user:a",
        b"order:update",
        b"0",
        b"orders",
        b"o1",
        b"",
        b"",
        b"",
        b"0",
        b"3",
    ]
