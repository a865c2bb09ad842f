"""Normalised updates -> the node's publish pipeline, in batches.

Rules at the bound (`max_pending` queued requests):
1. A price update replaces the queued one of its symbol (latest value wins; ticks may be
   conflated, SPEC 1), keeping its place in the queue.
2. Log events (`trade:new`, relayed events, `provider:status`) are never conflated.
3. Over the bound, new requests are dropped and counted (`backlog`); status events are
   always queued.
One batch (at most `max_batch` requests) is in the pipeline at a time; what arrives
meanwhile goes out in the next one, so a fast feed makes bigger batches, not more of them.
A batch the pipeline refuses (broker away, a bound) is counted (`publish_failed`) and
dropped: market data is not worth holding back the next values.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tickwire.errors import BrokerUnavailable, PublishError
from tickwire.pipeline.validate import PublishRequest
from tickwire.upstream.stats import ConnectionStats

log = logging.getLogger("tickwire.upstream")

PublishFn = Callable[[Sequence[PublishRequest]], Awaitable[Any]]


class Publisher:
    def __init__(
        self,
        name: str,
        publish: PublishFn,
        stats: ConnectionStats,
        *,
        max_batch: int = 500,
        max_pending: int = 10_000,
    ) -> None:
        self.name = name
        self._publish = publish
        self.stats = stats
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._pending: OrderedDict[Any, PublishRequest] = OrderedDict()
        self._serial = itertools.count()
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def offer(self, request: PublishRequest, key: str | None = None, *, force: bool = False) -> None:
        """Queue a request; `key` conflates it with the queued one of the same key."""
        pending = self._pending
        if key is not None and key in pending:
            pending[key] = request
            return
        if len(pending) >= self.max_pending and not force:
            self.stats.drop("backlog")
            return
        pending[key if key is not None else next(self._serial)] = request
        self.idle.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [
                    self._pending.popitem(last=False)[1]
                    for _ in range(min(self.max_batch, len(self._pending)))
                ]
                await self._send(batch)
            self.idle.set()

    async def _send(self, batch: list[PublishRequest]) -> None:
        try:
            await self._publish(batch)
        except (PublishError, BrokerUnavailable) as exc:
            self.stats.drop("publish_failed", len(batch))
            log.warning("upstream batch not published", extra={"upstream": self.name, "error": str(exc)})
        except Exception:
            self.stats.drop("publish_failed", len(batch))
            log.exception("upstream batch failed", extra={"upstream": self.name})
        else:
            self.stats.published += len(batch)
