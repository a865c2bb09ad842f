"""`UpstreamManager`: the node's upstream connections, built from `settings.upstreams`.

It turns the hub's demand hook (a (log, key) gained its first reader / lost its last, a
poll naming it began / ended) into reference counts on the connections that feed that log
(`prices` for price providers, `chain` for helius), starts the connections with the node
and stops them with it. A `leader_only` upstream on a shared broker is started only while
this node holds its lease (leader.py); on the memory broker the node is always the leader.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from tickwire.brokers.base import Broker
from tickwire.upstream.adapters import make_adapter
from tickwire.upstream.config import UpstreamConfig, valid_symbol
from tickwire.upstream.connection import UpstreamConnection
from tickwire.upstream.leader import Leadership
from tickwire.upstream.runtime import Runtime

log = logging.getLogger("tickwire.upstream")


class UpstreamManager:
    def __init__(
        self,
        configs: Sequence[UpstreamConfig],
        publish: Callable[..., Awaitable[Any]],
        broker: Broker,
        runtime: Runtime | None = None,
        *,
        node_id: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`publish` is the node's `pipeline.publish` (called with a batch and `trace`). Every
        adapter is built now: a missing secret or a bad option is a ConfigError at start-up."""
        self.runtime = runtime = runtime or Runtime()
        self.broker = broker
        self.node_id = node_id or getattr(broker, "node_id", None) or uuid.uuid4().hex[:12]
        shared = broker.shared_limits  # several nodes share this broker (Redis)
        self.connections: dict[str, UpstreamConnection] = {}
        self._by_log: dict[str, list[UpstreamConnection]] = {}
        for config in configs:
            instance = config.name if config.leader_only or not shared else f"{config.name}@{self.node_id}"
            conn = UpstreamConnection(
                config,
                make_adapter(config, env),
                functools.partial(publish, trace=f"upstream:{config.name}"),
                runtime,
                node_id=self.node_id if shared else "",
                instance=instance,
            )
            self.connections[config.name] = conn
            self._by_log.setdefault(conn.adapter.feeds, []).append(conn)
        led = [c for c in self.connections.values() if c.config.leader_only and shared]
        self.leadership = Leadership(broker, self.node_id, led, runtime) if led else None
        self._leader_task: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        return bool(self.connections)

    def on_key_demand(self, log_name: str, key: Any, present: bool) -> None:
        """The hub's hook: the first reader of (log, key) came, or its last one left (or a
        poll naming it began, or ended)."""
        conns = self._by_log.get(log_name)
        if not conns or not valid_symbol(key):
            return
        for conn in conns:
            try:
                if present:
                    conn.acquire(key)
                else:
                    conn.release(key)
            except Exception:  # the hub's subscribe must never fail for an upstream
                log.exception("upstream demand failed", extra={"upstream": conn.name})

    async def start(self) -> None:
        for conn in self.connections.values():
            if self.leadership is None or conn not in self.leadership.connections:
                conn.start()
        if self.leadership is not None:
            self._leader_task = asyncio.create_task(self.leadership.run(), name="upstream-leadership")

    async def stop(self) -> None:
        if self._leader_task is not None:
            self._leader_task.cancel()
            await asyncio.wait({self._leader_task})
            self._leader_task = None
        await asyncio.gather(*(conn.stop() for conn in self.connections.values()))
        if self.leadership is not None:
            await self.leadership.release()

    def stats(self) -> list[UpstreamConnection]:
        """The connections, for `/metrics` (metrics.py reads their plain counters)."""
        return list(self.connections.values())
