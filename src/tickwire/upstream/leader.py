"""`leader_only` upstreams on a shared broker: one node at a time holds the connection.

Every `RENEW_S` each node asks the broker for the lease `upstream:{name}`
(`Broker.lease`, a Redis key with a TTL of `LEASE_TTL_S`): the holder starts the
connection, a node that loses it (or cannot renew it before it would expire) stops its
connection (state `standby`), and another node takes over once the lease expired. At
shutdown the holder releases it so the next node takes over at once.

The holder subscribes for every node's readers: each node writes the symbols its own
readers want as processor state (`demand:{upstream}:{node}` on the internal `upstreams`
log, with its node id in the index `upstream-demand:{upstream}`), refreshed every
`REFRESH_S`; the holder reads them every `SHARE_S` and adds what is not older than
`EXPIRED_S` (a node that died stops counting) to its own demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tickwire.brokers.base import Batch, Broker, IndexChange, StateWrite
from tickwire.errors import BrokerUnavailable, StateConflict
from tickwire.upstream.runtime import Runtime

if TYPE_CHECKING:
    from tickwire.upstream.connection import UpstreamConnection

log = logging.getLogger("tickwire.upstream")

LEASE_TTL_S = 10.0
RENEW_S = 3.0
SHARE_S = 1.0
REFRESH_S = 10.0
EXPIRED_S = 3 * REFRESH_S
DEMAND_LOG = "upstreams"  # processor state only: no stream reads this log


def lease_name(conn: UpstreamConnection) -> str:
    return f"upstream:{conn.name}"


class Leadership:
    def __init__(
        self, broker: Broker, node_id: str, connections: Sequence[UpstreamConnection], runtime: Runtime
    ) -> None:
        self.broker = broker
        self.node_id = node_id
        self.connections = list(connections)
        self.runtime = runtime
        self.held: dict[str, float] = {}  # upstream -> monotonic time its lease surely lasts until
        self._renewed: dict[str, float] = {}
        self._shared: dict[str, tuple[tuple[str, ...], float]] = {}  # what we wrote, when
        self._versions: dict[str, int] = {}

    async def run(self) -> None:
        while True:
            await self.tick()
            await self.runtime.sleep(SHARE_S)

    async def tick(self) -> None:
        for conn in self.connections:
            try:
                await self._lease(conn)
                await self._share(conn)
                if conn.name in self.held:
                    await self._gather(conn)
            except BrokerUnavailable as exc:
                log.warning(
                    "upstream leadership: broker away", extra={"upstream": conn.name, "error": str(exc)}
                )

    async def _lease(self, conn: UpstreamConnection) -> None:
        now = self.runtime.clock.monotonic()
        if now - self._renewed.get(conn.name, -1e9) >= RENEW_S or conn.name not in self.held:
            try:
                got = await self.broker.lease(lease_name(conn), self.node_id, LEASE_TTL_S)
            except BrokerUnavailable:
                # Keep it only while it surely lasts (another node takes it when it expires).
                got = self.held.get(conn.name, 0.0) > now + SHARE_S
            else:
                self._renewed[conn.name] = now
                if got:
                    self.held[conn.name] = now + LEASE_TTL_S - SHARE_S
        else:
            got = True
        if got and not conn.running:
            log.info("upstream lease taken", extra={"upstream": conn.name, "node": self.node_id})
            conn.start()
        elif not got:
            self.held.pop(conn.name, None)
            conn.demand.set_external(())
            if conn.running:
                log.info("upstream lease lost", extra={"upstream": conn.name, "node": self.node_id})
                await conn.stop(standby=True)

    async def _share(self, conn: UpstreamConnection) -> None:
        """Write this node's readers' symbols when they changed (or are due for a refresh)."""
        symbols = tuple(conn.demand.local())
        now = self.runtime.clock.monotonic()
        last = self._shared.get(conn.name)
        if last is not None and last[0] == symbols and now - last[1] < REFRESH_S:
            return
        name = f"demand:{conn.name}:{self.node_id}"
        if name not in self._versions:
            self._versions[name] = (await self.broker.load([(DEMAND_LOG, name)]))[0].version
        value = {"symbols": list(symbols), "at": self.runtime.clock.wall_ms()}
        batch = Batch(
            (),
            self.runtime.clock.wall_ms(),
            writes=[StateWrite(DEMAND_LOG, name, value, self._versions[name])],
            index=[IndexChange(_index(conn), self.node_id, True)],
        )
        try:
            await self.broker.submit(batch)
        except StateConflict:
            del self._versions[name]  # read again next time
            return
        self._versions[name] += 1
        self._shared[conn.name] = (symbols, now)

    async def _gather(self, conn: UpstreamConnection) -> None:
        """The holder: every other live node's readers' symbols join the demand."""
        others = sorted(m for m in await self.broker.members(_index(conn)) if m != self.node_id)
        refs = [(DEMAND_LOG, f"demand:{conn.name}:{m}") for m in others]
        stored = await self.broker.load(refs) if refs else []
        oldest = self.runtime.clock.wall_ms() - EXPIRED_S * 1000
        wanted: set[str] = set()
        for node, entry in zip(others, stored, strict=True):
            value = entry.value or {}
            if isinstance(value.get("at"), int) and value["at"] >= oldest:
                wanted.update(s for s in value.get("symbols", ()) if isinstance(s, str))
            else:
                await self._forget(conn, node, entry.version)
        before = conn.demand.version
        conn.demand.set_external(wanted)
        if conn.demand.version != before:
            conn.command("sync")

    async def _forget(self, conn: UpstreamConnection, node: str, version: int) -> None:
        """A node that stopped refreshing its demand (it died): leave it out from now on."""
        name = f"demand:{conn.name}:{node}"
        batch = Batch(
            (),
            self.runtime.clock.wall_ms(),
            writes=[StateWrite(DEMAND_LOG, name, None, version)] if version else [],
            index=[IndexChange(_index(conn), node, False)],
        )
        with contextlib.suppress(StateConflict):
            await self.broker.submit(batch)

    async def release(self) -> None:
        """At shutdown: give up the leases this node holds (the next node takes over at once)."""
        for conn in self.connections:
            if self.held.pop(conn.name, None) is not None:
                with contextlib.suppress(BrokerUnavailable, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self.broker.release(lease_name(conn), self.node_id)


def _index(conn: UpstreamConnection) -> str:
    return f"upstream-demand:{conn.name}"
