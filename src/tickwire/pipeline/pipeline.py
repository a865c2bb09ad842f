"""The publish pipeline: validate -> sanitize -> derive -> stamp and store -> dispatch.

    requests ─► validate (validate.py; HTTP and ingest bodies)
             ─► sanitize: secret-named keys redacted, `timestamp` and declared defaults added,
                urgent events flagged
             ─► derive: every processor, in order (processor.py)
             ─► stamp and store: `Broker.submit(Batch)`: atomic; the batch's place in the
                order is fixed when it returns
             ─► dispatch: the broker delivers every stamped event to the node's sink, which
                hands it to the hub (node/sink.py)

Derivation and submission run without awaiting anything, so two publishes never
interleave and no lock is held while a batch travels to the broker and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tickwire.brokers.base import Batch, Broker, Publication
from tickwire.core.clock import Clock
from tickwire.core.event import URGENT_FIELD, EventType, iso_timestamp
from tickwire.core.sanitize import sanitize
from tickwire.errors import PublishError
from tickwire.metrics import Metrics
from tickwire.pipeline.processor import Draft, Processor
from tickwire.pipeline.validate import PublishRequest, Validator


class PublishPipeline:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        validator: Validator,
        processors: Sequence[Processor] = (),
        metrics: Metrics | None = None,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.validator = validator
        self.processors = list(processors)
        self.metrics = metrics or Metrics()

    async def publish_body(self, body: Any, *, ingest_id: str | None = None) -> list[str | None]:
        """Validate a POST /api/publish body (or an ingest entry's) and publish it."""
        return await self.publish(self.validator.parse_body(body), ingest_id=ingest_id)

    async def publish(
        self, requests: Sequence[PublishRequest], *, ingest_id: str | None = None
    ) -> list[str | None]:
        """Stamp a validated batch atomically; the ids of the requested events, in order."""
        ms = self.clock.wall_ms()
        ts = iso_timestamp(ms)
        pubs: list[Publication] = []
        owned: list[int] = []  # index in pubs of each request's own event
        for index, req in enumerate(requests):
            spec = self.validator.types[req.type]
            draft = Draft(spec, sanitized(spec, req.data, ts), req.user, ms, ts)
            derived = self._derive(draft, index if len(requests) > 1 else None)
            owned.append(len(pubs))
            pubs.append(draft.publication())
            pubs.extend(derived)
        events = await self.broker.submit(Batch(pubs, ms, ingest_id))
        for event in events:
            self.metrics.published.labels(event.type).inc()
        return [events[i].id for i in owned]

    def _derive(self, draft: Draft, index: int | None) -> list[Publication]:
        derived: list[Publication] = []
        for processor in self.processors:
            try:
                derived.extend(processor.derive(draft))
            except ValueError as exc:  # the domain refused it (e.g. an impossible fill)
                raise PublishError(str(exc), index) from None
        return derived

    async def publish_due(self) -> int:
        """Publish what the processors held back and released now (one batch); how many."""
        pubs = [pub for processor in self.processors for pub in processor.due()]
        if not pubs:
            return 0
        events = await self.broker.submit(Batch(pubs, self.clock.wall_ms()))
        for event in events:
            self.metrics.published.labels(event.type).inc()
        return len(events)


def sanitized(spec: EventType, data: dict[str, Any], ts: str) -> dict[str, Any]:
    """The payload as delivered: secrets redacted, `timestamp`, declared defaults, urgency."""
    data = sanitize(data)
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
