"""The demo's alert rules and momentum scan (tickwire.demo.alerting): set up at start, once."""

from __future__ import annotations

from demo.helpers import demo_node_settings, run
from tickwire.core.clock import FakeClock
from tickwire.demo.alerting import MOMENTUM, demo_rules
from tickwire.demo.app import Demo
from tickwire.node import Node


def test_the_demo_users_get_rules_and_everyone_a_public_momentum_scan() -> None:
    async def scenario() -> None:
        settings = demo_node_settings()
        node = Node(settings, clock=FakeClock())
        await node.start()
        try:
            demo = Demo(node, settings, seed=3)
            await demo.start(node)
            await demo.start(node)  # a second start (a restarted node on Redis) adds nothing
            expected = demo_rules(demo.market)
            for user, rules in expected.items():
                stored = await node.alerting.rules.rules_of(user)
                assert [(r.kind, r.symbol) for r in stored] == [(r["kind"], r["symbol"]) for r in rules]
            scan = await node.alerting.scans.get(MOMENTUM)
            assert scan is not None and scan.visibility == "public"
            assert scan.symbols == list(demo.market.symbols) and scan.kind == "pct_move"
            assert (await node.alerting.scans.status(MOMENTUM) or {})["state"] == "running"
        finally:
            await node.stop()

    run(scenario())
