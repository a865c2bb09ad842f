"""The upstream pieces on their own, without I/O: configuration, the state table, demand
and its linger, normalisation, the JSONPath subset, and the publish batcher's bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.errors import ConfigError
from tickwire.pipeline.validate import PublishRequest
from tickwire.upstream import jsonpath
from tickwire.upstream.adapters import ADAPTERS, make_adapter
from tickwire.upstream.config import UpstreamConfig
from tickwire.upstream.demand import Demand, batches
from tickwire.upstream.model import PRICE, TRADE, Update
from tickwire.upstream.normalize import Normalizer
from tickwire.upstream.publish import Publisher
from tickwire.upstream.state import TRANSITIONS, IllegalTransition, StateMachine, UpstreamState
from tickwire.upstream.stats import ConnectionStats

S = UpstreamState
SECRET = "x" * 32


# -- configuration -----------------------------------------------------------------------


def test_upstreams_come_from_the_yaml_file_and_from_tickwire_upstreams(tmp_path: Path) -> None:
    listing = tmp_path / "upstreams.yaml"
    listing.write_text(
        "upstreams:\n"
        "  - {name: core, kind: tickwire, url: 'ws://core:8080/api/stream/ws', token_env: CORE_TOKEN,"
        " symbols: [AAPL], linger_s: 30, poll_interval_s: 5}\n"
    )
    from_env = load_settings(env={"TICKWIRE_SECRET": SECRET, "TICKWIRE_UPSTREAMS": str(listing)})
    assert [u.name for u in from_env.upstreams] == ["core"]
    assert from_env.upstreams[0].symbols == ("AAPL",) and from_env.upstreams[0].max_attempts == 100
    config = tmp_path / "tickwire.yaml"
    config.write_text("upstreams:\n  - {name: f, kind: finnhub, token_env: FINNHUB_KEY}\n")
    from_file = load_settings(config, env={"TICKWIRE_SECRET": SECRET})
    assert from_file.upstreams[0].kind == "finnhub" and from_file.upstreams[0].url == ""


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a", "kind": "nope"}, "kind"),
        ({"name": "a b", "kind": "json"}, "name"),
        ({"name": "a", "kind": "finnhub", "token": "inline-secret"}, "token"),  # secrets: env only
        ({"name": "a", "kind": "finnhub", "url": "ftp://x"}, "url"),
        ({"name": "a", "kind": "finnhub", "backoff_initial_s": 10, "backoff_max_s": 5}, "backoff_max_s"),
    ],
)
def test_bad_upstream_entries_are_config_errors(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={"TICKWIRE_SECRET": SECRET}, overrides={"upstreams": [entry]})
    assert message in str(err.value)
    assert "inline-secret" not in str(err.value) or message == "token"


def test_upstream_names_are_unique() -> None:
    with pytest.raises(ConfigError, match="unique"):
        load_settings(
            env={"TICKWIRE_SECRET": SECRET},
            overrides={"upstreams": [{"name": "a", "kind": "json"}, {"name": "a", "kind": "json"}]},
        )


def test_a_missing_secret_or_a_bad_option_is_a_config_error_when_the_adapter_is_built() -> None:
    config = UpstreamConfig(name="f", kind="finnhub", token_env="FINNHUB_KEY")
    with pytest.raises(ConfigError, match="FINNHUB_KEY"):
        make_adapter(config, env={})
    alpaca = UpstreamConfig(
        name="a", kind="alpaca", token_env="K", secret_env="S", options={"feed": "nasdaq"}
    )
    with pytest.raises(ConfigError, match="feed"):
        make_adapter(alpaca, env={"K": "k", "S": "s"})
    tickwire = UpstreamConfig(name="t", kind="tickwire", url="ws://x/ws", options={"streams": ["orders"]})
    with pytest.raises(ConfigError, match="cannot relay orders"):
        make_adapter(tickwire, env={})
    assert set(ADAPTERS) == {"tickwire", "finnhub", "alpaca", "birdeye", "helius", "json"}


# -- the state machine ---------------------------------------------------------------------


def test_state_moves_follow_the_table_and_are_announced() -> None:
    seen: list[tuple[str, str]] = []
    machine = StateMachine(lambda change: seen.append((change.new.value, change.reason)))
    machine.move(S.CONNECTING, "starting")
    machine.move(S.CONNECTED, "streaming")
    machine.move(S.CONNECTED, "again")  # no move, no announcement
    machine.move(S.STALE, "no message for 60 s")
    machine.move(S.POLLING, "down")
    machine.move(S.FAILED, "gave up")
    with pytest.raises(IllegalTransition):
        machine.move(S.CONNECTED)
    assert seen == [
        ("connecting", "starting"),
        ("connected", "streaming"),
        ("stale", "no message for 60 s"),
        ("polling", "down"),
        ("failed", "gave up"),
    ]
    assert all(S.FAILED in TRANSITIONS[s] for s in S if s not in (S.STANDBY, S.FAILED))
    assert [s.code for s in S] == list(range(7))


# -- demand ---------------------------------------------------------------------------------


def test_demand_counts_references_lingers_and_keeps_pinned_symbols() -> None:
    clock = FakeClock()
    demand = Demand(["PIN"], linger_s=30, max_symbols=10, clock=clock)
    assert demand.flush() == (["PIN"], [])
    demand.acquire("A")
    demand.acquire("A")
    demand.acquire("B")
    assert demand.flush() == (["A", "B"], [])
    demand.release("A")
    demand.release("B")
    assert demand.flush() == ([], [])  # B lingers
    assert demand.next_deadline() == clock.monotonic() + 30
    clock.advance(30)
    assert demand.flush() == ([], ["B"])
    demand.release("A")
    demand.release("PIN")  # a pinned symbol never leaves
    clock.advance(31)
    assert demand.flush() == ([], ["A"])
    assert list(demand.held) == ["PIN"]
    assert demand.resubscribe() == ["PIN"]


def test_demand_refuses_beyond_max_symbols_and_admits_when_room_frees() -> None:
    clock = FakeClock()
    demand = Demand([], linger_s=0, max_symbols=2, clock=clock)
    for symbol in "ABC":
        demand.acquire(symbol)
    assert demand.flush() == (["A", "B"], []) and demand.refused == ["C"]
    demand.release("A")
    assert demand.flush() == (["C"], ["A"]) and demand.refused == []


def test_external_demand_is_one_reference_per_symbol() -> None:
    demand = Demand([], linger_s=0, max_symbols=10, clock=FakeClock())
    demand.acquire("A")
    demand.set_external(["A", "B"])
    assert demand.flush() == (["A", "B"], [])
    assert demand.local() == ["A"]
    demand.set_external([])
    assert demand.flush() == ([], ["B"])


def test_batches_are_at_most_the_limit() -> None:
    assert [len(b) for b in batches([str(i) for i in range(250)], 100)] == [100, 100, 50]
    assert batches([], 100) == []


# -- normalisation -----------------------------------------------------------------------


def quote(symbol: str, ts: int | None, seq: int | None = None, **fields: float) -> Update:
    return Update(PRICE, symbol, fields, exchange_ts=ts, seq=seq)


def test_normalisation_merges_fields_and_drops_stale_and_duplicate_updates() -> None:
    stats = ConnectionStats()
    norm = Normalizer("feed", stats)
    first = norm.accept(quote("A", 1000, bid=1.0, ask=1.2), 1500)
    assert first is not None and first.data == {
        "symbol": "A",
        "bid": 1.0,
        "ask": 1.2,
        "source": "feed",
        "exchangeTs": 1000,
    }
    second = norm.accept(quote("A", 1001, price=1.1, size=5), 1500)
    assert second is not None and second.data["bid"] == 1.0 and second.data["price"] == 1.1
    assert norm.accept(quote("A", 999, price=0.5), 1500) is None
    assert norm.accept(quote("A", 1001, price=1.1), 1500) is None
    assert stats.dropped["stale"] == 1 and stats.dropped["duplicate"] == 1
    assert stats.latency.sum == pytest.approx(0.5 + 0.499)


def test_sequence_numbers_win_over_times_and_bad_values_are_invalid() -> None:
    stats = ConnectionStats()
    norm = Normalizer("feed", stats, holds=lambda s: s != "NOPE")
    assert norm.accept(quote("A", 5000, seq=2, price=1.0), 0) is not None
    assert norm.accept(quote("A", 9000, seq=1, price=2.0), 0) is None  # older by sequence
    assert norm.accept(quote("A", 1000, seq=3, price=3.0), 0) is not None
    assert norm.accept(quote("A", None, price=-1.0), 0) is None
    assert norm.accept(quote("A B\n", None, price=1.0), 0) is None
    assert norm.accept(quote("NOPE", None, price=1.0), 0) is None
    assert stats.dropped["invalid"] == 2 and stats.dropped["unsubscribed"] == 1


def test_log_events_are_published_once_per_key() -> None:
    stats = ConnectionStats()
    norm = Normalizer("chain-feed", stats)
    trade = Update(TRADE, "ACC", {"tradeId": "sig", "symbol": "ACC"}, exchange_ts=10, key="sig")
    request = norm.accept(trade, 20)
    assert request is not None and request.data == {
        "tradeId": "sig",
        "symbol": "ACC",
        "source": "chain-feed",
        "exchangeTs": 10,
    }
    assert norm.accept(trade, 30) is None and stats.dropped["duplicate"] == 1
    private = Update("order:update", "", {"orderId": "o1"})
    assert norm.accept(private, 0) is None and stats.dropped["invalid"] == 1  # user events never relay


# -- the JSONPath subset -----------------------------------------------------------------


def test_jsonpath_subset() -> None:
    doc = {"data": [{"s": "A", "p": 1}, {"s": "B", "p": 2}], "meta": {"a-b": {"x": [5, 6]}}}
    assert jsonpath.find(jsonpath.compile_path("$.data[*].s"), doc) == ["A", "B"]
    assert jsonpath.first(jsonpath.compile_path("$.data[-1].p"), doc) == 2
    assert jsonpath.first(jsonpath.compile_path("$['meta'].a-b.x[0]"), doc) == 5
    assert jsonpath.find(jsonpath.compile_path("$.meta.*"), doc) == [{"x": [5, 6]}]
    assert jsonpath.first(jsonpath.compile_path("$.missing.x"), doc) is None
    for bad in ("data", "$.data[", "$..x"):
        with pytest.raises(ValueError, match=r"path|read"):
            jsonpath.compile_path(bad)


# -- the publish batcher ---------------------------------------------------------------------


def test_the_batcher_conflates_ticks_keeps_log_events_and_bounds_its_queue() -> None:
    async def body() -> None:
        sent: list[list[PublishRequest]] = []

        async def publish(batch: Any) -> None:
            sent.append(list(batch))

        stats = ConnectionStats()
        publisher = Publisher("feed", publish, stats, max_batch=2, max_pending=3)
        publisher.offer(PublishRequest(PRICE, {"symbol": "A", "price": 1}), "A")
        publisher.offer(PublishRequest(TRADE, {"tradeId": "t1"}))
        publisher.offer(PublishRequest(PRICE, {"symbol": "A", "price": 2}), "A")  # replaces the first
        publisher.offer(PublishRequest(TRADE, {"tradeId": "t2"}))
        publisher.offer(PublishRequest(TRADE, {"tradeId": "t3"}))  # over the bound
        publisher.offer(PublishRequest("provider:status", {"name": "feed"}), force=True)
        task = asyncio.create_task(publisher.run())
        await asyncio.wait_for(publisher.idle.wait(), 1)
        task.cancel()
        flat = [r.data for batch in sent for r in batch]
        assert flat == [{"symbol": "A", "price": 2}, {"tradeId": "t1"}, {"tradeId": "t2"}, {"name": "feed"}]
        assert [len(b) for b in sent] == [2, 2] and stats.dropped["backlog"] == 1 and stats.published == 4

    asyncio.run(body())
