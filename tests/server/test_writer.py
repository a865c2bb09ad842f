"""The writer (server/writer.py) with a recording driver: what reaches the socket, when,
and what happens when the socket is full or the client too slow."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable

from support.fake_driver import FakeDriver
from support.waiting import until
from tickwire.codes import CloseReason
from tickwire.core.clock import SystemClock
from tickwire.core.connection import Connection
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.metrics import FastHistogram
from tickwire.server.streaming import Flusher
from tickwire.server.writer import Writer
from tickwire.wire.sse import KEEPALIVE, GzipStream, SSECodec


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def setup(
    driver: FakeDriver,
    *,
    frames: bool = False,
    outbox: int = 1 << 20,
    keepalive_s: float = 30.0,
    max_ticks_per_s: float = 0.0,
    **kw: object,
) -> tuple[Writer, Connection]:
    clock = SystemClock()
    writer = Writer(driver, Flusher(), clock, FastHistogram((0.1, 1.0)), frames=frames, **kw)  # type: ignore[arg-type]
    conn = Connection(
        client_id="c",
        user="u",
        transport="sse",
        codec=SSECodec(),
        clock=clock,
        outbox_limit=outbox,
        notify=writer.notify,
        keepalive_s=keepalive_s,
        max_ticks_per_s=max_ticks_per_s,
    )
    writer.attach(conn)
    return writer, conn


def price_event(price: int, n: int) -> Event:
    return Event(
        "price:update", {"symbol": "A", "price": price}, "prices", Position(1, 0, n), 0, key="A", tick=True
    )


def tick(conn: Connection, price: int, n: int) -> None:
    event = price_event(price, n)
    conn.send_event(event, event.wire("sse", lambda e: SSECodec().event_frame(e, "prices")))


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_queued_frames_are_written_in_the_next_loop_turn_without_the_task() -> None:
    async def body() -> None:
        driver = FakeDriver()
        writer, conn = setup(driver)
        conn.send_control("connected", {"clientId": "c"})
        conn.send_control("test", {"n": 1})
        assert driver.written == []  # nothing is written inside dispatch
        await turns()
        assert driver.written == [
            b'event: connected\ndata: {"clientId":"c"}\n\nevent: test\ndata: {"n":1}\n\n'
        ]
        writer.detach()

    run(body)


def test_a_full_socket_keeps_bytes_in_the_outbox_where_ticks_conflate() -> None:
    async def body() -> None:
        driver = FakeDriver()
        writer, conn = setup(driver)
        task = asyncio.create_task(writer.run())
        driver.full = True
        tick(conn, 1, 1)
        await turns()
        assert driver.pending and not driver.writable  # the first write waits for the socket
        for n in range(2, 6):
            tick(conn, n, n)  # they stay in the outbox: each replaces the last
        await turns()
        driver.full = False
        await turns(6)
        data = b"".join(driver.written)
        assert data.count(b"event: price:update") == 2
        assert b'"price":1' in data and b'"price":5' in data
        conn.close(CloseReason.SHUTDOWN)
        await asyncio.wait_for(task, 1)

    run(body)


def test_a_slow_consumer_is_aborted_even_while_the_task_waits_on_the_socket() -> None:
    async def body() -> None:
        driver = FakeDriver()
        writer, conn = setup(driver, outbox=4096)
        task = asyncio.create_task(writer.run())
        driver.full = True
        conn.send_control("test", {"pad": "x" * 100})
        await turns()
        assert not driver.writable
        for i in range(100):  # log-like control frames cannot be dropped: over the bound
            conn.send_control("test", {"pad": "y" * 100, "i": i})
        await asyncio.wait_for(task, 1)  # the task stopped waiting for the socket
        assert conn.outbox.closed == CloseReason.SLOW_CONSUMER
        assert driver.aborted and writer.aborted

    run(body)


def test_message_transports_get_frames_and_stream_transports_compressed_bytes() -> None:
    async def body() -> None:
        frames_driver, gz_driver = FakeDriver(), FakeDriver()
        _, frames_conn = setup(frames_driver, frames=True)
        gz = GzipStream()
        _, gz_conn = setup(gz_driver, compress=gz.compress)
        for conn in (frames_conn, gz_conn):
            conn.send_control("a", {})
            conn.send_control("b", {})
        await turns()
        assert frames_driver.written == [b"event: a\ndata: {}\n\n", b"event: b\ndata: {}\n\n"]
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert (
            inflate.decompress(b"".join(gz_driver.written)) == b"event: a\ndata: {}\n\nevent: b\ndata: {}\n\n"
        )

    run(body)


def test_the_task_writes_keepalives_on_time_and_ends_when_the_outbox_closes() -> None:
    async def body() -> None:
        driver = FakeDriver()
        writer, conn = setup(driver, keepalive_s=0.02)
        task = asyncio.create_task(writer.run())
        await until(lambda: KEEPALIVE in driver.written)
        conn.close(CloseReason.SHUTDOWN)
        await asyncio.wait_for(task, 1)

    run(body)


def test_a_peer_gone_mid_write_closes_the_connection() -> None:
    async def body() -> None:
        driver = FakeDriver()
        writer, conn = setup(driver)
        task = asyncio.create_task(writer.run())
        driver.gone = True
        conn.send_control("test", {})
        await asyncio.wait_for(task, 1)
        assert conn.outbox.closed == CloseReason.CLIENT_GONE

    run(body)


def test_an_extra_timer_fires_from_the_task() -> None:
    async def body() -> None:
        fired: list[float] = []

        class Every:
            def __init__(self) -> None:
                self.at = SystemClock().monotonic() + 0.01

            def due(self) -> float:
                return self.at

            async def fire(self, now: float) -> None:
                fired.append(now)
                self.at = now + 0.01

        driver = FakeDriver()
        writer, conn = setup(driver, timer=Every())
        task = asyncio.create_task(writer.run())
        await until(lambda: len(fired) >= 3)
        conn.close(CloseReason.SHUTDOWN)
        await asyncio.wait_for(task, 1)

    run(body)


def test_ticks_held_by_the_client_cap_are_written_when_the_cap_allows() -> None:
    async def body() -> None:
        driver = FakeDriver()
        clock = SystemClock()
        writer = Writer(driver, Flusher(), clock, FastHistogram((0.1, 1.0)), frames=False)
        conn = Connection(
            client_id="c",
            user="u",
            transport="sse",
            codec=SSECodec(),
            clock=clock,
            outbox_limit=1 << 20,
            notify=writer.notify,
            max_ticks_per_s=50,  # a burst of 50, then one every 20 ms
        )
        writer.attach(conn)
        task = asyncio.create_task(writer.run())
        await turns()
        for n in range(1, 61):  # keys K1..K55, then K51..K55 again
            key = f"K{n if n <= 55 else n - 5}"
            event = Event("price:update", {"price": n}, "prices", Position(1, 0, n), 0, key=key, tick=True)
            conn.send_event(event, b"[%d]" % n)
        await turns()
        assert b"".join(driver.written).count(b"[") == 50
        await until(lambda: b"".join(driver.written).count(b"[") == 55)
        data = b"".join(driver.written)
        assert data.endswith(b"[56][57][58][59][60]")  # K51..K55 waited: the latest of each went
        conn.close(CloseReason.SHUTDOWN)
        await asyncio.wait_for(task, 1)

    run(body)


def frame_of(price: int) -> bytes:
    """The frame of `tick(conn, price, price)`."""
    return SSECodec().event_frame(price_event(price, price), "prices")


def test_an_event_with_nothing_queued_is_written_at_once_and_the_rest_of_the_turn_coalesces() -> None:
    async def body() -> None:
        driver = FakeDriver()
        writer, conn = setup(driver)
        tick(conn, 1, 1)
        assert driver.written == [frame_of(1)]  # written inside the dispatch: no queue, no flusher
        for n in (2, 3, 4):
            tick(conn, n, n)  # the same turn: queued behind it, each tick replacing the last
        assert driver.written == [frame_of(1)]
        await turns()
        assert driver.written == [frame_of(1), frame_of(4)]
        assert conn.outbox.stats.delivered == 2
        tick(conn, 5, 5)  # a later turn with nothing queued: at once again
        assert driver.written[-1] == frame_of(5)
        writer.detach()
        assert conn.write_now is None

    run(body)


def test_an_event_behind_queued_frames_waits_its_turn() -> None:
    async def body() -> None:
        driver = FakeDriver()
        writer, conn = setup(driver)
        conn.send_control("test", {"n": 1})
        tick(conn, 1, 1)
        assert driver.written == []
        await turns()
        assert driver.written == [b'event: test\ndata: {"n":1}\n\n' + frame_of(1)]
        writer.detach()

    run(body)


def test_replays_compressed_streams_and_capped_clients_are_always_queued() -> None:
    async def body() -> None:
        plain, gz_driver, capped_driver = FakeDriver(), FakeDriver(), FakeDriver()
        _, replayed = setup(plain)
        event = Event("order:update", {"id": "o1"}, "orders", Position(1, 0, 1), 0)
        replayed.send_event(event, b"[replayed]", replay=True)
        _, gz_conn = setup(gz_driver, compress=GzipStream().compress)
        tick(gz_conn, 1, 1)
        _, capped = setup(capped_driver, max_ticks_per_s=50)
        tick(capped, 1, 1)
        assert plain.written == gz_driver.written == capped_driver.written == []
        await turns()
        assert plain.written == [b"[replayed]"]
        assert gz_driver.written and capped_driver.written == [frame_of(1)]

    run(body)


def test_a_full_socket_takes_no_event_at_once() -> None:
    async def body() -> None:
        driver = FakeDriver()
        writer, conn = setup(driver)
        task = asyncio.create_task(writer.run())
        driver.full = True
        tick(conn, 1, 1)  # taken at once, but only in part: the task waits for the socket
        await turns()
        assert not driver.writable
        tick(conn, 2, 2)
        assert conn.outbox  # queued: the socket is not writable
        driver.full = False
        await turns(6)
        assert b"".join(driver.written).count(b"event: price:update") == 2
        conn.close(CloseReason.SHUTDOWN)
        await asyncio.wait_for(task, 1)

    run(body)
