"""Shutdown on the node (node/sessions.py `close_all` / `wait_closed`, server/poll.py, Node.stop):
every connection is closed at once with `shutdown`, late ones too, the wait for the
transports is bounded, and long-polls answer at once instead of holding the request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from support.nodes import connection
from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.core.streams import ANONYMOUS, Principal
from tickwire.domain.catalog import resolve_stream
from tickwire.node import Node
from tickwire.pipeline import PublishRequest
from tickwire.server.poll import EXPIRY_MARGIN_S, long_poll, wait_within

SECRET = "s" * 32


def run(body: Callable[[Node], Awaitable[None]]) -> None:
    async def main() -> None:
        node = Node(load_settings(env={"TICKWIRE_SECRET": SECRET}), clock=FakeClock())
        await node.start()
        try:
            await body(node)
        finally:
            await node.stop()

    asyncio.run(main())


def test_close_all_closes_every_connection_and_the_late_ones() -> None:
    async def body(node: Node) -> None:
        sessions = node.sessions
        conns = [connection(node, "u"), connection(node, None)]
        for conn in conns:
            sessions.register(conn)
        conns[0].send_control("test", {"n": 1})
        assert sessions.close_all() == 2
        assert [c.close_reason for c in conns] == ["shutdown", "shutdown"]
        assert conns[0].outbox  # what was queued is still flushed by the transport
        late = connection(node, "u")
        sessions.register(late)  # admitted while the node began to stop
        assert late.close_reason == "shutdown"
        assert await sessions.wait_closed(0) == 3  # nobody ended them: bounded wait
        waiting = asyncio.create_task(sessions.wait_closed(30))
        for conn in [*conns, late]:
            sessions.unregister(conn)  # the transports ended them
        assert await waiting == 0

    run(body)


def test_wait_closed_returns_at_once_without_connections() -> None:
    async def body(node: Node) -> None:
        assert node.sessions.close_all() == 0
        assert await node.sessions.wait_closed(30) == 0

    run(body)


def test_a_long_poll_answers_at_once_when_the_node_starts_to_stop() -> None:
    async def body(node: Node) -> None:
        stream = resolve_stream("agents", {}, ANONYMOUS)
        (first,) = await node.publish([PublishRequest("agent:status", {"agentId": "a", "state": "up"})])
        waiting = asyncio.create_task(long_poll(node, stream, first, 30))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting.done()
        node.sessions.close_all()
        start = await asyncio.wait_for(waiting, 5)  # a bound against hanging, not a timing
        assert start.events == [] and start.recovered
        after = await long_poll(node, stream, first, 30)  # and later ones do not wait at all
        assert after.events == []

    run(body)


def test_a_long_poll_wait_is_cut_at_the_tokens_expiry() -> None:
    now_ms = 1_767_350_400_000
    now_s = now_ms / 1000
    assert wait_within(30, ANONYMOUS, now_ms) == 30
    assert wait_within(30, Principal("u"), now_ms) == 30  # an authenticator without expiry
    assert wait_within(30, Principal("u", expires_at=now_s + 2.5), now_ms) == 2.5 + EXPIRY_MARGIN_S
    assert wait_within(1, Principal("u", expires_at=now_s + 2.5), now_ms) == 1
    assert wait_within(30, Principal("u", expires_at=now_s - 1), now_ms) == 0


def test_stop_ends_a_background_task_that_lost_its_first_cancel() -> None:
    """A loop around a Redis call can lose one cancel (tickwire/tasks.py); the node's stop must
    end it anyway, instead of waiting for it forever."""

    async def body(node: Node) -> None:
        async def loses_the_first_cancel() -> None:
            swallowed = False
            while True:
                try:
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    if swallowed:
                        raise
                    swallowed = True

        task = node.spawn(loses_the_first_cancel(), "loop")
        stopping = asyncio.create_task(node.stop())
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert done, "Node.stop() waited for the task forever"
        assert task.cancelled()

    async def main() -> None:
        node = Node(load_settings(env={"TICKWIRE_SECRET": SECRET}), clock=FakeClock())
        await node.start()
        await body(node)

    asyncio.run(main())
