"""Each provider kind against a fake server speaking that provider's protocol: subscribe,
data, REST fallback, and the provider's way of refusing credentials."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.manual_time import ManualTime
from support.upstream_fakes import SECRET, TOKEN, AlpacaFake, BirdeyeFake, FinnhubFake, HeliusFake, JsonFake
from support.upstream_harness import connection, running_node, upstream
from support.waiting import until
from tickwire.upstream.state import UpstreamState

S = UpstreamState
ACCOUNT_A = "7Yf2QH4w9mK3rT6uV8xZ1cD5eF7gH9jK2LmN4pQ6sTuW"
ACCOUNT_B = "9Ab3Cd5Ef7Gh9Jk2Lm4Np6Qr8St1Uv3Wx5Yz7bCe9DfG"
JSON_OPTIONS = {
    "auth": {"op": "auth", "key": "$token"},
    "ready": {"$.type": "authenticated"},
    "subscribe": {"op": "sub", "symbols": "$symbols"},
    "unsubscribe": {"op": "unsub", "symbols": "$symbols"},
    "records": "$.data[*]",
    "match": {"$.kind": "quote"},
    "fields": {"symbol": "$.s", "price": "$.p", "bid": "$.b", "ts": "$.t"},
    "auth_error": {"$.type": "error", "$.code": 401},
    "error_message": "$.msg",
    "rest": {"path": "/quotes?symbols={symbols}", "records": "$.quotes[*]"},
}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)
    monkeypatch.setenv("UPSTREAM_SECRET", SECRET)
    monkeypatch.setenv("WRONG_TOKEN", "not-the-token")


def run(body: Any) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


@pytest.mark.parametrize(
    ("fake_type", "kind", "options"),
    [
        (FinnhubFake, "finnhub", {}),
        (AlpacaFake, "alpaca", {}),
        (BirdeyeFake, "birdeye", {}),
        (JsonFake, "json", JSON_OPTIONS),
    ],
)
def test_price_providers_stream_normalised_updates(
    fake_type: type, kind: str, options: dict[str, Any]
) -> None:
    async def body() -> None:
        time = ManualTime()
        async with fake_type() as fake:
            config = upstream(fake, kind, name="p1", options=options)
            async with running_node([config], time) as (node, readers):
                conn = connection(node, "p1")
                reader = await readers.open("AAPL,MSFT")
                await until(lambda: fake.all_held == {"AAPL", "MSFT"})
                await fake.push("AAPL", 187.5)
                await fake.push("MSFT", 411.25)
                await until(lambda: len(readers.live(reader)) == 2)
                got = {e["symbol"]: e for e in readers.live(reader)}
                assert got["AAPL"]["price"] == 187.5 and got["MSFT"]["price"] == 411.25
                assert {e["source"] for e in got.values()} == {"p1"}
                assert conn.stats.messages >= 2 and conn.stats.bytes > 0
                assert conn.state is S.CONNECTED

    run(body)


@pytest.mark.parametrize(
    ("fake_type", "kind", "options", "reason"),
    [
        (FinnhubFake, "finnhub", {}, "refused the credentials at the handshake (HTTP 401)"),
        (BirdeyeFake, "birdeye", {}, "refused the credentials at the handshake (HTTP 401)"),
        (HeliusFake, "helius", {}, "refused the credentials at the handshake (HTTP 401)"),
        (JsonFake, "json", JSON_OPTIONS, "the provider refused the credentials: bad key"),
    ],
)
def test_a_refused_key_is_failed_with_the_providers_reason(
    fake_type: type, kind: str, options: dict[str, Any], reason: str
) -> None:
    async def body() -> None:
        time = ManualTime()
        async with fake_type() as fake:
            config = upstream(fake, kind, options=options, token_env="WRONG_TOKEN")
            async with running_node([config], time) as (node, _):
                conn = connection(node)
                await until(lambda: conn.state is S.FAILED)
                assert reason in conn.machine.reason
                assert "not-the-token" not in conn.machine.reason

    run(body)


def test_alpaca_merges_quotes_and_trades_into_the_full_state_and_drops_older_ones() -> None:
    async def body() -> None:
        time = ManualTime()
        async with AlpacaFake() as fake, running_node([upstream(fake, "alpaca")], time) as (node, readers):
            reader = await readers.open("AAPL")
            await until(lambda: fake.all_held == {"AAPL"})
            stats = connection(node).stats
            await fake.push_quote("AAPL", 187.1, 187.3, "2026-01-02T15:04:05.100Z")
            await until(lambda: len(readers.live(reader)) == 1)  # (queued ticks of a symbol conflate)
            await fake.push("AAPL", 187.2, t="2026-01-02T15:04:05.200Z", s=50)
            await until(lambda: len(readers.live(reader)) == 2)
            await fake.push("AAPL", 180.0, t="2026-01-02T15:04:05.150Z")  # older: stale
            await fake.push("AAPL", 187.2, t="2026-01-02T15:04:05.200Z", s=50)  # again: duplicate
            await until(lambda: stats.dropped["stale"] == 1 and stats.dropped["duplicate"] == 1)
            await fake.push_quote("AAPL", 187.15, 187.35, "2026-01-02T15:04:05.300Z")
            await until(lambda: len(readers.live(reader)) == 3)
            first, second, third = readers.live(reader)
            assert {k: first[k] for k in ("bid", "ask")} == {
                "bid": 187.1,
                "ask": 187.3,
            } and "price" not in first
            assert {k: second[k] for k in ("bid", "ask", "price", "size")} == {
                "bid": 187.1,
                "ask": 187.3,
                "price": 187.2,
                "size": 50,
            }
            assert third["bid"] == 187.15 and third["price"] == 187.2  # the trade's fields stay
            assert third["exchangeTs"] == 1767366245300
            assert stats.latency.counts != [0] * len(stats.latency.counts)

    run(body)


def test_birdeye_replaces_its_whole_set_in_one_complex_query() -> None:
    async def body() -> None:
        time = ManualTime()
        async with (
            BirdeyeFake() as fake,
            running_node([upstream(fake, "birdeye", linger_s=0)], time) as (_node, readers),
        ):
            one = await readers.open("So11111111111111111111111111111111111111112")
            await until(lambda: len(fake.subscribes) == 1)
            two = await readers.open("AAA,BBB")
            await until(lambda: len(fake.subscribes) == 2)
            assert sorted(fake.subscribes[1]) == ["AAA", "BBB", "So11111111111111111111111111111111111111112"]
            readers.close(one)
            await until(lambda: len(fake.subscribes) == 3)
            assert sorted(fake.subscribes[2]) == ["AAA", "BBB"]
            readers.close(two)
            await until(lambda: fake.all_held == set() and len(fake.unsubscribes) == 3)
            assert len(fake.subscribes) == 3

    run(body)


def test_birdeye_holds_at_most_100_tokens_per_connection() -> None:
    async def body() -> None:
        time = ManualTime()
        async with BirdeyeFake() as fake, running_node([upstream(fake, "birdeye")], time) as (node, readers):
            await readers.open(",".join(f"T{i}" for i in range(120)))
            await until(lambda: len(fake.all_held) == 100)
            conn = connection(node)
            assert len(conn.demand.refused) == 20
            assert not any(m == {"type": "ERROR"} for m in fake.received)

    run(body)


def test_helius_publishes_transactions_as_trade_new_on_the_chain_log_by_account() -> None:
    async def body() -> None:
        time = ManualTime()
        async with (
            HeliusFake() as fake,
            running_node([upstream(fake, "helius", linger_s=0)], time) as (node, readers),
        ):
            reader = await readers.open(f"{ACCOUNT_A},{ACCOUNT_B}", stream="chain")
            await until(lambda: fake.all_held == {ACCOUNT_A, ACCOUNT_B})
            assert [sorted(b) for b in fake.subscribes] == [sorted([ACCOUNT_A, ACCOUNT_B])]
            await fake.push(ACCOUNT_A, signature="5Gh8Jk2L")
            await fake.push(ACCOUNT_A, signature="5Gh8Jk2L")  # the same signature again: dropped
            await until(lambda: readers.live(reader, "trade:new"))
            trade = readers.live(reader, "trade:new")[0]
            assert trade["tradeId"] == "5Gh8Jk2L" and trade["symbol"] == ACCOUNT_A
            assert trade["source"] == "feed" and trade["status"] == "success" and trade["slot"] == 123456
            other = await readers.open(ACCOUNT_B, stream="chain")
            readers.close(reader)  # A has no reader left: its batch is split
            await until(
                lambda: (
                    [sorted(b) for b in fake.unsubscribes] == [sorted([ACCOUNT_A, ACCOUNT_B])]
                    and fake.all_held == {ACCOUNT_B}
                )
            )
            assert fake.subscribes[-1] == [ACCOUNT_B]
            await fake.push(ACCOUNT_B, signature="7Jk9Lm2N")
            await until(lambda: readers.live(other, "trade:new"))
            assert connection(node).stats.dropped["duplicate"] == 1

    run(body)


def test_helius_polls_signatures_while_the_stream_is_refused() -> None:
    async def body() -> None:
        time = ManualTime()
        async with HeliusFake() as fake:
            fake.refuse(503)
            fake.signatures[ACCOUNT_A] = [
                {"signature": "sigA1", "slot": 10, "err": None, "blockTime": 1767366245},
                {
                    "signature": "sigA2",
                    "slot": 11,
                    "err": {"InstructionError": [0, "x"]},
                    "blockTime": 1767366246,
                },
            ]
            async with running_node([upstream(fake, "helius")], time) as (node, readers):
                reader = await readers.open(ACCOUNT_A, stream="chain")
                await until(lambda: len(readers.live(reader, "trade:new")) == 2)
                trades = {t["tradeId"]: t for t in readers.live(reader, "trade:new")}
                assert (
                    trades["sigA2"]["status"] == "failed" and trades["sigA1"]["exchangeTs"] == 1767366245000
                )
                await time.advance(5)  # the next poll brings the same signatures: nothing new
                await until(lambda: connection(node).stats.dropped["duplicate"] >= 2)
                assert len(readers.live(reader, "trade:new")) == 2

    run(body)


@pytest.mark.parametrize(
    ("fake_type", "kind"), [(AlpacaFake, "alpaca"), (BirdeyeFake, "birdeye"), (JsonFake, "json")]
)
def test_rest_fallback_of_each_price_provider(fake_type: type, kind: str) -> None:
    async def body() -> None:
        time = ManualTime()
        async with fake_type() as fake:
            fake.refuse(503)
            fake.prices = {"AAPL": 190.5}
            options = JSON_OPTIONS if kind == "json" else {}
            async with running_node([upstream(fake, kind, options=options)], time) as (node, readers):
                reader = await readers.open("AAPL")
                await until(lambda: readers.live(reader))
                assert readers.live(reader)[0]["price"] == 190.5
                assert connection(node).state is S.POLLING

    run(body)


def test_a_rest_fallback_answering_401_is_counted_and_polling_goes_on() -> None:
    async def body() -> None:
        time = ManualTime()
        async with FinnhubFake() as fake:
            fake.refuse(503)
            fake.rest_status = 401
            async with running_node([upstream(fake, "finnhub", symbols=["AAPL"])], time) as (node, _):
                conn = connection(node)
                await until(lambda: conn.stats.errors >= 1)
                await time.advance(5)
                await until(lambda: conn.stats.errors >= 2)
                assert conn.state is S.POLLING

    run(body)
