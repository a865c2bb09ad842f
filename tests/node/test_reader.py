"""What a reader gets before live events: every id it receives is a point it can resume from
without a loss or a repeat (node/reader.py). Found by the model of delivery
(tests/node/test_delivery_model.py); each test failed before its fix."""

from __future__ import annotations

from support.nodes import connection, run_node
from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection
from tickwire.core.streams import ANONYMOUS, Principal, Stream
from tickwire.domain.catalog import resolve_stream
from tickwire.node import Node
from tickwire.pipeline import PublishRequest
from tickwire.wire.sse import SSEEvent, SSEParser

THROTTLE_S = 0.1


def reader(node: Node, user: str | None) -> Connection:
    conn = connection(node, user)
    node.sessions.register(conn)
    return conn


def read(conn: Connection) -> list[SSEEvent]:
    return list(SSEParser().feed(conn.outbox.drain()))


async def resume(node: Node, stream: Stream, last_event_id: str | None) -> list[SSEEvent]:
    conn = reader(node, stream.log.removeprefix("user:") if stream.log.startswith("user:") else None)
    await node.sessions.attach(conn, stream, last_event_id)
    return read(conn)


def position(symbol: str, quantity: float = 10) -> PublishRequest:
    data = {"symbol": symbol, "quantity": quantity, "entryPrice": 100.0, "currentPrice": 100.0}
    return PublishRequest("position:update", data, "u")


def price(symbol: str, value: float) -> PublishRequest:
    return PublishRequest("price:update", {"symbol": symbol, "price": value})


def test_a_replay_goes_out_in_position_order_so_its_last_id_resumes_exactly() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        stream = resolve_stream("positions", {}, Principal("u"))
        (first,) = await node.publish([position("AAA")])
        await node.publish([price("AAA", 101.0)])  # marks AAA: a tick on u's log
        (second,) = await node.publish([position("BBB")])
        replay = await resume(node, stream, first)
        assert [(e.json()["symbol"], e.id == second) for e in replay] == [("AAA", False), ("BBB", True)]
        again = await resume(node, stream, replay[-1].id)  # the browser's Last-Event-ID
        assert [e.id for e in again] == [], "nothing happened since; BBB's position:update came twice"
        after_mark = await resume(node, stream, replay[0].id)  # cut off after the mark
        assert [e.id for e in after_mark] == [second]

    run_node(body)


def test_only_the_last_part_of_a_snapshot_carries_the_id() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        stream = resolve_stream("trading", {}, Principal("u"))
        await node.publish([position("AAA")])
        orders_part, positions_part = await resume(node, stream, None)
        assert orders_part.json()["orders"] == [] and positions_part.json()["positions"]
        # a client cut off after the first part has no id: it starts afresh and gets both
        assert orders_part.id is None and positions_part.id is not None
        assert await resume(node, stream, positions_part.id) == []

    run_node(body)


def test_a_resume_from_the_last_price_id_gets_a_price_the_throttle_sent_after_it() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        stream = resolve_stream("prices", {}, ANONYMOUS)
        conn = reader(node, None)
        await node.sessions.attach(conn, stream, None)
        await node.publish([price("BBB", 90.0)])  # goes at once
        await node.publish([price("BBB", 91.0)])  # held by the throttle until its window ends
        await node.publish([price("AAA", 95.0)])  # goes at once
        received = read(conn)
        assert [(e.json().get("symbol"), e.json().get("price")) for e in received[1:]] == [
            ("BBB", 90.0),
            ("AAA", 95.0),
        ]
        clock.advance(THROTTLE_S)
        await node.housekeeping.step()  # BBB at 91 is queued now, after AAA
        node.sessions.unregister(conn)  # the connection drops before the client reads it
        after = await resume(node, stream, received[-1].id)  # Last-Event-ID: AAA's
        prices = {e.json()["symbol"]: e.json()["price"] for e in after}
        assert prices.get("BBB") == 91.0, f"BBB stays at 90 for this client; the resume sent {prices}"

    run_node(body, THROTTLE_MS=str(int(THROTTLE_S * 1000)))


def test_a_resume_of_prices_long_after_leaves_out_values_older_than_the_window() -> None:
    async def body(node: Node, clock: FakeClock) -> None:
        stream = resolve_stream("prices", {}, ANONYMOUS)
        await node.publish([price("OLD", 1.0)])
        clock.advance(5)
        (last,) = await node.publish([price("NEW", 2.0)])
        await node.publish([price("NEW", 3.0)])
        assert [e.json()["symbol"] for e in await resume(node, stream, last)] == ["NEW"]

    run_node(body, THROTTLE_MS=str(int(THROTTLE_S * 1000)))
