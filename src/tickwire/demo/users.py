"""The demo's users: who can log in without a password, and what each one runs.

The demo has no user database: these three are the whole directory, so the login
route, the bots and the page agree on who exists.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEMO_USERS", "DemoUser"]


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A demo user, the roles of their session token and their strategy's averages."""

    id: str
    roles: tuple[str, ...] = ()
    short_window: int = 5
    long_window: int = 20

    @property
    def strategy_id(self) -> str:
        return f"momentum-{self.id}"

    def public(self) -> dict[str, object]:
        """What the login and /api/me answers say about the user."""
        return {"userId": self.id, "roles": list(self.roles), "strategies": [self.strategy_id]}


DEMO_USERS: dict[str, DemoUser] = {
    u.id: u
    for u in (
        DemoUser("alice", short_window=5, long_window=20),
        DemoUser("bob", short_window=8, long_window=30),
        DemoUser("admin", ("admin",), short_window=10, long_window=40),
    )
}
