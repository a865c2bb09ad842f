"""Demo wiring (tickwire.demo.app): starting the demo on a node, and the demo settings."""

from __future__ import annotations

from typing import Any

from demo.helpers import demo_node_settings, run
from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.core.event import user_log
from tickwire.demo.app import DEMO_CONNECT_RATE, Demo, demo_settings
from tickwire.demo.users import DEMO_USERS
from tickwire.node import Node


def test_demo_start_publishes_the_opening_state_and_registers_strategies() -> None:
    async def scenario() -> dict[str, Any]:
        settings = demo_node_settings()
        node = Node(settings, clock=FakeClock())
        await node.start()
        try:
            demo = Demo(node, settings, seed=11)
            await demo.start(node)
            owners = {u: await node.broker.strategy_owner(f"momentum-{u}") for u in DEMO_USERS}
            prices = await node.broker.snapshot("prices", ["prices"])
            agents = await node.broker.history("agent", None)
            for _ in range(25):
                demo.market.step()
                await demo.sample()
            await demo.decide()
            decisions = await node.broker.history(user_log("bob"), None)
            return {
                "owners": owners,
                "prices": len(prices.states["prices"]),
                "agents": sorted(e.data["agentId"] for e in agents.events),
                "decisions": [e for e in decisions.events if e.type == "ai:decision"],
            }
        finally:
            await node.stop()

    result = run(scenario())
    assert result["owners"] == {u: u for u in DEMO_USERS}
    assert result["prices"] == 6
    assert result["agents"] == [
        "ai-agent",
        "alert-monitor",
        "market-simulator",
        "paper-broker",
        "strategy-runner",
    ]
    assert len(result["decisions"]) == 1
    assert result["decisions"][0].data["model"] == "rules-v1"


def test_demo_settings_allow_the_page_to_open_its_streams() -> None:
    assert demo_settings(demo_node_settings()).connect_rate == DEMO_CONNECT_RATE
    configured = load_settings(env={"TICKWIRE_DEMO": "1", "TICKWIRE_CONNECT_RATE": "5"})
    assert demo_settings(configured).connect_rate == 5
    off = load_settings(env={"TICKWIRE_DEMO": "1"}, overrides={"connect_rate": 0})
    assert demo_settings(off).connect_rate == 0
