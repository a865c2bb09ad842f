"""The processor extension point, through a node: a processor passed to `Node(processors=...)`
derives events stamped in the same batch, right after their cause, or refuses a batch whole."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from support.nodes import connection, run_node
from tickwire.brokers.base import Publication
from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection
from tickwire.core.streams import Principal
from tickwire.domain.catalog import resolve_stream
from tickwire.errors import PublishError
from tickwire.node import Node
from tickwire.pipeline import PublishRequest
from tickwire.pipeline.processor import BaseProcessor, Draft, StateView
from tickwire.wire.sse import SSEEvent, SSEParser

CONFIDENT = 0.9
ACTIONS = ("buy", "sell", "hold")


class ConfidentDecisionAlerts(BaseProcessor):
    """Tells the user of every AI decision at or above CONFIDENT with an alert."""

    name = "confident-decisions"

    def derive(self, draft: Draft, state: StateView) -> Sequence[Publication]:
        if draft.type != "ai:decision" or draft.data.get("confidence", 0) < CONFIDENT:
            return ()
        message = f"{draft.data['agentId']}: {draft.data['action']} {draft.data['symbol']}"
        alert = {"message": message, "symbol": draft.data["symbol"], "level": "info", "timestamp": draft.ts}
        return [Publication("alert:new", alert, draft.log)]


class KnownActionsOnly(BaseProcessor):
    """Refuses an AI decision whose action is not one the app can act on."""

    name = "known-actions"

    def derive(self, draft: Draft, state: StateView) -> Sequence[Publication]:
        action = draft.data.get("action")
        if draft.type == "ai:decision" and action not in ACTIONS:
            raise ValueError(f"ai:decision action {action!r} is not one of {', '.join(ACTIONS)}")
        return ()


def decision(user: str, symbol: str, confidence: float, action: str = "buy") -> PublishRequest:
    data = {"agentId": "a1", "symbol": symbol, "action": action, "confidence": confidence}
    return PublishRequest("ai:decision", data, user)


async def reader_of(node: Node, user: str, *streams: str) -> Connection:
    """A connection of `user` live on `streams`, its snapshots drained."""
    conn = connection(node, user)
    node.sessions.register(conn)
    for name in streams:
        await node.sessions.attach(conn, resolve_stream(name, {}, Principal(user)), None)
    conn.outbox.drain()
    return conn


def received(conn: Connection) -> list[SSEEvent]:
    return list(SSEParser().feed(conn.outbox.drain()))


async def after(node: Node, user: str, stream: str, event_id: str | None) -> list[str | None]:
    """The ids the log holds on `stream` after `event_id`: what was stamped, in order."""
    start = await node.reader.start(resolve_stream(stream, {}, Principal(user)), event_id)
    assert start.recovered
    return [e.id for e in start.events]


def test_a_derived_event_is_stamped_in_the_same_batch_right_after_its_cause() -> None:
    async def body(node: Node, _: FakeClock) -> None:
        conn = await reader_of(node, "u", "ai-decisions", "alerts")
        ids = await node.publish([decision("u", "AAPL", 0.95), decision("u", "MSFT", 0.5)])

        got = received(conn)
        assert [(e.event, e.json()["symbol"]) for e in got] == [
            ("ai:decision", "AAPL"),
            ("alert:new", "AAPL"),
            ("ai:decision", "MSFT"),
        ]
        cause, derived, next_item = (e.id for e in got)
        assert [cause, next_item] == ids  # the publisher gets the ids of its own events only
        assert got[1].json()["message"] == "a1: buy AAPL"
        # Stamped between its cause and the batch's next item, on the same log.
        assert await after(node, "u", "alerts", cause) == [derived]
        assert await after(node, "u", "ai-decisions", derived) == [next_item]

    run_node(body, [ConfidentDecisionAlerts()])


def test_a_refused_event_fails_the_publish_with_its_message_and_nothing_is_stamped() -> None:
    async def body(node: Node, _: FakeClock) -> None:
        (before,) = await node.publish([decision("u", "AAPL", 0.5)])
        conn = await reader_of(node, "u", "ai-decisions", "alerts")

        with pytest.raises(PublishError) as refused:
            await node.publish([decision("u", "MSFT", 0.95), decision("u", "TSLA", 0.95, action="panic")])

        assert str(refused.value) == "item 1: ai:decision action 'panic' is not one of buy, sell, hold"
        assert refused.value.index == 1
        # Neither the valid item nor what it derived was stamped or delivered.
        assert received(conn) == []
        assert await after(node, "u", "ai-decisions", before) == []
        assert await after(node, "u", "alerts", before) == []

    run_node(body, [ConfidentDecisionAlerts(), KnownActionsOnly()])
