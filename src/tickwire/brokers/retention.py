"""How long the embedded broker keeps a user (SPEC 4, TICKWIRE_BUFFER_TTL_S,
TICKWIRE_STATE_TTL_S, TICKWIRE_MAX_USERS): the rules, on an injected clock, without I/O.

- A user is *tracked* from their first event (or read) until forgotten; *active* while
  some node connection of theirs is open; *idle* otherwise.
- History goes `buffer_ttl_s` after their last connection closed.
- Everything of the user (history, keyed state, processor state, alert history, the log
  and its epoch) goes after `state_ttl_s` idle without an event: their next event starts a new epoch, so
  an old id gets `stream:reset`, never a silent gap.
- Over `max_users` tracked users, the least recently active idle ones go first (all of
  them, as above).
"""

from __future__ import annotations

from collections import OrderedDict

from tickwire.core.clock import Clock


class UserRetention:
    def __init__(self, clock: Clock, *, buffer_ttl_s: float, state_ttl_s: float, max_users: int) -> None:
        self.clock = clock
        self.buffer_ttl_s = buffer_ttl_s
        self.state_ttl_s = state_ttl_s
        self.max_users = max_users
        self._seen: OrderedDict[str, float] = OrderedDict()  # user -> last activity, oldest first
        self._open: dict[str, int] = {}  # user -> open connections
        self._closed: OrderedDict[str, float] = OrderedDict()  # user -> when the last one closed

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, user: str) -> bool:
        return user in self._seen

    def touch(self, user: str) -> None:
        """An event for the user, or a read of their log."""
        self._seen[user] = self.clock.monotonic()
        self._seen.move_to_end(user)

    def opened(self, user: str) -> None:
        self._open[user] = self._open.get(user, 0) + 1
        self._closed.pop(user, None)
        self.touch(user)

    def closed(self, user: str) -> None:
        left = self._open.get(user, 0) - 1
        if left > 0:
            self._open[user] = left
            return
        self._open.pop(user, None)
        self._closed[user] = self.clock.monotonic()
        self.touch(user)

    def history_expired(self) -> list[str]:
        """Users whose last connection closed `buffer_ttl_s` ago: drop their history."""
        cutoff = self.clock.monotonic() - self.buffer_ttl_s
        out = []
        while self._closed:
            user, since = next(iter(self._closed.items()))
            if since > cutoff:
                break
            del self._closed[user]
            out.append(user)
        return out

    def expired(self) -> list[str]:
        """Users to forget entirely (state TTL, then the cap); they are no longer tracked."""
        cutoff = self.clock.monotonic() - self.state_ttl_s
        out: list[str] = []
        for user, at in self._seen.items():
            if at > cutoff:
                break
            if user not in self._open:
                out.append(user)
        excess = len(self._seen) - len(out) - self.max_users
        if excess > 0:
            doomed = set(out)
            for user in self._seen:
                if excess <= 0:
                    break
                if user not in self._open and user not in doomed:
                    out.append(user)
                    excess -= 1
        for user in out:
            self.forget(user)
        return out

    def forget(self, user: str) -> None:
        self._seen.pop(user, None)
        self._closed.pop(user, None)
