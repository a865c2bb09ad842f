"""Health and fallback (SPEC 12): pings, stale detection, backoff and its bounds, the
attempts limit, REST polling while the stream is down and the return to streaming, bad
provider input. Time is a FakeClock moved by the test: nothing here sleeps for real."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.manual_time import InstantTime, ManualTime
from support.servers import free_port
from support.upstream_fakes import SECRET, TOKEN, AlpacaFake, FinnhubFake
from support.upstream_harness import connection, running_node, upstream
from support.waiting import until
from tickwire.brokers.memory import MemoryBroker
from tickwire.client.backoff import BackoffPolicy
from tickwire.upstream.config import UpstreamConfig
from tickwire.upstream.manager import UpstreamManager
from tickwire.upstream.runtime import Runtime
from tickwire.upstream.state import UpstreamState

S = UpstreamState


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)
    monkeypatch.setenv("UPSTREAM_SECRET", SECRET)


def run(body: Any) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


def states_of(conn: Any) -> list[str]:
    """Every state the connection announced as provider:status, in order."""
    return [state.value for state in conn.machine.history]


def test_pings_every_30_s_and_60_s_of_silence_is_stale_then_a_reconnect() -> None:
    async def body() -> None:
        time = ManualTime()
        async with FinnhubFake() as fake, running_node([upstream(fake, "finnhub")], time) as (node, readers):
            conn = connection(node)
            await until(lambda: conn.state is S.CONNECTED)
            await readers.open("AAPL")
            await until(lambda: fake.subscribes)
            pongs_before = conn.stats.messages
            await time.advance(30)  # a ping frame goes out; the fake answers the pong
            await until(lambda: conn.session is not None and conn.session.last_seen == time.clock.monotonic())
            assert conn.stats.messages == pongs_before  # a pong is not a provider message
            fake.silence()
            await time.advance(30)  # the second ping goes unanswered
            assert conn.state is S.CONNECTED
            await time.advance(30)  # 60 s without anything: stale
            await until(lambda: conn.state is not S.CONNECTED)
            await until(lambda: list(conn.machine.history)[-2:] == [S.STALE, S.RECONNECTING])
            assert "no message for 60 s" in conn.machine.reasons[S.STALE]
            fake.silence(False)
            handshakes = fake.handshakes
            await time.advance(1.3)
            await until(lambda: conn.state is S.CONNECTED)
            assert fake.handshakes == handshakes + 1
            await until(lambda: "AAPL" in fake.all_held)  # resubscribed on the new socket

    run(body)


def test_provider_app_pings_count_as_messages_and_keep_the_connection_fresh() -> None:
    async def body() -> None:
        time = ManualTime()
        async with (
            FinnhubFake() as fake,
            running_node([upstream(fake, "finnhub", ping_s=3600)], time) as (node, _),
        ):
            conn = connection(node)
            await until(lambda: conn.state is S.CONNECTED)
            for _ in range(4):
                await time.advance(40)
                await fake.ping()  # Finnhub's own {"type":"ping"}
                await until(
                    lambda: conn.session is not None and conn.session.last_seen == time.clock.monotonic()
                )
            assert conn.state is S.CONNECTED and conn.stats.reconnects == 0

    run(body)


def test_a_refused_websocket_engages_rest_polling_and_streaming_returns_by_itself() -> None:
    async def body() -> None:
        time = ManualTime()
        async with FinnhubFake() as fake:
            fake.refuse(503)
            fake.prices = {"AAPL": 190.5, "MSFT": 410.0}
            config = upstream(fake, "finnhub", poll_interval_s=5, symbols=["AAPL"])
            async with running_node([config], time) as (node, readers):
                conn = connection(node)
                reader = await readers.open("MSFT")
                await until(lambda: conn.state is S.POLLING)
                assert "HTTP 503" in conn.machine.reason
                await until(lambda: len(readers.live(reader)) == 1)
                assert readers.live(reader)[0] == {
                    **readers.live(reader)[0],
                    "symbol": "MSFT",
                    "price": 410.0,
                }
                polled = len(fake.rest_requests)
                assert {r.query["symbol"][0] for r in fake.rest_requests} == {"AAPL", "MSFT"}
                fake.prices["MSFT"] = 411.0
                await time.advance(1.3)  # a reconnect attempt (refused again), no poll yet
                assert len(fake.rest_requests) == polled
                await time.advance(3.8)  # 5 s after the first poll: the second
                await until(lambda: len(fake.rest_requests) == polled + 2)
                await until(lambda: [p["price"] for p in readers.live(reader)] == [410.0, 411.0])
                fake.refuse(None)  # the stream is back
                await time.advance(4)  # the next attempt (2 s +-20% after the last)
                await until(lambda: conn.state is S.CONNECTED)
                after = len(fake.rest_requests)
                await time.advance(20)
                assert len(fake.rest_requests) == after  # polling stopped
                await until(lambda: fake.all_held == {"AAPL", "MSFT"})
                await fake.push("MSFT", 412.0)
                await until(lambda: readers.live(reader)[-1]["price"] == 412.0)
                assert states_of(conn)[:3] == ["connecting", "polling", "connected"]

    run(body)


def test_backoff_grows_from_1_s_to_60_s_with_jitter_and_gives_up_after_100_attempts() -> None:
    async def body() -> None:
        time = InstantTime()
        port = free_port()  # nothing listens: every attempt is refused at once
        config = UpstreamConfig(name="feed", kind="finnhub", url=f"ws://127.0.0.1:{port}", token_env="T")
        published: list[Any] = []

        async def publish(batch: Any, trace: str | None = None) -> None:
            published.extend(batch)

        manager = UpstreamManager(
            [config], publish, MemoryBroker(), Runtime(time.clock, time.sleep), env={"T": "x"}
        )
        conn = manager.connections["feed"]
        await manager.start()
        await until(lambda: conn.state is S.FAILED, within=30)
        await until(lambda: conn.publisher.pending == 0)
        await manager.stop()
        delays = time.requested
        assert len(delays) == 99  # 100 attempts, a delay between each two
        policy = BackoffPolicy(1.0, 60.0)
        for failures, delay in enumerate(delays, start=1):
            low, high = policy.bounds(failures)
            assert low <= delay <= high, (failures, delay)
        assert delays[0] < 1.21 and max(delays) <= 72 and min(delays[10:]) >= 48
        assert conn.stats.reconnects == 99
        last = published[-1].data
        assert last["state"] == "failed" and last["name"] == "feed" and last["kind"] == "finnhub"
        assert last["reason"].startswith("100 connection attempts failed in a row; last: cannot connect")
        assert [p.data["state"] for p in published] == ["connecting", "reconnecting", "failed"]

    run(body)


def test_max_attempts_is_configurable() -> None:
    async def body() -> None:
        time = InstantTime()
        config = UpstreamConfig(
            name="feed", kind="finnhub", url=f"ws://127.0.0.1:{free_port()}", token_env="T", max_attempts=3
        )

        async def publish(batch: Any, trace: str | None = None) -> None:
            pass

        manager = UpstreamManager(
            [config], publish, MemoryBroker(), Runtime(time.clock, time.sleep), env={"T": "x"}
        )
        await manager.start()
        conn = manager.connections["feed"]
        await until(lambda: conn.state is S.FAILED)
        await manager.stop()
        assert len(time.requested) == 2 and "3 connection attempts failed" in conn.machine.reason

    run(body)


def test_refused_credentials_fail_at_once_with_the_reason() -> None:
    async def body() -> None:
        time = ManualTime()
        async with AlpacaFake(secret="another-secret") as fake:
            async with running_node([upstream(fake, "alpaca")], time) as (node, readers):
                conn = connection(node)
                await until(lambda: conn.state is S.FAILED)
                assert conn.machine.reason == "Alpaca error 402: auth failed"
                assert fake.handshakes == 1
                await time.advance(120)
                assert fake.handshakes == 1  # no retry: the key will not get better
                providers = await readers.open("", stream="providers")
                snapshot = readers.events(providers, "provider:status")[0].json()
                assert snapshot["providers"][0]["state"] == "failed"
                assert SECRET not in str(snapshot) and TOKEN not in str(snapshot)

    run(body)


def test_malformed_and_oversized_messages_are_counted_and_never_crash_the_node() -> None:
    async def body() -> None:
        time = ManualTime()
        async with FinnhubFake() as fake:
            entry = upstream(fake, "finnhub", max_message_bytes=4096)
            async with running_node([entry], time) as (node, readers):
                conn = connection(node)
                await until(lambda: conn.state is S.CONNECTED)
                reader = await readers.open("AAPL")
                await until(lambda: fake.subscribes)
                for bad in (
                    "not json",
                    "[1,2,3]",
                    '{"type":"trade","data":"x"}',
                    '{"type":"what"}',
                    '{"type":"trade","data":[{"s":"AAPL","p":"NaN?"},{"s":"AAPL","p":-5,"t":1}]}',
                    b"\xff\xfe",
                ):
                    await fake.send_raw(bad)
                await fake.push("AAPL", 100.5)
                await until(lambda: readers.live(reader))
                assert conn.stats.dropped["malformed"] == 5
                assert conn.stats.dropped["invalid"] == 1  # the negative price
                assert conn.state is S.CONNECTED
                await fake.send_raw("x" * 10_000)  # over max_message_bytes
                await until(lambda: conn.stats.dropped["oversized"] == 1)
                await time.advance(1.3)
                await until(lambda: conn.state is S.CONNECTED and "AAPL" in fake.all_held)
                await fake.push("AAPL", 101.5)
                await until(lambda: readers.live(reader)[-1]["price"] == 101.5)
                metrics = node.metrics.render().decode()
                assert 'tickwire_upstream_dropped_total{name="feed",reason="malformed"} 5.0' in metrics
                assert 'tickwire_upstream_dropped_total{name="feed",reason="oversized"} 1.0' in metrics

    run(body)


def test_a_slow_provider_within_the_connect_timeout_still_connects() -> None:
    async def body() -> None:
        time = ManualTime()
        async with AlpacaFake() as fake:
            fake.slow_s = 0.1
            async with running_node([upstream(fake, "alpaca", connect_timeout_s=0.6)], time) as (
                node,
                readers,
            ):
                conn = connection(node)
                await until(lambda: conn.state is S.CONNECTED, within=5)
                await readers.open("AAPL")
                await until(lambda: fake.all_held == {"AAPL"}, within=5)
                fake.slow_s = 0.7  # the next authentication answers after connect_timeout_s
                fake.cut()
                await until(lambda: conn.state is S.RECONNECTING)
                await time.advance(1.3)
                await until(lambda: "authentication" in conn.machine.reason, within=5)
                assert conn.state is S.POLLING  # a failed attempt, with a rest_url: polling
                fake.slow_s = 0.05
                await time.advance(2.5)
                await until(lambda: conn.state is S.CONNECTED and fake.all_held == {"AAPL"}, within=5)

    run(body)
