"""The state machine of one upstream connection.

Theory of operation. An upstream is in exactly one state; only the moves in `TRANSITIONS`
are legal, and every move is announced (a `provider:status` event and the
`tickwire_upstream_state{name}` gauge) with a reason:

    CONNECTING --open + subscribed--> CONNECTED
    CONNECTING / RECONNECTING --attempt failed--> RECONNECTING   (backoff, then retry)
        ... with a rest_url, after `fallback_after` failures --> POLLING (retries go on)
    CONNECTED --no message for stale_s--> STALE --> RECONNECTING / POLLING
    CONNECTED --connection lost--> RECONNECTING / POLLING
    POLLING --a retry opened the stream--> CONNECTED (polling stops)
    any --max_attempts failures in a row, or the provider refused the credentials--> FAILED
    FAILED --reconnect()--> CONNECTING

STANDBY is the state of a `leader_only` upstream on a node that does not hold its lease
(nothing is open; nothing is announced), and of every upstream before start.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from tickwire.errors import TickwireError


class UpstreamState(Enum):
    STANDBY = "standby"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    STALE = "stale"
    RECONNECTING = "reconnecting"
    POLLING = "polling"
    FAILED = "failed"

    @property
    def code(self) -> int:
        """The value of the `tickwire_upstream_state` gauge."""
        return _CODES[self]


_CODES = {state: i for i, state in enumerate(UpstreamState)}

S = UpstreamState
TRANSITIONS: dict[UpstreamState, frozenset[UpstreamState]] = {
    S.STANDBY: frozenset({S.CONNECTING}),
    S.CONNECTING: frozenset({S.CONNECTED, S.RECONNECTING, S.POLLING, S.FAILED, S.STANDBY}),
    S.CONNECTED: frozenset({S.STALE, S.RECONNECTING, S.POLLING, S.FAILED, S.STANDBY}),
    S.STALE: frozenset({S.RECONNECTING, S.POLLING, S.FAILED, S.STANDBY}),
    S.RECONNECTING: frozenset({S.CONNECTED, S.RECONNECTING, S.POLLING, S.FAILED, S.STANDBY}),
    S.POLLING: frozenset({S.CONNECTED, S.POLLING, S.FAILED, S.STANDBY}),
    S.FAILED: frozenset({S.CONNECTING, S.STANDBY}),
}


class IllegalTransition(TickwireError, RuntimeError):
    """A move the table does not allow: a bug in the connection loop."""


@dataclass(frozen=True, slots=True)
class Change:
    old: UpstreamState
    new: UpstreamState
    reason: str


class StateMachine:
    def __init__(self, on_change: Callable[[Change], None] | None = None) -> None:
        self.state = UpstreamState.STANDBY
        self.reason = ""
        self._on_change = on_change
        self.history: deque[UpstreamState] = deque(maxlen=100)  # the states moved to, oldest first
        self.reasons: dict[UpstreamState, str] = {}  # the last reason each state was entered with

    def move(self, new: UpstreamState, reason: str = "") -> Change | None:
        """Change state; staying put is a no-op (RECONNECTING and POLLING only note the
        new reason). Raises `IllegalTransition` for a move not in the table."""
        old = self.state
        if new == old:
            self.reason = reason or self.reason
            return None
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(f"{old.value} -> {new.value}")
        self.state, self.reason = new, reason
        self.history.append(new)
        self.reasons[new] = reason
        change = Change(old, new, reason)
        if self._on_change is not None:
            self._on_change(change)
        return change
