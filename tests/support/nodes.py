"""A node in-process on a fake clock, and connections whose outbox a test drains itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection
from tickwire.node import Node
from tickwire.pipeline import Processor
from tickwire.wire.sse import SSECodec

T = TypeVar("T")
SECRET = "s" * 32


def run_node(
    body: Callable[[Node, FakeClock], Awaitable[T]], processors: Sequence[Processor] = (), **env: str
) -> T:
    """Run `body` on a started node (memory broker) with extra `processors`; `env`: TICKWIRE_
    settings without the prefix."""

    async def main() -> T:
        clock = FakeClock()
        settings = load_settings(
            env={"TICKWIRE_SECRET": SECRET, **{f"TICKWIRE_{k}": v for k, v in env.items()}}
        )
        node = Node(settings, clock=clock, processors=processors)
        await node.start()
        try:
            return await body(node, clock)
        finally:
            await node.stop()

    return asyncio.run(main())


def connection(node: Node, user: str | None, outbox_limit: int = 1 << 20) -> Connection:
    """An SSE connection of `user` that nothing writes out: the test drains its outbox."""
    return Connection(
        client_id=f"{user}-c",
        user=user,
        transport="sse",
        codec=SSECodec(),
        clock=node.clock,
        outbox_limit=outbox_limit,
        notify=lambda: None,
    )
