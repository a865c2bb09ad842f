"""Alerts and scans of one node (SPEC 13), built from its settings, in one place:

- `engine` (alerts.py): the rule engine, a processor placed right after positions;
- `history` (alert_history.py): the alert history, the last processor; runs the actions;
- `rules` (alert_store.py), `reader` (alert_history.py), `scans` (scan_defs.py): what the
  HTTP APIs (server/alerts.py, server/scans.py) read and change;
- `runner` (scans.py): the scan runner, a background task of the node.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from tickwire.brokers.base import Broker
from tickwire.config import Settings
from tickwire.core.clock import Clock
from tickwire.core.event import Event
from tickwire.domain.actions import Actions, AlertAction, LogAction, Spawn, WebhookAction
from tickwire.domain.alert_history import AlertHistory, HistoryReader
from tickwire.domain.alert_store import RuleStore
from tickwire.domain.alerts import AlertsProcessor
from tickwire.domain.scan_defs import ScanStore
from tickwire.domain.scans import ScanRunner
from tickwire.metrics import Metrics


class Alerting:
    def __init__(
        self, settings: Settings, broker: Broker, clock: Clock, metrics: Metrics, spawn: Spawn
    ) -> None:
        self.webhook = (
            WebhookAction(
                settings.alert_webhook_url,
                timeout_s=settings.alert_webhook_timeout_s,
                retries=settings.alert_webhook_retries,
            )
            if settings.alert_webhook_url
            else None
        )
        actions: list[AlertAction] = [LogAction()] if settings.alert_log else []
        if self.webhook is not None:
            actions.append(self.webhook)
        self.history = AlertHistory(
            broker,
            cap=settings.alert_history,
            retention_s=settings.alert_retention_s,
            actions=Actions(actions, spawn, counted=self._count_action(metrics)) if actions else None,
        )
        self.engine = AlertsProcessor(broker, clock, fired=self.history.fired)
        self.rules = RuleStore(
            broker, clock, max_rules=settings.alert_max_rules, changed=self.engine.invalidate
        )
        self.reader = HistoryReader(broker, clock, retention_s=settings.alert_retention_s)
        self.scans = ScanStore(broker, clock, queue_bound=settings.scan_queue, max_scans=settings.scan_max)
        self.max_scan_symbols = settings.scan_max_symbols

        def count(events: Sequence[Event]) -> None:
            for event in events:
                metrics.published.labels(event.type).inc()

        node_id = getattr(broker, "node_id", None) or uuid.uuid4().hex[:12]
        self.runner = ScanRunner(self.scans, clock, node_id=node_id, published=count)

    @staticmethod
    def _count_action(metrics: Metrics) -> Callable[[str, str], None]:
        def counted(action: str, outcome: str) -> None:
            metrics.alert_actions.labels(action, outcome).inc()

        return counted

    async def close(self) -> None:
        """Give up this node's scan leases; close the webhook's connections."""
        await self.runner.stop()
        if self.webhook is not None:
            await self.webhook.close()
