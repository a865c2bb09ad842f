"""The browser SDK through failures, in Debian's chromium against real servers: a server
restart (Redis: resumed with nothing lost or doubled; memory: a reset and a fresh
snapshot), an event frame lost on the way (seen by `seq`, repaired), WebSocket and SSE
blocked (polling, then back), and a tab offline for two minutes (stale detection and
recovery, with Playwright's fake clock in the page)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, WebSocketRoute

from browser.kit import Steps, ThreadedProxy, wait_until
from browser.test_sdk import open_client, wait_connected
from support.e2e import order, price, sym, uid
from support.redis_server import RedisServer, redis_node
from support.servers import ServerProcess

FAST = {"backoff": {"initialMs": 200, "maxMs": 1000}, "pollIntervalMs": 100}


def same_port(proc: ServerProcess, port: int) -> ServerProcess:
    """`proc`, listening on `port` (a restarted server keeps its address)."""
    proc.port = port
    proc.env["TICKWIRE_PORT"] = str(port)
    return proc


def order_ids(page: Page) -> list[str]:
    return list(page.evaluate("orderEvents()"))


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_redis_restart_resumes_with_nothing_lost_or_doubled(
    page: Page, steps: Steps, redis: RedisServer, transport: str
) -> None:
    user, symbol = uid("rr"), sym()
    node_a = redis_node(redis.url).start()
    node_b = redis_node(redis.url).start()
    restarted: ServerProcess | None = None
    try:
        with steps("the page reads orders and prices from node A"):
            node_a.publish(order(user, "o1", symbol), price(symbol, 1.0))
            open_client(page, node_a.url, node_a.token(user), [symbol], transport=transport, **FAST)
            wait_connected(page, transport)
            node_a.publish(order(user, "o2", symbol))
            wait_until(page, "orderEvents().length === 1")
        with steps("node A stops; events published meanwhile through node B"):
            node_a.stop()
            wait_until(page, "tw.status.state === 'reconnecting'")
            node_b.publish(order(user, "o3", symbol), order(user, "o4", symbol), price(symbol, 2.0))
        with steps("node A comes back on the same port: the page resumes"):
            restarted = same_port(redis_node(redis.url), node_a.port).start()
            wait_connected(page, transport, timeout_s=30)
            wait_until(page, "orderEvents().length === 3")
            restarted.publish(order(user, "o5", symbol))
            wait_until(page, "orderEvents().length === 4")
            wait_until(page, "(s) => tw.local.prices.get(s)?.price === 2", arg=symbol)
        with steps("each order event exactly once, in order, no reset"):
            seen = order_ids(page)
            assert [e.split(":")[0] for e in seen] == ["o2", "o3", "o4", "o5"], seen
            assert len({e.rsplit(":", 1)[1] for e in seen}) == 4, seen
            assert page.evaluate("events.filter((e) => e.reset).length") == 0
            assert sorted(page.evaluate("[...tw.local.orders.keys()]")) == ["o1", "o2", "o3", "o4", "o5"]
            assert page.evaluate("tw.status.streams.orders.gaps") == 0
    finally:
        node_b.stop()
        if restarted is not None:
            restarted.stop()
        node_a.stop()


def test_memory_restart_gives_a_reset_and_a_fresh_snapshot(page: Page, steps: Steps) -> None:
    user, symbol = uid("mr"), sym()
    env = {"TICKWIRE_KEEPALIVE_S": "1", "TICKWIRE_THROTTLE_MS": "0"}
    first = ServerProcess(env).start()
    second: ServerProcess | None = None
    try:
        with steps("the page has an order from the first process"):
            first.publish(order(user, "o1", symbol))
            open_client(page, first.url, first.token(user), [symbol], transport="ws", **FAST)
            wait_until(page, "tw.local.orders.has('o1')")
        with steps("a new process: history is gone"):
            first.stop()
            second = same_port(ServerProcess(env), first.port).start()
            wait_until(page, "events.some((e) => e.stream === 'orders' && e.reset)", timeout_s=30)
            reset = page.evaluate("events.find((e) => e.stream === 'orders' && e.reset)")
            assert reset["type"] == "stream:reset"
            assert reset["data"]["recovered"] is False
        with steps("the fresh snapshot replaced the local state; live events flow"):
            wait_until(page, "tw.local.orders.size === 0")
            second.publish(order(user, "o9", symbol))
            wait_until(page, "tw.local.orders.has('o9') && !tw.local.orders.has('o1')")
            assert page.evaluate("tw.status.streams.orders.gaps") == 1
    finally:
        if second is not None:
            second.stop()
        first.stop()


def test_a_lost_event_frame_is_seen_by_seq_and_repaired_in_order(page: Page, steps: Steps) -> None:
    server = ServerProcess({"TICKWIRE_KEEPALIVE_S": "1", "TICKWIRE_THROTTLE_MS": "0"}).start()
    user, symbol = uid("seq"), sym()
    to_server: list[str] = []
    dropped: list[str] = []

    def websocket(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            to_server.append(str(message))
            upstream.send(message)

        def from_server(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode()
            if not dropped and '"event":"order:update"' in text and '"orderId":"o3"' in text:
                dropped.append(text)  # lost on the way, once
                return
            ws.send(message)

        ws.on_message(from_page)
        upstream.on_message(from_server)

    try:
        with steps("the page reads orders over a WebSocket that loses one frame"):
            page.route_web_socket(re.compile(r".*/api/stream/ws.*"), websocket)
            server.publish(order(user, "o1", symbol))
            open_client(page, server.url, server.token(user), [symbol], transport="ws", **FAST)
            wait_connected(page, "ws")
            wait_until(page, "tw.local.orders.has('o1')")
        with steps("o2, o3, o4 published; the frame of o3 never arrives"):
            server.publish(order(user, "o2", symbol), order(user, "o3", symbol), order(user, "o4", symbol))
            wait_until(page, "orderEvents().length === 3")
            assert dropped, "the test dropped no frame"
        with steps("o4's seq showed the hole: orders resubscribed from o2's id, o3 and o4 replayed in order"):
            seen = order_ids(page)
            assert [e.split(":")[0] for e in seen] == ["o2", "o3", "o4"], seen
            o2_id = seen[0].rsplit(":", 1)[1]
            resubscribed = [m for m in to_server if '"subscribe"' in m and o2_id in m]
            assert resubscribed, to_server
            stats = page.evaluate("tw.status.streams.orders")
            assert (stats["gaps"], stats["repaired"], stats["missed"], stats["dupes"]) == (1, 1, 0, 0), stats
            assert page.evaluate("events.filter((e) => e.reset).length") == 0
    finally:
        server.stop()


def test_blocked_streaming_falls_back_to_polling_and_returns(page: Page, steps: Steps) -> None:
    server = ServerProcess({"TICKWIRE_KEEPALIVE_S": "1", "TICKWIRE_THROTTLE_MS": "0"}).start()
    blocked = {"on": True}
    user, symbol = uid("fb"), sym()

    def websocket(ws: WebSocketRoute) -> None:
        if blocked["on"]:
            ws.close(code=1011, reason="blocked by the test")
        else:
            ws.connect_to_server()

    try:
        with steps("block WebSocket and SSE requests"):
            page.route_web_socket(re.compile(r".*/api/stream/ws.*"), websocket)
            page.route(
                re.compile(r".*/api/stream/(me|prices|orders)(\?.*)?$"),
                lambda route: route.abort() if blocked["on"] else route.continue_(),
            )
        with steps("the page falls back to polling after 5 failed attempts"):
            server.publish(order(user, "o0", symbol))  # the log has a position to poll from
            open_client(
                page, server.url, server.token(user), [symbol], transport="auto", probeIntervalMs=2000, **FAST
            )
            wait_until(page, "tw.status.state === 'fallback' && tw.status.transport === 'poll'", timeout_s=30)
            status = page.evaluate("tw.status")
            assert status["color"] == "yellow"
            assert "5 failed streaming attempts" in status["fallbackReason"]
        with steps("events arrive by polling"):
            server.publish(order(user, "o1", symbol), price(symbol, 3.0))
            wait_until(page, "tw.local.orders.has('o1')")
            wait_until(page, "(s) => tw.local.prices.get(s)?.price === 3", arg=symbol)
        with steps("unblocked: the probe brings the WebSocket back"):
            blocked["on"] = False
            wait_until(page, "tw.status.state === 'connected' && tw.status.transport === 'ws'", timeout_s=20)
            assert page.evaluate("tw.status.fallbackReason") is None
            server.publish(order(user, "o2", symbol))
            wait_until(page, "tw.local.orders.has('o2')")
            seen = order_ids(page)
            assert [e.split(":")[0] for e in seen] == ["o1", "o2"], seen
    finally:
        server.stop()


def test_two_minutes_offline_is_detected_as_stale_and_recovered(page: Page, steps: Steps) -> None:
    """The network dies silently (the proxy holds every byte, the browser is offline): only the
    90 s watchdog can tell. Playwright's fake clock in the page jumps two minutes."""
    server = ServerProcess({"TICKWIRE_KEEPALIVE_S": "1", "TICKWIRE_THROTTLE_MS": "0"}).start()
    proxy = ThreadedProxy(server.port)
    user, symbol = uid("off"), sym()
    try:
        with steps("connected through the proxy, with a fake clock in the page"):
            page.clock.install()
            open_client(page, proxy.url, server.token(user), [symbol], transport="ws")
            wait_connected(page, "ws")
            server.publish(order(user, "o1", symbol))
            wait_until(page, "orderEvents().length === 1")
        with steps("offline for two minutes: no byte arrives"):
            page.context.set_offline(True)
            proxy.do(lambda p: p.stall())
            server.publish(order(user, "o2", symbol))
            page.clock.fast_forward("02:00")
            wait_until(page, "tw.status.state === 'reconnecting' && /stale/.test(tw.status.lastError)")
            assert page.evaluate("tw.status.color") == "yellow"
            assert page.evaluate("tw.status.online") is False
        with steps("online again: reconnects at once and resumes"):
            proxy.do(lambda p: p.unstall())
            page.context.set_offline(False)
            wait_connected(page, "ws")
            wait_until(page, "orderEvents().length === 2")
            server.publish(order(user, "o3", symbol))
            wait_until(page, "orderEvents().length === 3")
            seen = order_ids(page)
            assert [e.split(":")[0] for e in seen] == ["o1", "o2", "o3"], seen
    finally:
        proxy.close()
        server.stop()
