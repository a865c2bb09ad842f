"""The node with a fake clock: buffer TTL, derived positions, throttled marks, long-poll."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeVar

import orjson
import pytest

from support.nodes import connection
from support.nodes import run_node as run
from tickwire.brokers.base import Publication
from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection
from tickwire.core.streams import ANONYMOUS, Principal, Stream
from tickwire.domain.catalog import resolve_stream
from tickwire.node import Node
from tickwire.node.reader import ENCODER_MAX_DEPTH
from tickwire.pipeline import PublishRequest
from tickwire.wire.poll import poll_body
from tickwire.wire.sse import SSEParser

T = TypeVar("T")
SECRET = "s" * 32


def events(conn: Connection) -> list[tuple[str, Any]]:
    return [(e.event, e.json()) for e in SSEParser().feed(conn.outbox.drain())]


async def poll(node: Node, stream: Stream, after: str | None, limit: int, wait: float) -> dict[str, Any]:
    start = await node.reader.poll(stream, after, wait)
    reason = start.reset.reason if start.reset is not None else None
    body = poll_body(start.events[:limit], after, recovered=start.recovered, reason=reason)
    return orjson.loads(orjson.dumps(body))  # as the poll endpoint encodes it


def alert(user: str, i: int) -> PublishRequest:
    return PublishRequest("alert:new", {"message": f"m{i}"}, user)


def test_user_history_is_dropped_only_after_the_ttl_since_the_last_disconnect() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        stream = resolve_stream("alerts", {}, Principal("u"))
        first = await node.publish([alert("u", 1), alert("u", 2)])
        conn = connection(node, "u")
        node.sessions.register(conn)
        node.sessions.unregister(conn)  # the user's last connection went away
        clock.advance(299)
        await node.broker.maintain()
        kept = await poll(node, stream, first[0], 10, 0)
        assert kept["recovered"] is True
        assert [e["data"]["message"] for e in kept["events"]] == ["m2"]
        clock.advance(1)
        await node.broker.maintain()
        gone = await poll(node, stream, first[0], 10, 0)
        assert gone["recovered"] is False
        assert gone["reason"] == "history_trimmed"

    run(body, BUFFER_TTL_S="300")


def test_a_reconnect_before_the_ttl_keeps_the_history() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        stream = resolve_stream("alerts", {}, Principal("u"))
        ids = await node.publish([alert("u", 1), alert("u", 2)])
        conn = connection(node, "u")
        node.sessions.register(conn)
        node.sessions.unregister(conn)
        clock.advance(200)
        node.sessions.register(connection(node, "u"))  # back within the TTL
        clock.advance(200)
        await node.broker.maintain()
        assert (await poll(node, stream, ids[0], 10, 0))["recovered"] is True

    run(body, BUFFER_TTL_S="300")


def test_fills_derive_positions_and_prices_mark_them_through_the_throttle() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        conn = connection(node, "u")
        node.sessions.register(conn)
        await node.sessions.attach(conn, resolve_stream("positions", {}, Principal("u")), None)
        conn.outbox.drain()
        await node.publish(
            [
                PublishRequest(
                    "order:update", {"orderId": "o1", "symbol": "AAPL", "side": "buy", "qty": 10}, "u"
                ),
                PublishRequest(
                    "order:fill", {"orderId": "o1", "filledQty": 10, "filledAvgPrice": 100.0}, "u"
                ),
            ]
        )
        ((kind, opened),) = events(conn)
        assert kind == "position:update"
        assert (opened["quantity"], opened["entryPrice"], opened["change"]) == (10, 100.0, "opened")
        for price in (101.0, 102.0, 103.0):  # within one throttle window
            await node.publish([PublishRequest("price:update", {"symbol": "AAPL", "price": price})])
        marks = events(conn)
        assert [m["currentPrice"] for _, m in marks] == [101.0]  # the first goes at once
        clock.advance(0.1)
        await node.pipeline.publish_due()
        ((_, last),) = events(conn)
        assert last["currentPrice"] == 103.0  # the latest wins at the window's end
        assert last["unrealizedPnL"] == 30.0
        assert last["totalValue"] == 1030.0

    run(body, THROTTLE_MS="100")


def test_long_poll_returns_when_an_event_arrives() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        stream = resolve_stream("agents", {}, ANONYMOUS)
        (first,) = await node.publish([PublishRequest("agent:status", {"agentId": "a", "state": "running"})])

        async def later() -> None:
            await asyncio.sleep(0.05)
            await node.publish([PublishRequest("agent:status", {"agentId": "a", "state": "stopped"})])

        task = asyncio.create_task(later())
        body = await poll(node, stream, first, 10, 5.0)
        await task
        assert [e["data"]["state"] for e in body["events"]] == ["stopped"]
        assert body["lastEventId"] == body["events"][0]["id"]

    run(body)


def _deep(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        data = {"n": data}
    return data


def test_a_state_entry_that_cannot_be_encoded_is_left_out_of_snapshots_not_the_rest() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        await node.publish([PublishRequest("order:update", {"orderId": "ok", "symbol": "A"}, "u")])
        # An entry kept before payloads were bounded (straight into the broker): orjson
        # cannot encode 300 levels, so it would break every snapshot that holds it.
        await node.broker.publish(
            [
                Publication(
                    "order:update", {"orderId": "bad", "x": _deep(300)}, "user:u", state=("orders", "bad")
                )
            ],
            clock.wall_ms(),
        )
        conn = connection(node, "u")
        node.sessions.register(conn)
        await node.sessions.attach(conn, resolve_stream("orders", {}, Principal("u")), None)
        ((kind, snapshot),) = events(conn)
        assert kind == "order:update" and [o["orderId"] for o in snapshot["orders"]] == ["ok"]

    run(body)


def test_the_encoder_depth_the_reader_allows_for_is_orjsons() -> None:
    orjson.dumps(_deep(ENCODER_MAX_DEPTH))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(_deep(ENCODER_MAX_DEPTH + 1))


def _left_out_ids(caplog: pytest.LogCaptureFixture) -> set[Any]:
    return {getattr(r, "entry_id", None) or getattr(r, "event_id", None) for r in caplog.records}


def test_a_state_entry_too_deep_once_in_its_snapshot_is_left_out_not_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        await node.publish([PublishRequest("order:update", {"orderId": "ok", "symbol": "A"}, "u")])
        # Kept before payloads were bounded: 253 levels encode alone, not inside the
        # snapshot's payload (`{"orders":[...]}`) nor a poll body around that.
        entry = {"orderId": "deep", "x": _deep(252)}
        await node.broker.publish(
            [Publication("order:update", entry, "user:u", state=("orders", "deep"))], clock.wall_ms()
        )
        orders = resolve_stream("orders", {}, Principal("u"))
        conn = connection(node, "u")
        node.sessions.register(conn)
        await node.sessions.attach(conn, orders, None)
        ((kind, snapshot),) = events(conn)
        assert kind == "order:update" and [o["orderId"] for o in snapshot["orders"]] == ["ok"]
        polled = await poll(node, orders, None, 10, 0)
        assert [o["orderId"] for o in polled["events"][0]["data"]["orders"]] == ["ok"]

    with caplog.at_level(logging.ERROR, logger="tickwire.node"):
        run(body)
    assert "deep" in _left_out_ids(caplog)


def test_an_event_too_deep_once_in_a_poll_body_is_left_out_not_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        (first,) = await node.publish([alert("u", 1)])
        # Kept before payloads were bounded: 252 levels encode alone (an SSE or WebSocket
        # frame holds them as they are), not inside `{"events":[{"data":...}]}`.
        (deep,) = await node.broker.publish(
            [Publication("alert:new", {"message": "deep", "x": _deep(251)}, "user:u")], clock.wall_ms()
        )
        await node.publish([alert("u", 3)])
        stream = resolve_stream("alerts", {}, Principal("u"))
        fresh = await poll(node, stream, None, 10, 0)
        assert [e["data"]["message"] for e in fresh["events"]] == ["m1", "m3"]
        resumed = await poll(node, stream, first, 10, 0)
        assert resumed["recovered"] is True
        assert [e["data"]["message"] for e in resumed["events"]] == ["m3"]
        return deep.id

    with caplog.at_level(logging.ERROR, logger="tickwire.node"):
        deep_id = run(body)
    assert deep_id in _left_out_ids(caplog)


def test_a_failing_dispatch_costs_that_event_only_never_the_rest_of_its_batch() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        conn = connection(node, "u")
        node.sessions.register(conn)
        await node.sessions.attach(conn, resolve_stream("alerts", {}, Principal("u")), None)
        conn.outbox.drain()
        dispatch = node.hub.dispatch

        def failing(event: Any) -> int:  # the test hook: the second event's fan-out breaks
            if event.data.get("message") == "m2":
                raise RuntimeError("fan-out failed")
            return dispatch(event)

        node.hub.dispatch = failing  # type: ignore[method-assign]
        ids = await node.publish([alert("u", 1), alert("u", 2), alert("u", 3)])
        assert len(ids) == 3
        assert [d["message"] for _, d in events(conn)] == ["m1", "m3"]
        assert b"tickwire_delivery_failures_total 1.0" in node.metrics.render()

    run(body)
