"""End to end over real sockets: `tickwire serve` processes configured with an upstreams
YAML (TICKWIRE_UPSTREAMS), fake providers in the test process, SSE clients.

- a provider's messages reach an SSE reader with `source`, and the upstream metrics and
  `provider:status` say so;
- the `tickwire` kind: an edge node fed by a core node (Redis broker) relays prices on
  demand and a log stream, and resumes after the core node restarts with no event lost or
  doubled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from support.async_streams import SSEStream, many_connections_http
from support.redis_server import RedisServer, redis_node, require_redis_server
from support.servers import ServerProcess
from support.upstream_fakes import SECRET, TOKEN, AlpacaFake
from support.waiting import until


def run(body: Any) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


def write_upstreams(tmp_path: Path, upstreams: list[dict[str, Any]]) -> str:
    path = tmp_path / "upstreams.yaml"
    path.write_text(yaml.safe_dump({"upstreams": upstreams}))
    return str(path)


def metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


def test_provider_messages_reach_an_sse_reader_with_source_and_latency(tmp_path: Path) -> None:
    async def body() -> None:
        async with AlpacaFake() as fake:
            path = write_upstreams(
                tmp_path,
                [
                    {
                        "name": "alpaca-iex",
                        "kind": "alpaca",
                        "url": fake.url,
                        "rest_url": fake.rest_url,
                        "token_env": "ALPACA_KEY",
                        "secret_env": "ALPACA_SECRET",
                        "linger_s": 1,
                    }
                ],
            )
            server = ServerProcess(
                {
                    "TICKWIRE_UPSTREAMS": path,
                    "ALPACA_KEY": TOKEN,
                    "ALPACA_SECRET": SECRET,
                    "TICKWIRE_THROTTLE_MS": "0",
                }
            )
            await asyncio.to_thread(server.start)
            try:
                async with many_connections_http(4) as http:
                    providers = await SSEStream(http, server.url, "providers").open()
                    await providers.read_until(
                        lambda _: any(p.get("state") == "connected" for p in _states(providers))
                    )
                    reader = await SSEStream(http, server.url, "prices?symbols=AAPL").open()
                    await until(lambda: fake.all_held == {"AAPL"}, within=5)
                    sent_at = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
                    await fake.push("AAPL", 187.42, t=sent_at, s=7)
                    await reader.read_until(
                        lambda events: any(
                            e.event == "price:update" and b"187.42" in e.data.encode() for e in events
                        )
                    )
                    update = next(u for u in reader.of_type("price:update") if u.get("price") == 187.42)
                    assert (
                        update["source"] == "alpaca-iex"
                        and update["size"] == 7
                        and update["symbol"] == "AAPL"
                    )
                    assert abs(update["exchangeTs"] - time.time() * 1000) < 10_000
                    text = (await http.get(server.url + "/metrics")).text
                    assert metric(text, 'tickwire_upstream_state{name="alpaca-iex"}') == 2
                    assert metric(text, 'tickwire_upstream_messages_total{name="alpaca-iex"}') >= 3
                    assert metric(text, 'tickwire_upstream_bytes_total{name="alpaca-iex"}') > 100
                    assert metric(text, 'tickwire_upstream_reconnects_total{name="alpaca-iex"}') == 0
                    assert metric(text, 'tickwire_upstream_latency_seconds_count{name="alpaca-iex"}') == 1
                    assert (
                        metric(text, 'tickwire_upstream_latency_seconds_bucket{le="5.0",name="alpaca-iex"}')
                        == 1
                    )
                    status = [p for p in _states(providers) if p.get("state") == "connected"][-1]
                    assert status["name"] == "alpaca-iex" and status["kind"] == "alpaca"
                    await reader.close()
                    await until(lambda: fake.all_held == set(), within=10)  # linger_s 1, real time
                    await providers.close()
            finally:
                await asyncio.to_thread(server.stop)

    run(body)


def _states(stream: SSEStream) -> list[dict[str, Any]]:
    out = []
    for data in stream.of_type("provider:status"):
        out += data.get("providers", [data])
    return out


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server()).start()
    yield server
    server.close()


def test_the_tickwire_kind_resumes_after_the_core_restarts_with_no_lost_log_event(
    tmp_path: Path, redis: RedisServer
) -> None:
    core, other_core = redis_node(redis.url), redis_node(redis.url)
    core.start()
    other_core.start()
    path = write_upstreams(
        tmp_path,
        [
            {
                "name": "core",
                "kind": "tickwire",
                "url": f"ws://127.0.0.1:{core.port}/api/stream/ws",
                "rest_url": core.url,
                "backoff_max_s": 0.5,
                "backoff_initial_s": 0.2,
                "fallback_after": 1000,  # this test is about the stream's resume
                "options": {"streams": ["agents"], "codec": "msgpack"},
            }
        ],
    )
    edge = ServerProcess({"TICKWIRE_UPSTREAMS": path, "TICKWIRE_THROTTLE_MS": "0"}).start()

    def agent(n: int) -> dict[str, Any]:
        return {"type": "agent:status", "data": {"agentId": f"a{n}", "state": "running"}}

    async def body() -> None:
        async with many_connections_http(4) as http:
            agents = await SSEStream(http, edge.url, "agents").open()
            prices = await SSEStream(http, edge.url, "prices?symbols=AAPL").open()
            await until(lambda: _edge_connected(edge), within=10)
            core.publish(agent(0), agent(1), agent(2))
            await agents.read_until(lambda _: len(agents.of_type("agent:status")) == 3)
            for attempt in range(50):  # until the edge's demand for AAPL reached the core
                core.publish({"type": "price:update", "data": {"symbol": "AAPL", "price": 100 + attempt}})
                if await _more(prices) and any("price" in p for p in prices.of_type("price:update")):
                    break
            relayed = [p for p in prices.of_type("price:update") if "price" in p]
            assert relayed and relayed[-1]["source"] == "core" and relayed[-1]["symbol"] == "AAPL"

            core.kill()
            other_core.publish(agent(3), agent(4), agent(5))  # missed by the edge while the core is down
            await asyncio.to_thread(core.start)
            core.publish(agent(6))
            await agents.read_until(lambda _: len(agents.of_type("agent:status")) >= 7)
            await asyncio.sleep(0.5)  # nothing more comes (no duplicates)
            received = [a["agentId"] for a in agents.of_type("agent:status")]
            assert received == [f"a{n}" for n in range(7)]
            assert {a["source"] for a in agents.of_type("agent:status")} == {"core"}
            text = (await http.get(edge.url + "/metrics")).text
            assert metric(text, 'tickwire_upstream_reconnects_total{name="core"}') >= 1
            core.publish({"type": "price:update", "data": {"symbol": "AAPL", "price": 102.5}})
            await prices.read_until(
                lambda _: any(p.get("price") == 102.5 for p in prices.of_type("price:update"))
            )
            await agents.close()
            await prices.close()

    try:
        run(body)
    finally:
        edge.stop()
        core.stop()
        other_core.stop()


async def _more(stream: SSEStream) -> bool:
    """Read what arrives within a short while (False when nothing did)."""
    try:
        async with asyncio.timeout(0.2):
            return await stream._read_chunk()
    except TimeoutError:
        return False


def _edge_connected(edge: ServerProcess) -> bool:
    body = httpx.get(edge.url + "/api/stream/providers/events", timeout=2).content
    events = orjson.loads(body)["events"]
    providers = [p for e in events for p in e["data"].get("providers", [e["data"]])]
    return any(p.get("state") == "connected" for p in providers)
