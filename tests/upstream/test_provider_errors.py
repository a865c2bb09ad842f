"""Provider error paths over real sockets (SPEC 12): a provider's non-fatal error message is
counted and the stream goes on; the `tickwire` kind against a real core node refuses a bad
token for good and, with the JSON codec, relays prices."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from support.manual_time import ManualTime
from support.upstream_fakes import TOKEN, BirdeyeFake, FakeProvider, FinnhubFake, HeliusFake
from support.upstream_harness import (
    SECRET,
    Readers,
    connection,
    core_node,
    running_node,
    serving,
    upstream,
)
from support.waiting import until
from tickwire.core.connection import Connection
from tickwire.server.auth import issue_token
from tickwire.upstream.state import UpstreamState

S = UpstreamState
ACCOUNT_A = "7Yf2QH4w9mK3rT6uV8xZ1cD5eF7gH9jK2LmN4pQ6sTuW"
ACCOUNT_B = "9Ab3Cd5Ef7Gh9Jk2Lm4Np6Qr8St1Uv3Wx5Yz7bCe9DfG"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)
    monkeypatch.setenv("CORE_TOKEN", "not-a-token-of-the-core")


def run(body: Any) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


def delivered(readers: Readers, reader: Connection, kind: str) -> list[dict[str, Any]]:
    return readers.live(reader, "trade:new" if kind == "helius" else "price:update")


@pytest.mark.parametrize(
    ("fake_type", "kind", "symbol", "stream"),
    [
        (FinnhubFake, "finnhub", "AAPL", "prices"),
        (BirdeyeFake, "birdeye", "So11111111111111111111111111111111111111112", "prices"),
        (HeliusFake, "helius", ACCOUNT_A, "chain"),
    ],
)
def test_a_providers_error_message_is_counted_and_the_stream_goes_on(
    fake_type: type[FakeProvider], kind: str, symbol: str, stream: str
) -> None:
    async def body() -> None:
        time = ManualTime()
        async with (
            fake_type() as fake,
            running_node([upstream(fake, kind)], time) as (node, readers),
            serving(node) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            conn = connection(node)
            reader = await readers.open(symbol, stream=stream)
            await until(lambda: fake.all_held == {symbol})
            assert 'tickwire_upstream_errors_total{name="feed"} 0.0' in (await http.get("/metrics")).text
            await fake.send_error("Subscribing to too many symbols")
            await until(lambda: conn.stats.errors == 1)
            assert conn.state is S.CONNECTED and fake.handshakes == 1 and conn.stats.reconnects == 0
            assert 'tickwire_upstream_errors_total{name="feed"} 1.0' in (await http.get("/metrics")).text
            await fake.push(symbol, 12.5, signature="5Gh8Jk2L")
            await until(lambda: delivered(readers, reader, kind))  # the same connection serves on
            assert fake.handshakes == 1 and conn.state is S.CONNECTED

    run(body)


def test_a_helius_subscription_refused_by_json_rpc_error_is_counted_and_others_go_on() -> None:
    async def body() -> None:
        time = ManualTime()
        async with (
            HeliusFake() as fake,
            running_node([upstream(fake, "helius")], time) as (node, readers),
        ):
            conn = connection(node)
            fake.refuse_subscribes = "Invalid param: account not found"
            await readers.open(ACCOUNT_A, stream="chain")
            await until(lambda: conn.stats.errors == 1)
            assert conn.state is S.CONNECTED and fake.all_held == set()
            fake.refuse_subscribes = None
            other = await readers.open(ACCOUNT_B, stream="chain")
            await until(lambda: fake.all_held == {ACCOUNT_B})
            await fake.push(ACCOUNT_B, signature="7Jk9Lm2N")
            await until(lambda: readers.live(other, "trade:new"))
            assert fake.handshakes == 1 and conn.stats.errors == 1

    run(body)


def core_upstream(url: str, **settings: Any) -> dict[str, Any]:
    """A `tickwire` upstream on the core at `url`."""
    return {
        "name": "core",
        "kind": "tickwire",
        "url": url.replace("http://", "ws://") + "/api/stream/ws",
        "linger_s": 30,
        "batch_window_s": 0,
        "connect_timeout_s": 2,
        **settings,
    }


def test_the_tickwire_kind_with_a_token_the_core_refuses_is_failed_with_the_reason() -> None:
    async def body() -> None:
        time = ManualTime()
        async with (
            core_node() as (_core, url),
            running_node([core_upstream(url, token_env="CORE_TOKEN")], time) as (node, _),
        ):
            conn = connection(node, "core")
            await until(lambda: conn.state is S.FAILED)
            assert list(conn.machine.history) == [S.CONNECTING, S.FAILED]  # never `connected`
            assert conn.machine.reason.startswith("the core refused the token (close 4001")
            assert "not-a-token-of-the-core" not in conn.machine.reason
            await time.advance(120)  # no retry: a refused token cannot get better by itself
            assert conn.state is S.FAILED and conn.attempts == 1

    run(body)


def test_the_tickwire_kind_with_the_json_codec_and_a_token_relays_the_cores_prices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORE_TOKEN", issue_token(SECRET, "edge"))

    async def body() -> None:
        time = ManualTime()
        publisher = {"Authorization": f"Bearer {issue_token(SECRET, 'feed', ('publisher',))}"}
        async with (
            core_node() as (_core, url),
            httpx.AsyncClient(base_url=url, headers=publisher) as http,
        ):

            async def publish(symbol: str, price: float) -> None:
                event = {"type": "price:update", "data": {"symbol": symbol, "price": price}}
                assert (await http.post("/api/publish", json=event)).status_code == 200

            await publish("AAPL", 187.25)  # the core's current price: the edge gets it on subscribing
            upstreams = [core_upstream(url, token_env="CORE_TOKEN", options={"codec": "json"})]
            async with running_node(upstreams, time) as (node, readers):
                conn = connection(node, "core")
                assert not conn.adapter.binary
                reader = await readers.open("AAPL")
                await until(lambda: readers.live(reader))
                await publish("AAPL", 187.5)
                await until(lambda: len(readers.live(reader)) == 2)
                prices = readers.live(reader)
                assert [(p["symbol"], p["price"], p["source"]) for p in prices] == [
                    ("AAPL", 187.25, "core"),
                    ("AAPL", 187.5, "core"),
                ]
                assert conn.state is S.CONNECTED and conn.stats.errors == 0
                assert conn.stats.dropped.get("malformed", 0) == 0

    run(body)
