"""Demand-driven subscriptions against a fake provider, through the hub (SPEC 12):
the first reader subscribes, readers share, the last one unsubscribes after the linger, in
batches; a reconnect subscribes everything again. Polls (SPEC 7, over HTTP) are demand too:
a poll holds its symbols while it runs, and they linger after the last poll."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from support.manual_time import ManualTime
from support.upstream_fakes import SECRET, TOKEN, AlpacaFake, FinnhubFake
from support.upstream_harness import connection, running_node, serving, upstream
from support.waiting import until
from tickwire.upstream.state import UpstreamState


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)
    monkeypatch.setenv("UPSTREAM_SECRET", SECRET)


def run(body: Any) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


def test_first_reader_subscribes_and_last_unsubscribes_after_the_linger_in_batches() -> None:
    async def body() -> None:
        time = ManualTime()
        async with AlpacaFake() as fake, running_node([upstream(fake, "alpaca")], time) as (node, readers):
            conn = connection(node)
            await until(lambda: conn.state is UpstreamState.CONNECTED)
            assert fake.subscribes == []  # nothing is read yet: nothing is subscribed
            providers = await readers.open("", stream="providers")
            first = await readers.open("AAPL,MSFT,GOOGL")
            await until(lambda: fake.subscribes)
            assert fake.subscribes == [["AAPL", "GOOGL", "MSFT"]]  # one message for the three
            second = await readers.open("AAPL")
            readers.close(first)
            await time.advance(29)
            assert fake.unsubscribes == []  # lingering
            readers.close(second)
            await time.advance(1.5)
            await until(lambda: fake.unsubscribes)
            assert fake.unsubscribes == [["GOOGL", "MSFT"]]  # their linger ran out together
            await time.advance(30)
            await until(lambda: len(fake.unsubscribes) == 2)
            assert fake.unsubscribes[1] == ["AAPL"]
            assert fake.all_held == set()
            assert len(fake.subscribes) == 1
            await until(lambda: len(readers.live(providers, "provider:status")) == 3)
            held = [(s["state"], sorted(s["symbols"])) for s in readers.live(providers, "provider:status")]
            assert held == [  # the status follows the subscribed set
                ("connected", ["AAPL", "GOOGL", "MSFT"]),
                ("connected", ["AAPL"]),
                ("connected", []),
            ]

    run(body)


def test_a_reader_that_comes_back_within_the_linger_costs_nothing() -> None:
    async def body() -> None:
        time = ManualTime()
        async with AlpacaFake() as fake, running_node([upstream(fake, "alpaca")], time) as (node, readers):
            await until(lambda: connection(node).state is UpstreamState.CONNECTED)
            reader = await readers.open("AAPL")
            await until(lambda: fake.subscribes)
            readers.close(reader)
            await time.advance(10)
            reader = await readers.open("AAPL")
            await time.advance(60)
            assert fake.subscribes == [["AAPL"]] and fake.unsubscribes == []

    run(body)


def test_two_readers_share_one_upstream_subscription_and_both_get_the_updates() -> None:
    async def body() -> None:
        time = ManualTime()
        async with FinnhubFake() as fake, running_node([upstream(fake, "finnhub")], time) as (node, readers):
            await until(lambda: connection(node).state is UpstreamState.CONNECTED)
            one = await readers.open("AAPL")
            two = await readers.open("AAPL,TSLA")
            await until(lambda: len(fake.subscribes) == 2)
            assert sorted(fake.subscribes) == [["AAPL"], ["TSLA"]]  # finnhub: one symbol per message
            await fake.push("AAPL", 187.25)
            await until(lambda: readers.live(one) and readers.live(two))
            for reader in (one, two):
                live = readers.live(reader)
                assert [e["price"] for e in live] == [187.25]
                assert live[0]["source"] == "feed" and live[0]["symbol"] == "AAPL"
                assert live[0]["size"] == 100 and isinstance(live[0]["exchangeTs"], int)

    run(body)


def test_a_reconnect_after_a_cut_subscribes_everything_again() -> None:
    async def body() -> None:
        time = ManualTime()
        symbols = [f"S{i:03d}" for i in range(150)]
        async with (
            AlpacaFake() as fake,
            running_node([upstream(fake, "alpaca", symbols=["PINNED"])], time) as (node, readers),
        ):
            conn = connection(node)
            await until(lambda: conn.state is UpstreamState.CONNECTED)
            await readers.open(",".join(symbols[:100]))
            await readers.open(",".join(symbols[100:]))
            await until(lambda: len(fake.all_held) == 151)
            before = fake.handshakes
            fake.subscribes.clear()
            fake.cut()
            await until(
                lambda: conn.state is UpstreamState.RECONNECTING or conn.state is UpstreamState.POLLING
            )
            await time.advance(1.3)  # the first backoff delay: 1 s +-20%
            await until(lambda: conn.state is UpstreamState.CONNECTED and len(fake.all_held) == 151)
            assert fake.handshakes == before + 1
            assert [len(batch) for batch in fake.subscribes] == [100, 51]  # at most 100 per message
            assert conn.stats.reconnects == 1

    run(body)


def test_polls_of_a_symbol_subscribe_it_until_the_linger_after_the_last_poll() -> None:
    async def body() -> None:
        time = ManualTime()
        async with (
            AlpacaFake() as fake,
            running_node([upstream(fake, "alpaca", symbols=["PINNED"])], time) as (node, _),
            serving(node) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            await until(lambda: connection(node).state is UpstreamState.CONNECTED)
            events = "/api/stream/prices/events"
            assert (await http.get(events, params={"symbols": "NVDA"})).status_code == 200
            await until(lambda: fake.all_held == {"PINNED", "NVDA"})
            assert fake.subscribes == [["PINNED"], ["NVDA"]]
            await time.advance(20)
            assert (await http.get(events, params={"symbols": "NVDA"})).status_code == 200  # renews
            await time.advance(20)
            assert fake.unsubscribes == []  # 40 s after the first poll, 20 s after the last
            await time.advance(11)
            await until(lambda: fake.unsubscribes)
            assert fake.unsubscribes == [["NVDA"]] and fake.all_held == {"PINNED"}
            assert connection(node).demand.refs == {}  # nothing left of the polls

    run(body)


def test_a_long_poll_holds_its_symbol_while_it_waits_and_answers_the_providers_price() -> None:
    async def body() -> None:
        time = ManualTime()
        async with FinnhubFake() as fake:
            feed = upstream(fake, "finnhub", symbols=["PINNED"], linger_s=10)
            async with (
                running_node([feed], time) as (node, readers),
                serving(node) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                pinned = await readers.open("PINNED")
                await until(lambda: fake.all_held == {"PINNED"})
                await fake.push("PINNED", 1.5)  # the log gets a position to long-poll after
                await until(lambda: readers.live(pinned))
                events = "/api/stream/prices/events"
                first = (await http.get(events, params={"symbols": "AMD"})).json()
                params = {"symbols": "AMD", "wait": "30", "after": first["lastEventId"]}
                waiting = asyncio.ensure_future(http.get(events, params=params))
                await until(lambda: connection(node).demand.refs.get("AMD") == 1)  # the long-poll
                await time.advance(15)  # the first poll's linger ran out: the long-poll holds it
                assert fake.subscribes == [["PINNED"], ["AMD"]] and fake.unsubscribes == []
                assert not waiting.done()
                await fake.push("AMD", 142.5)
                answer = (await waiting).json()
                got = [(e["event"], e["data"]["price"]) for e in answer["events"]]
                assert got == [("price:update", 142.5)]
                await time.advance(9)
                assert fake.unsubscribes == []
                await time.advance(2)
                await until(lambda: fake.unsubscribes == [["AMD"]])

    run(body)
