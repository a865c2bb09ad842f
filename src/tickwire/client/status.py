"""The client's visible connection state: the state machine, the transport events flow over
now, who waits for a state, and how every change is announced (metrics gauge, log line).

The runner moves the state (runner.py); users read it, listen to it and wait for it through
`Client` (client.py). The legal moves are in state_machine.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tickwire.client.errors import ClientClosed, ClientError
from tickwire.client.metrics import ClientMetrics
from tickwire.client.state_machine import ConnectionState, StateChange, StateMachine

log = logging.getLogger("tickwire.client")


class Status:
    """One client's connection state and the transport it is on."""

    def __init__(self, name: str, transport: str, metrics: ClientMetrics) -> None:
        self.name = name
        self.transport = transport  # "poll" while in fallback
        self._metrics = metrics
        self._machine = StateMachine()
        self._machine.listen(self._on_change)
        self._waiters: list[tuple[frozenset[ConnectionState], asyncio.Future[None]]] = []

    @property
    def state(self) -> ConnectionState:
        return self._machine.state

    @property
    def reason(self) -> str:
        return self._machine.reason

    def listen(self, callback: Callable[[StateChange], None]) -> Callable[[], None]:
        return self._machine.listen(callback)

    def move(self, state: ConnectionState, reason: str, transport: str) -> None:
        self.transport = transport
        self._machine.move(state, reason, transport)

    async def wait_for(self, wanted: frozenset[ConnectionState]) -> ConnectionState:
        if self.state in wanted:
            return self.state
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (wanted, fut)
        self._waiters.append(entry)
        try:
            await fut
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
        return self.state

    def close(self, error: ClientError | None) -> None:
        """Move to CLOSED (terminal), saying why."""
        if self.state != ConnectionState.CLOSED:
            reason = str(error) if error is not None else "closed"
            self._machine.move(ConnectionState.CLOSED, reason, self.transport)

    def fail_waiters(self, error: ClientError | None) -> None:
        """Wake whoever still waits for a state: it will never come."""
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(error or ClientClosed("client closed"))
                fut.exception()

    def _on_change(self, change: StateChange) -> None:
        self._metrics.state(change.new, change.transport or self.transport)
        log.info(
            "client %s: %s -> %s (%s)",
            self.name,
            change.old.value,
            change.new.value,
            change.reason,
            extra={"client": self.name, "transport": change.transport},
        )
        for wanted, fut in list(self._waiters):
            if change.new in wanted and not fut.done():
                fut.set_result(None)
