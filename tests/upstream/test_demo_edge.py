"""The demo as an edge node (README "Market data in"): with an upstream feeding its prices
the simulator publishes nothing and follows what the upstream publishes."""

from __future__ import annotations

import asyncio
import random

import pytest

from support.manual_time import ManualTime
from support.upstream_fakes import SECRET, TOKEN, AlpacaFake
from support.upstream_harness import connection, running_node, upstream
from support.waiting import until
from tickwire.config import load_settings
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.demo.app import Demo, follows_upstream
from tickwire.demo.market import MarketSimulator
from tickwire.node import Node
from tickwire.upstream.state import UpstreamState


def price(data: dict[str, object]) -> Event:
    return Event("price:update", data, "prices", Position(1, 0, 1), 0, tick=True)


def test_the_market_follows_upstream_prices_only() -> None:
    market = MarketSimulator(["AAPL"], 1.0, rng=random.Random(1))
    market.follow(price({"symbol": "AAPL", "price": 200.0}))  # published locally: no source
    assert market.quote("AAPL") is None
    market.follow(price({"symbol": "AAPL", "price": 201.5, "bid": 201.4, "ask": 201.6, "source": "core"}))
    quote = market.quote("AAPL")
    assert quote is not None and (quote.price, quote.bid, quote.ask) == (201.5, 201.4, 201.6)
    market.follow(price({"symbol": "TSLA", "price": 1.0, "source": "core"}))  # not a demo symbol
    market.follow(price({"symbol": "AAPL", "price": -1, "source": "core"}))
    assert market.quote("TSLA") is None and market.quote("AAPL") == quote
    assert market.step()[0].price > 0  # the walk goes on from the followed price


def test_a_node_with_a_price_upstream_makes_the_demo_follow() -> None:
    upstream = {
        "name": "core",
        "kind": "tickwire",
        "url": "ws://127.0.0.1:8080/api/stream/ws",
        "symbols": ["AAPL"],
    }
    edge = Node(load_settings(env={}, overrides={"secret": "s" * 32, "upstreams": [upstream]}))
    assert follows_upstream(edge)
    assert not follows_upstream(Node(load_settings(env={}, overrides={"secret": "s" * 32})))


def test_the_demo_on_an_edge_subscribes_its_symbols_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator reads its symbols: the edge holds them upstream without any page open."""
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)
    monkeypatch.setenv("UPSTREAM_SECRET", SECRET)

    async def body() -> None:
        time = ManualTime()
        symbols = ["AAPL", "MSFT"]
        async with (
            AlpacaFake() as fake,
            running_node([upstream(fake, "alpaca")], time, demo_symbols=symbols) as (node, _readers),
        ):
            await until(lambda: connection(node).state is UpstreamState.CONNECTED)
            await Demo(node, node.settings, seed=3).start(node)
            await until(lambda: fake.all_held == set(symbols))
            assert fake.subscribes == [symbols]

    asyncio.run(asyncio.wait_for(body(), 30))
