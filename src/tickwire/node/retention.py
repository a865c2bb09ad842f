"""How long a user's history outlives their connections (TICKWIRE_BUFFER_TTL_S).

A user becomes idle when their last connection on this node closes and active again when
one opens; `expired()` names the users idle for the whole TTL, whose history the node then
drops. Brokers shared by several nodes expire history themselves, from cluster-wide presence.
"""

from __future__ import annotations

from tickwire.core.clock import Clock


class IdleUsers:
    def __init__(self, clock: Clock, ttl_s: float) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self._since: dict[str, float] = {}  # user -> monotonic time they became idle

    def __len__(self) -> int:
        return len(self._since)

    def idle(self, user: str) -> None:
        self._since[user] = self.clock.monotonic()

    def active(self, user: str) -> None:
        self._since.pop(user, None)

    def expired(self) -> list[str]:
        """The users idle for at least the TTL; they are forgotten here."""
        now = self.clock.monotonic()
        users = [u for u, since in self._since.items() if now - since >= self.ttl_s]
        for user in users:
            del self._since[user]
        return users
