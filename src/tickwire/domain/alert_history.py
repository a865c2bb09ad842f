"""Alert history (SPEC 13): every `alert:new` of a user, kept in a broker journal
`alerts:{user}` beyond the 100-event stream buffer and its TTL: at most `cap` (1,000) per
user, for `retention_s` (TICKWIRE_ALERT_RETENTION_S, 7 days). It is the user's: it goes when
the broker forgets them (TICKWIRE_STATE_TTL_S idle, TICKWIRE_MAX_USERS). With Redis it is in
Redis, so it survives node restarts and every node reads it.

`AlertHistory` is the last processor of the pipeline: it sees every stamped event, those of
published batches and the follow-ups of the processors before it, so the rule engine's
firings and the alerts applications publish land in the same history (`alertId` is the
record's id; an alert without one is kept under its event id). `alert:ack` events mark
their alert acknowledged. It then runs the actions (actions.py) of the firings this node's
engine produced, once they are stamped.

`HistoryReader` is what the API reads and acknowledges with (server/alerts.py).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from tickwire.brokers.base import Broker, Record
from tickwire.core.clock import Clock
from tickwire.core.event import Event, iso_timestamp, log_user
from tickwire.domain.actions import Actions
from tickwire.errors import BrokerUnavailable
from tickwire.pipeline.processor import BaseProcessor, FollowUp

log = logging.getLogger("tickwire.alerts")

KEPT = (
    "ruleId",
    "kind",
    "symbol",
    "severity",
    "level",
    "message",
    "value",
    "threshold",
    "windowS",
    "timestamp",
)
MAX_MESSAGE = 1000
FIRED_REMEMBERED = 10_000


def journal(user: str) -> str:
    return f"alerts:{user}"


def record_of(event: Event) -> Record:
    """The history record of a stamped `alert:new` (known fields only, bounded)."""
    data = event.data
    value: dict[str, Any] = {k: data[k] for k in KEPT if k in data}
    if isinstance(value.get("message"), str):
        value["message"] = value["message"][:MAX_MESSAGE]
    level = value.get("level") or value.get("severity") or "info"
    value.setdefault("severity", level)
    value.setdefault("level", level)
    alert_id = data.get("alertId")
    value["alertId"] = alert_id if isinstance(alert_id, str) and alert_id else str(event.id)
    value["eventId"] = event.id
    value["acked"] = False
    return Record(value["alertId"], event.ms, value)


class AlertHistory(BaseProcessor):
    name = "alert-history"

    def __init__(
        self, broker: Broker, *, cap: int, retention_s: float, actions: Actions | None = None
    ) -> None:
        self.broker = broker
        self.cap = cap
        self.retention_ms = int(retention_s * 1000)
        self.actions = actions
        self._fired: OrderedDict[str, str] = OrderedDict()  # alertId -> user, fired here, not yet stamped

    def fired(self, user: str, alert_id: str, payload: dict[str, object]) -> None:
        """The engine fired `alert_id` for `user` (its actions run once it is stamped)."""
        self._fired[alert_id] = user
        while len(self._fired) > FIRED_REMEMBERED:
            self._fired.popitem(last=False)

    async def after(self, events: Sequence[Event]) -> FollowUp | None:
        adds: dict[str, list[Record]] = {}
        acks: list[tuple[str, dict[str, Any]]] = []
        for event in events:
            if event.type == "alert:new" or event.type == "alert:ack":
                user = log_user(event.log)
                if user is None:
                    continue
                if event.type == "alert:new":
                    adds.setdefault(user, []).append(record_of(event))
                else:
                    acks.append((user, event.data))
        if not adds and not acks:
            return None
        try:
            for user, records in adds.items():
                await self.broker.journal_add(
                    journal(user), records, cap=self.cap, retention_ms=self.retention_ms, user=user
                )
            for user, data in acks:
                await self._acked(user, data)
        except BrokerUnavailable as exc:  # the events are out: say what history misses
            log.warning("alert history not updated", extra={"error": str(exc)})
        self._run_actions(adds)
        return None

    async def _acked(self, user: str, data: dict[str, Any]) -> None:
        alert_id = data.get("alertId")
        if not isinstance(alert_id, str):
            return
        record = await self.broker.journal_get(journal(user), alert_id)
        if record is not None and not record.value.get("acked"):
            fields = {
                "acked": True,
                "ackedAt": data.get("ackedAt") or data.get("timestamp"),
                "ackedBy": data.get("by"),
            }
            await self.broker.journal_patch(journal(user), alert_id, fields)

    def _run_actions(self, adds: dict[str, list[Record]]) -> None:
        if self.actions is None or not self._fired:
            return
        for user, records in adds.items():
            for record in records:
                if self._fired.pop(record.id, None) == user:
                    self.actions.run(user, record.value)


class HistoryReader:
    """The history API's reads and acknowledgements."""

    def __init__(self, broker: Broker, clock: Clock, *, retention_s: float) -> None:
        self.broker = broker
        self.clock = clock
        self.retention_ms = int(retention_s * 1000)

    async def page(
        self, user: str, *, limit: int, before: str | None = None, unacked: bool = False
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first: up to `limit` alerts before `before`; and the cursor of the next page
        (None when this one is the last)."""
        since = self.clock.wall_ms() - self.retention_ms
        out: list[dict[str, Any]] = []
        wanted = limit + 1  # one more than asked: whether there is a next page
        cursor, chunk_size = before, max(wanted, 100) if unacked else wanted
        while len(out) < wanted:
            chunk = await self.broker.journal_page(
                journal(user), before=cursor, limit=chunk_size, since_ms=since
            )
            for record in chunk:
                if not (unacked and record.value.get("acked")):
                    out.append(record.value)
                    if len(out) == wanted:
                        break
            if len(chunk) < chunk_size:
                break
            cursor = chunk[-1].id
        page = out[:limit]
        more = len(out) > limit and limit > 0
        return page, (str(page[-1]["alertId"]) if more else None)

    async def ack(self, user: str, alert_id: str) -> tuple[dict[str, Any], bool] | None:
        """Mark an alert acknowledged by `user`: (the `alert:ack` payload, whether it is new);
        None when the user has no such alert (or it is older than the retention)."""
        record = await self.broker.journal_get(journal(user), alert_id)
        if record is None or record.ms < self.clock.wall_ms() - self.retention_ms:
            return None
        if record.value.get("acked"):
            value = record.value
            return {"alertId": alert_id, "ackedAt": value.get("ackedAt"), "by": value.get("ackedBy")}, False
        now = iso_timestamp(self.clock.wall_ms())
        patched = await self.broker.journal_patch(
            journal(user), alert_id, {"acked": True, "ackedAt": now, "ackedBy": user}
        )
        if patched is None:
            return None
        return {"alertId": alert_id, "ackedAt": now, "by": user}, True
