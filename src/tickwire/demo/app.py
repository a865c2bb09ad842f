"""The demo application: the tickwire app plus a simulated market, paper trading and bots.

`create_demo_app()` builds the node itself so the paper broker (used by the order
routes) and the loops (started by the startup hook) publish through the same node
the streams read from. The hook publishes a first set of prices, the strategies'
`started` events and the agents' status before any loop runs, so the first page
load already has something in every snapshot.
"""

from __future__ import annotations

import logging
import random

from starlette.applications import Starlette

from tickwire.config import Settings
from tickwire.demo.alerting import seed_alerting
from tickwire.demo.bots import AgentBoard, AlertMonitor, RuleAgent, StrategyBot
from tickwire.demo.feed import AgentStats, Publisher, every
from tickwire.demo.market import MarketSimulator
from tickwire.demo.paper import PaperBroker
from tickwire.demo.routes import demo_routes
from tickwire.demo.users import DEMO_USERS
from tickwire.domain.catalog import PRICES_LOG
from tickwire.node import Node
from tickwire.pipeline import PublishRequest
from tickwire.server.app import create_app

__all__ = ["DEMO_CONNECT_RATE", "Demo", "create_demo_app", "demo_settings"]

log = logging.getLogger("tickwire.demo")

DEMO_CONNECT_RATE = 120
"""Connection attempts per minute per IP in demo mode, unless configured: the demo page
opens one stream per panel (seven at once), which the default of 5 would refuse."""

SAMPLE_S = 1.0
DECIDE_S = 5.0
STATUS_S = 5.0


class Demo:
    """Every demo component, wired to one publisher, and the loops that drive them."""

    def __init__(self, publisher: Publisher, settings: Settings, *, seed: int | None = None) -> None:
        rng = random.Random(seed)
        self._publisher = publisher
        self.market = MarketSimulator(
            settings.demo_symbols, settings.demo_rate, rng=random.Random(rng.random())
        )
        self.broker = PaperBroker(publisher, self.market, rng=random.Random(rng.random()))
        self.strategies = [StrategyBot(user, self.market) for user in DEMO_USERS.values()]
        self.strategy_stats = AgentStats("strategy-runner", "Strategy runner")
        self.agent = RuleAgent(self.market, rng=random.Random(rng.random()))
        self.alerts = AlertMonitor(self.market, publisher.clock, rng=random.Random(rng.random()))
        self.board = AgentBoard(
            [self.market.stats, self.broker.stats, self.strategy_stats, self.agent.stats, self.alerts.stats]
        )

    async def start(self, node: Node) -> None:
        """The startup hook: publish the opening state, then start the loops on the node."""
        clock = self._publisher.clock
        follow = follows_upstream(node)
        if follow:  # prices come from an upstream (a core tickwire): the market follows them
            node.sink.observers.append(self.market.follow)
            for symbol in self.market.symbols:  # the simulator reads them: always subscribed
                node.upstreams.on_key_demand(PRICES_LOG, symbol, True)
        else:
            await self.market.tick(self._publisher)
        await self._publisher.publish([bot.started() for bot in self.strategies])
        await self.report()
        await seed_alerting(node.alerting, self.market)  # alert rules for the users, a public scan
        if not follow:
            node.spawn(self.market.run(self._publisher), "demo-market")
        node.spawn(self.broker.run(), "demo-paper-broker")
        node.spawn(every(SAMPLE_S, clock, lambda _due: self.sample(), "demo-bots"), "demo-bots")
        node.spawn(every(DECIDE_S, clock, lambda _due: self.decide(), "demo-ai-agent"), "demo-ai-agent")
        node.spawn(
            every(STATUS_S, clock, lambda _due: self.report(), "demo-agent-status"), "demo-agent-status"
        )
        log.info("demo started", extra={"symbols": list(self.market.symbols), "users": list(DEMO_USERS)})

    async def sample(self) -> None:
        """Once a second: strategies and the agent sample prices, alerts are checked."""
        requests = [signal for bot in self.strategies for signal in bot.observe()]
        self.strategy_stats.record(
            len(self.market.symbols) * len(self.strategies), self._publisher.clock.wall_ms()
        )
        self.agent.observe()
        for alert in self.alerts.check():
            requests.extend(PublishRequest("alert:new", alert, user) for user in DEMO_USERS)
        if requests:
            await self._publisher.publish(requests)

    async def decide(self) -> None:
        """Every few seconds: the agent's decision, sent to every demo user."""
        decision = self.agent.decide(self._publisher.clock.wall_ms())
        if decision is not None:
            await self._publisher.publish(
                [PublishRequest("ai:decision", decision, user) for user in DEMO_USERS]
            )

    async def report(self) -> None:
        await self._publisher.publish(self.board.statuses(self._publisher.clock.wall_ms()))


def follows_upstream(node: Node) -> bool:
    """Whether an upstream feeds this node's prices (README "Market data in": the demo as an
    edge of another tickwire): then the simulator publishes nothing and follows them."""
    return any(c.adapter.feeds == PRICES_LOG for c in node.upstreams.connections.values())


def demo_settings(settings: Settings) -> Settings:
    """`settings` with a connection rate the demo page can live with, unless one was configured."""
    if "connect_rate" in settings.model_fields_set or settings.connect_rate == 0:
        return settings
    return settings.model_copy(update={"connect_rate": max(settings.connect_rate, DEMO_CONNECT_RATE)})


def create_demo_app(settings: Settings) -> Starlette:
    """The tickwire app with the demo's market, paper broker, bots, login and page."""
    settings = demo_settings(settings)
    node = Node(settings)
    demo = Demo(node, settings)
    app = create_app(
        settings, node=node, extra_routes=demo_routes(settings, demo.broker), on_startup=[demo.start]
    )
    app.state.demo = demo
    return app
