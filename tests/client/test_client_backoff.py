"""Backoff delays and jitter with an injected random source, and the client's retry loop
(attempts, max attempts, reset after success) with an injected sleep: nothing sleeps."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from support.proxy import FaultProxy
from support.servers import ServerProcess, free_port
from tickwire.client import Backoff, BackoffPolicy, Client, ConnectionState, RetriesExhausted, backoff


def test_nominal_sequence_doubles_to_the_cap() -> None:
    b = Backoff(random=lambda: 0.5)  # 0.5 = the middle of the jitter range: the nominal delay
    assert [b.next() for _ in range(8)] == [1, 2, 4, 8, 16, 16, 16, 16]


def test_jitter_stays_within_twenty_percent() -> None:
    rng = random.Random(7)
    b = Backoff(random=rng.random)
    delays = [b.next() for _ in range(2000)]
    for n, delay in enumerate(delays, start=1):
        nominal = min(16.0, 2.0 ** min(n - 1, 10))
        assert nominal * 0.8 <= delay <= nominal * 1.2
    capped = delays[10:]
    assert min(capped) < 16 * 0.82 and max(capped) > 16 * 1.18  # the whole range is used
    assert len(set(capped)) > 1000


def test_extreme_random_values_hit_the_bounds() -> None:
    assert Backoff(random=lambda: 0.0).next() == pytest.approx(0.8)
    assert Backoff(random=lambda: 0.999999).next() == pytest.approx(1.2, rel=1e-5)
    policy = BackoffPolicy(initial=0.5, max=3, factor=3, jitter=0.1)
    assert [policy.nominal(n) for n in range(1, 5)] == [0.5, 1.5, 3, 3]
    assert policy.bounds(2) == pytest.approx((1.35, 1.65))


def test_reset_starts_over() -> None:
    b = Backoff(random=lambda: 0.5)
    assert [b.next() for _ in range(3)] == [1, 2, 4]
    b.reset()
    assert b.next() == 1


def test_generator_form() -> None:
    assert list(itertools.islice(backoff(random=lambda: 0.5), 6)) == [1, 2, 4, 8, 16, 16]


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="initial"):
        BackoffPolicy(initial=5, max=1)
    with pytest.raises(ValueError, match="jitter"):
        BackoffPolicy(jitter=1.5)
    with pytest.raises(ValueError, match="factor"):
        BackoffPolicy(factor=0.5)


async def drain(client: Client) -> None:
    async with asyncio.timeout(10):
        async for _ in client.events():
            pass


def test_client_retries_with_backoff_then_gives_up_after_max_attempts() -> None:
    """Nothing listens on the port: every attempt fails; the fake sleep records the delays."""
    port = free_port()
    slept: list[float] = []
    states: list[ConnectionState] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    async def main() -> None:
        client = Client(
            f"http://127.0.0.1:{port}",
            ["prices"],
            max_attempts=6,
            sleep=fake_sleep,
            random=lambda: 0.5,
            fallback_after=0,
        )
        client.on_state_change(lambda change: states.append(change.new))
        with pytest.raises(RetriesExhausted, match="6 connection attempts"):
            await drain(client)
        assert client.state is ConnectionState.CLOSED
        assert client.stats.reconnects == 5
        await client.close()

    asyncio.run(main())
    assert slept == [1, 2, 4, 8, 16]  # 6 attempts, 5 waits, the cap reached
    assert states[:2] == [ConnectionState.CONNECTING, ConnectionState.RECONNECTING]
    assert states[-1] is ConnectionState.CLOSED


def test_client_resets_the_backoff_after_a_successful_connection(server: ServerProcess) -> None:
    """Fail twice (nothing listening), connect, lose the connection: the next delay is the
    initial one again."""

    slept: list[float] = []

    async def main() -> None:
        async with FaultProxy(server.port) as proxy:
            await proxy.stop_listening()
            gate = asyncio.Event()

            async def fake_sleep(delay: float) -> None:
                slept.append(delay)
                if len(slept) == 2:
                    await proxy.resume_listening()
                await asyncio.sleep(0)
                if len(slept) >= 3:
                    gate.set()

            client = Client(proxy.url, ["prices"], sleep=fake_sleep, random=lambda: 0.5, fallback_after=0)
            await client.start()
            async with asyncio.timeout(10):
                await client.wait_for_state(ConnectionState.CONNECTED)
                assert slept == [1, 2]
                proxy.cut_all()
                await gate.wait()
            await client.close()

    asyncio.run(main())
    assert slept[:3] == [1, 2, 1]
