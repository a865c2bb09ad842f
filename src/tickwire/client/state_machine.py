"""The client's connection state machine.

Theory of operation. A client is in exactly one state; only the transitions in
`TRANSITIONS` are legal, and every change is announced to listeners (and to the
`wire_stream_connection_state` gauge) with a reason:

    DISCONNECTED --start--> CONNECTING --open ok--> CONNECTED
    CONNECTING --attempt failed--> RECONNECTING --open ok--> CONNECTED
    CONNECTED --session lost / stale--> RECONNECTING
    RECONNECTING --N streaming failures in a row--> FALLBACK   (polling; reason kept)
    FALLBACK --probe of the streaming transport ok--> CONNECTED
    FALLBACK --polling failed--> FALLBACK                      (backoff, still polling)
    any --close() / fatal refusal / retries exhausted--> CLOSED (terminal)

CONNECTED means events flow over the configured transport (for a client configured with
`transport="poll"`, polling is that transport). FALLBACK means the streaming transport is
unavailable and events flow by polling while the client keeps trying to return.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from tickwire.client.errors import ClientError

log = logging.getLogger("tickwire.client")


class ConnectionState(Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FALLBACK = "fallback"
    CLOSED = "closed"

    @property
    def code(self) -> int:
        """The value of the `wire_stream_connection_state` gauge."""
        return _CODES[self]


_CODES = {
    ConnectionState.DISCONNECTED: 0,
    ConnectionState.CONNECTING: 1,
    ConnectionState.CONNECTED: 2,
    ConnectionState.RECONNECTING: 3,
    ConnectionState.FALLBACK: 4,
    ConnectionState.CLOSED: 5,
}

S = ConnectionState
TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    S.DISCONNECTED: frozenset({S.CONNECTING, S.CLOSED}),
    S.CONNECTING: frozenset({S.CONNECTED, S.RECONNECTING, S.FALLBACK, S.CLOSED}),
    S.CONNECTED: frozenset({S.RECONNECTING, S.CLOSED}),
    S.RECONNECTING: frozenset({S.CONNECTED, S.RECONNECTING, S.FALLBACK, S.CLOSED}),
    S.FALLBACK: frozenset({S.CONNECTED, S.FALLBACK, S.CLOSED}),
    S.CLOSED: frozenset(),
}


class IllegalTransition(ClientError, RuntimeError):
    """A transition the table does not allow: a bug in the client."""


@dataclass(frozen=True, slots=True)
class StateChange:
    old: ConnectionState
    new: ConnectionState
    reason: str
    transport: str


Listener = Callable[[StateChange], None]


class StateMachine:
    """The current state, its legal moves, and the listeners told of each move."""

    def __init__(self) -> None:
        self.state = ConnectionState.DISCONNECTED
        self.reason = ""
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` on every change; returns a function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def can(self, new: ConnectionState) -> bool:
        return new in TRANSITIONS[self.state]

    def move(self, new: ConnectionState, reason: str = "", transport: str = "") -> StateChange | None:
        """Change state (no-op when already there, except FALLBACK/RECONNECTING, which
        re-announce a new reason). Raises `IllegalTransition` for a move not in the table."""
        old = self.state
        if new == old and new not in (S.RECONNECTING, S.FALLBACK):
            return None
        if not self.can(new):
            raise IllegalTransition(f"{old.value} -> {new.value}")
        self.state = new
        self.reason = reason
        change = StateChange(old, new, reason, transport)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # a user's callback must not break the client
                log.exception("state listener failed")
        return change
