"""Statistics of one upstream connection: plain numbers, read when `/metrics` is scraped."""

from __future__ import annotations

from dataclasses import dataclass, field

from tickwire.metrics import LATENCY_BUCKETS, FastHistogram

# Why an update or a message was not published (tickwire_upstream_dropped_total{reason}).
DROP_REASONS = (
    "malformed",  # not what the provider's protocol says
    "oversized",  # over max_message_bytes
    "invalid",  # a value the catalogue refuses (negative price, a bad symbol)
    "stale",  # older than what was already published for that symbol
    "duplicate",  # the same update (or log event) again
    "unsubscribed",  # a symbol nobody holds
    "backlog",  # the publish queue was full
    "publish_failed",  # the pipeline refused the batch (broker away)
)
# Provider message exchange time to receipt; wider than delivery latency (providers lag).
UPSTREAM_LATENCY_BUCKETS = (*LATENCY_BUCKETS, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class ConnectionStats:
    messages: int = 0  # provider messages received (WebSocket messages, poll answers)
    bytes: int = 0
    updates: int = 0  # normalised updates handed to the pipeline
    published: int = 0  # events the pipeline stamped
    reconnects: int = 0
    polls: int = 0
    errors: int = 0  # provider error messages and failed polls (tickwire_upstream_errors_total)
    last_message_at: int | None = None  # unix ms of the last provider message
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    latency: FastHistogram = field(default_factory=lambda: FastHistogram(UPSTREAM_LATENCY_BUCKETS))

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())
