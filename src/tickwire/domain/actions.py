"""What a firing rule does besides its `alert:new` (which is always published, on the
owner's log, by the engine): actions behind one small interface.

- `LogAction`: a log line per firing, at the level of its severity;
- `WebhookAction`: a POST of `{"user", "alert"}` to a URL, with a timeout and retries
  (backoff 0.5 s doubling) on timeouts, connection errors, 429 and 5xx: the example of an
  external action. Its URL is the operator's setting (TICKWIRE_ALERT_WEBHOOK_URL), never a
  user's, so no user can make the server call an address of their choosing.

`Actions` runs them once an alert is stamped (alert_history.py calls `run` for alerts the
engine fired on this node, so each firing runs its actions once in the cluster), each in
a background task, at most `max_pending` at a time; every run is counted by its outcome
(`tickwire_alert_actions{action, outcome}`): `ok`, `failed` (it raised: logged), `dropped`
(over `max_pending`, not run).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tickwire.errors import TickwireError

if TYPE_CHECKING:
    import httpx  # imported when a webhook first sends: a node without one never loads it

log = logging.getLogger("tickwire.alerts")

Spawn = Callable[[Coroutine[Any, Any, Any], str], Any]
Counted = Callable[[str, str], None]  # (action name, outcome)
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class AlertAction(Protocol):
    name: str

    async def run(self, user: str, alert: dict[str, Any]) -> None:
        """Do it; raise when it could not (`ActionFailed` for an expected failure)."""
        ...


class ActionFailed(TickwireError):
    """An action gave up (logged as a warning, without a traceback)."""


class LogAction:
    name = "log"

    async def run(self, user: str, alert: dict[str, Any]) -> None:
        level = LEVELS.get(str(alert.get("severity")), logging.INFO)
        fields = ("alertId", "ruleId", "kind", "symbol", "value", "threshold")
        log.log(level, "alert fired", extra={"user": user, **{k: alert.get(k) for k in fields}})


class WebhookAction:
    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 3,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.sleep = sleep
        self._client = client

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return self._client

    async def run(self, user: str, alert: dict[str, Any]) -> None:
        import httpx

        delay = 0.5
        body = {"user": user, "alert": alert}
        for attempt in range(self.retries + 1):
            try:
                response = await self.client.post(self.url, json=body, timeout=self.timeout_s)
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return
                why = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refuses it: sending it again will not help
            if attempt < self.retries:
                await self.sleep(delay)
                delay *= 2
        raise ActionFailed(why)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class Actions:
    def __init__(
        self,
        actions: Sequence[AlertAction],
        spawn: Spawn,
        *,
        max_pending: int = 1000,
        counted: Counted | None = None,
    ) -> None:
        self.actions = list(actions)
        self.spawn = spawn
        self.max_pending = max_pending
        self.counted = counted or (lambda action, outcome: None)
        self.pending = 0

    def run(self, user: str, alert: dict[str, Any]) -> None:
        for action in self.actions:
            if self.pending >= self.max_pending:
                self.counted(action.name, "dropped")
                log.warning("alert action dropped: too many pending", extra={"action": action.name})
                continue
            self.pending += 1
            self.spawn(self._one(action, user, alert), f"tickwire-alert-{action.name}")

    async def _one(self, action: AlertAction, user: str, alert: dict[str, Any]) -> None:
        outcome = "failed"
        extra = {"action": action.name, "alertId": alert.get("alertId")}
        try:
            await action.run(user, alert)
            outcome = "ok"
        except ActionFailed as exc:
            log.warning("alert action failed", extra={**extra, "error": str(exc)})
        except Exception:
            log.exception("alert action failed", extra=extra)
        finally:
            self.pending -= 1
            self.counted(action.name, outcome)
