"""An in-process node with upstreams, its time moved by hand, and readers that subscribe
through the hub as SSE connections do (their outbox parsed as SSE); `serving` puts the
node's HTTP endpoints on a real socket (for polls); `core_node` is a tickwire node to
connect a `tickwire` upstream to."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from support.manual_time import ManualTime
from support.upstream_fakes import FakeProvider
from support.waiting import until
from tickwire.cli import uvicorn_config
from tickwire.config import load_settings
from tickwire.core.connection import Connection
from tickwire.core.streams import ANONYMOUS
from tickwire.domain.catalog import resolve_stream
from tickwire.node import Node
from tickwire.server.app import create_app
from tickwire.upstream.connection import UpstreamConnection
from tickwire.wire.sse import SSECodec, SSEEvent, SSEParser

SECRET = "upstream-test-secret-0123456789abcdef0123"
_names = itertools.count(1)


def upstream(fake: FakeProvider, kind: str, name: str = "feed", **settings: Any) -> dict[str, Any]:
    """An `upstreams:` entry for `fake` (the token comes from UPSTREAM_TOKEN)."""
    entry: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "url": fake.url,
        "rest_url": fake.rest_url,
        "token_env": "UPSTREAM_TOKEN",
        "linger_s": 30,
        "batch_window_s": 0,
        "connect_timeout_s": 2,
    }
    if kind == "alpaca":
        entry["secret_env"] = "UPSTREAM_SECRET"
    entry.update(settings)
    return entry


class Readers:
    """Clients of the node, subscribed through its sessions (as the endpoints do)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.parsers: dict[int, SSEParser] = {}
        self.seen: dict[int, list[SSEEvent]] = {}

    async def open(self, symbols: str, stream: str = "prices") -> Connection:
        conn = Connection(
            client_id=f"reader-{next(_names)}",
            user=None,
            transport="sse",
            codec=SSECodec(),
            clock=self.node.clock,
            outbox_limit=1 << 22,
            notify=lambda: None,
        )
        self.node.sessions.register(conn)
        params = {"symbols": symbols} if symbols else {}
        await self.node.sessions.attach(conn, resolve_stream(stream, params, ANONYMOUS), None)
        self.parsers[conn.serial] = SSEParser()
        self.seen[conn.serial] = []
        return conn

    def close(self, conn: Connection) -> None:
        self.node.sessions.unregister(conn)

    def events(self, conn: Connection, type_: str | None = None) -> list[SSEEvent]:
        """Every event the connection got so far (of `type_`)."""
        self.seen[conn.serial] += self.parsers[conn.serial].feed(conn.outbox.drain())
        return [e for e in self.seen[conn.serial] if type_ is None or e.event == type_]

    def live(self, conn: Connection, type_: str = "price:update") -> list[dict[str, Any]]:
        """The payloads of live events (not snapshots) of `type_`."""
        out = []
        for event in self.events(conn, type_):
            data = event.json()
            if not (data.get("initializing") or data.get("snapshot")):
                out.append(data)
        return out


@asynccontextmanager
async def running_node(
    upstreams: list[dict[str, Any]], time: ManualTime, **settings: Any
) -> AsyncIterator[tuple[Node, Readers]]:
    config = load_settings(
        env={},
        overrides={"secret": SECRET, "upstreams": upstreams, "throttle_ms": 0, "connect_rate": 0, **settings},
    )
    node = Node(config, clock=time.clock, sleep=time.sleep)
    await node.start()
    try:
        yield node, Readers(node)
    finally:
        await node.stop()


@asynccontextmanager
async def serving(node: Node) -> AsyncIterator[str]:
    """`node`'s HTTP endpoints on a free port, in-process (uvicorn, as `tickwire serve`
    runs them); yields the base URL. The node is started and stopped by its owner."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(node=node)
    config = uvicorn_config(app, node.settings)
    config.lifespan = "off"
    server = uvicorn.Server(config)
    served = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or served.done())
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await app.state.close_connections()  # as `tickwire serve` shuts down (long-polls answer)
        server.should_exit = True
        await served
        sock.close()


@asynccontextmanager
async def core_node() -> AsyncIterator[tuple[Node, str]]:
    """Another tickwire node, in real time, its endpoints on a real socket: the core a
    `tickwire` upstream connects to; yields it and its base URL."""
    config = load_settings(env={}, overrides={"secret": SECRET, "throttle_ms": 0, "connect_rate": 0})
    node = Node(config)
    await node.start()
    try:
        async with serving(node) as url:
            yield node, url
    finally:
        await node.stop()


def connection(node: Node, name: str = "feed") -> UpstreamConnection:
    return node.upstreams.connections[name]
