"""The node as its broker's sink: the last stage of the publish pipeline (dispatch) and
the cluster events a shared broker reports."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tickwire.core.event import Event
from tickwire.core.hub import Hub
from tickwire.metrics import Metrics
from tickwire.node.reader import StreamReader
from tickwire.node.sessions import Sessions

log = logging.getLogger("tickwire.node")


class NodeSink:
    """Implements `brokers.base.BrokerSink` for one node."""

    def __init__(self, hub: Hub, reader: StreamReader, sessions: Sessions, metrics: Metrics) -> None:
        self.hub = hub
        self.reader = reader
        self.sessions = sessions
        self.metrics = metrics
        # Called with every event this node delivers, whichever node published it (the alert
        # engine's windows); each must be cheap.
        self.observers: list[Callable[[Event], None]] = []

    def on_event(self, event: Event) -> None:
        try:
            self.hub.dispatch(event)
            for observe in self.observers:
                observe(event)
        except Exception:  # a bug must cost this event's delivery at most, never the publish
            self.metrics.delivery_failures.inc()
            log.exception(
                "delivery failed",
                extra={"event_id": event.id, "type": event.type, "publish_correlation_id": event.trace},
            )
        self.reader.wake(event.log)

    def on_broadcast(self, type_: str, data: dict[str, Any]) -> None:
        self.hub.broadcast(type_, data)

    def on_reset(self, log: str, reason: str) -> None:
        self.sessions.reset_log(log, reason)
        self.reader.wake(log)

    def on_evict(self, serial: int) -> None:
        self.sessions.evict(serial)

    def watched_logs(self) -> set[str]:
        return self.sessions.watched_logs()

    def local_connections(self) -> list[tuple[str, int]]:
        return self.sessions.local_connections()
