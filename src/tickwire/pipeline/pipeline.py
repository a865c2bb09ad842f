"""The publish pipeline: validate -> sanitize -> derive -> stamp and store -> dispatch.

    requests ─► validate (validate.py; HTTP and ingest bodies)
             ─► sanitize: bounds (depth, lengths: 400 beyond), stripped fields removed,
                secret-named keys redacted (core/sanitize.py), `timestamp` and declared
                defaults added, urgent events flagged
             ─► read the processor state the drafts need (one broker read)
             ─► derive: every processor, in order (processor.py)
             ─► stamp and store: `Broker.submit(Batch)`: atomic, with the state writes; the
                batch's place in the order is fixed when it returns. When another node
                wrote that state meanwhile (`StateConflict`), back to the read
             ─► dispatch: the broker delivers every stamped event to the node's sink, which
                hands it to the hub (node/sink.py)
             ─► follow-ups: what the processors' `after` returns, as a batch of its own;
                the events of a processor's follow-up go on to the `after` of the
                processors after it (a price's position marks reach the alert rules)

Derivation and submission run without awaiting anything, so no lock is held while a batch
travels to the broker and back; state that two publishes share is protected by its
versions, not by a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from tickwire.brokers.base import Batch, Broker, Publication
from tickwire.core.clock import Clock
from tickwire.core.event import URGENT_FIELD, Event, EventType, iso_timestamp
from tickwire.core.sanitize import PayloadError, PayloadRules
from tickwire.errors import BrokerUnavailable, PublishError, StateConflict
from tickwire.metrics import Metrics
from tickwire.pipeline.processor import Draft, FollowUp, Processor, StateRef, StateView
from tickwire.pipeline.validate import PublishRequest, Validator

# Derivations of one batch before giving up on state other nodes keep changing.
MAX_ATTEMPTS = 8
MAX_LOGGED_IDS = 100  # a "published" line names at most this many ids (and says how many)

log = logging.getLogger("tickwire.publish")


class PublishPipeline:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        validator: Validator,
        processors: Sequence[Processor] = (),
        metrics: Metrics | None = None,
        rules: PayloadRules | None = None,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.validator = validator
        self.processors = list(processors)
        self.metrics = metrics or Metrics()
        self.rules = rules or PayloadRules()
        self._locks = RefLocks()

    async def publish_body(
        self, body: Any, *, ingest_id: str | None = None, trace: str | None = None
    ) -> list[str | None]:
        """Validate a POST /api/publish body (or an ingest entry's) and publish it."""
        return await self.publish(self.validator.parse_body(body), ingest_id=ingest_id, trace=trace)

    async def publish(
        self, requests: Sequence[PublishRequest], *, ingest_id: str | None = None, trace: str | None = None
    ) -> list[str | None]:
        """Stamp a validated batch atomically; the ids of the requested events, in order.
        `trace` (the publisher's correlation id) goes with the events into every log line
        about them."""
        ids = await self._publish(requests, ingest_id, trace)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "published",
                extra={"publish_correlation_id": trace, "events": len(ids), "ids": ids[:MAX_LOGGED_IDS]},
            )
        return ids

    async def _publish(
        self, requests: Sequence[PublishRequest], ingest_id: str | None, trace: str | None
    ) -> list[str | None]:
        drafts = self._drafts(requests, self.clock.wall_ms())
        refs = sorted({ref for d in drafts for p in self.processors for ref in p.reads(d)})
        if not refs:  # nothing to read: derive and submit without awaiting anything first
            return await self._stamp(drafts, StateView({}), ingest_id, trace)
        async with self._locks.hold(refs):  # this node's publishes of one state take turns
            for attempt in range(MAX_ATTEMPTS):
                if attempt:
                    drafts = self._drafts(requests, self.clock.wall_ms())
                    await asyncio.sleep(random.uniform(0, 0.002 * attempt))  # other nodes: spread out
                view = StateView(dict(zip(refs, await self.broker.load(refs), strict=True)))
                try:
                    return await self._stamp(drafts, view, ingest_id, trace)
                except StateConflict:
                    continue  # another node changed that state since it was read: derive again
        raise BrokerUnavailable(f"the batch's state kept changing under it: {MAX_ATTEMPTS} attempts failed")

    async def _stamp(
        self, drafts: list[Draft], view: StateView, ingest_id: str | None, trace: str | None
    ) -> list[str | None]:
        pubs, owned = self._derive_all(drafts, view)
        ms = drafts[0].ms if drafts else self.clock.wall_ms()
        events = await self.broker.submit(Batch(pubs, ms, ingest_id, view.writes, view.index, trace))
        self._count(events)
        await self._follow_up(events, trace)
        return [events[i].id for i in owned]

    def _drafts(self, requests: Sequence[PublishRequest], ms: int) -> list[Draft]:
        ts = iso_timestamp(ms)
        drafts = []
        for index, req in enumerate(requests):
            spec = self.validator.types[req.type]
            try:
                data = self.rules.clean(req.data)
            except PayloadError as exc:
                raise PublishError(str(exc), index if len(requests) > 1 else None) from None
            drafts.append(Draft(spec, completed(spec, data, ts), req.user, ms, ts))
        return drafts

    def _derive_all(self, drafts: Sequence[Draft], view: StateView) -> tuple[list[Publication], list[int]]:
        pubs: list[Publication] = []
        owned: list[int] = []  # index in pubs of each request's own event
        for index, draft in enumerate(drafts):
            derived = self._derive(draft, view, index if len(drafts) > 1 else None)
            owned.append(len(pubs))
            pubs.append(draft.publication())
            pubs.extend(derived)
        return pubs, owned

    def _derive(self, draft: Draft, view: StateView, index: int | None) -> list[Publication]:
        derived: list[Publication] = []
        for processor in self.processors:
            try:
                derived.extend(processor.derive(draft, view))
            except ValueError as exc:  # the domain refused it (e.g. an impossible fill)
                raise PublishError(str(exc), index) from None
        return derived

    async def _follow_up(self, events: Sequence[Event], trace: str | None, first: int = 0) -> None:
        """`after` of every processor from `first` on, each follow-up published in turn."""
        processors = self.processors
        for index in range(first, len(processors)):
            after = functools.partial(processors[index].after, events)
            await self._publish_follow_up(after, trace, index + 1)

    async def publish_due(self) -> int:
        """Publish what the processors held back and released now (a batch each); how many."""
        total = 0
        for index, processor in enumerate(self.processors):
            total += await self._publish_follow_up(processor.due, None, index + 1)
        return total

    async def _publish_follow_up(
        self,
        make: Callable[[], Awaitable[FollowUp | None]],
        trace: str | None = None,
        then: int | None = None,
    ) -> int:
        """One processor's follow-up as a batch; derived again when its state moved on, and
        what its `redo` asks for after it. Its stamped events then go to the processors from
        `then` on (those after the producer)."""
        published = 0
        for _attempt in range(MAX_ATTEMPTS):
            follow = await make()
            if not follow:
                return published
            batch = Batch(
                follow.pubs, self.clock.wall_ms(), writes=follow.writes, index=follow.index, trace=trace
            )
            try:
                events = await self.broker.submit(batch)
            except StateConflict:
                continue
            self._count(events)
            published += len(events)
            if then is not None and events and then < len(self.processors):
                await self._follow_up(events, trace, then)
            if follow.redo is None:
                return published
            make = functools.partial(follow.redo, events)
        log.warning(
            "a follow-up was dropped: its state kept changing under it",
            extra={"publish_correlation_id": trace},
        )
        return published

    def _count(self, events: Sequence[Event]) -> None:
        published = self.metrics.published
        for event in events:
            published.labels(event.type).inc()


class RefLocks:
    """One lock per processor state in use on this node, taken in a fixed order."""

    def __init__(self) -> None:
        self._locks: dict[StateRef, tuple[asyncio.Lock, int]] = {}  # ref -> (lock, holders + waiters)

    @contextlib.asynccontextmanager
    async def hold(self, refs: Sequence[StateRef]) -> AsyncIterator[None]:
        """`refs` sorted by the caller, so no two publishes wait on each other in a cycle."""
        registered: list[StateRef] = []
        acquired: list[asyncio.Lock] = []
        try:
            for ref in refs:
                lock, count = self._locks.get(ref) or (asyncio.Lock(), 0)
                self._locks[ref] = (lock, count + 1)
                registered.append(ref)
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for ref in registered:
                lock, count = self._locks[ref]
                if count <= 1:
                    del self._locks[ref]
                else:
                    self._locks[ref] = (lock, count - 1)


def completed(spec: EventType, data: dict[str, Any], ts: str) -> dict[str, Any]:
    """The payload with `timestamp`, the declared defaults and urgency added."""
    extra: dict[str, Any] = {}
    if "timestamp" not in data:
        extra["timestamp"] = ts
    for field, value in spec.defaults:
        if field not in data:
            extra[field] = value
    if spec.urgent_when is not None:
        field, value = spec.urgent_when
        if data.get(field) == value and data.get(URGENT_FIELD) is not True:
            extra[URGENT_FIELD] = True
    return {**data, **extra} if extra else data
