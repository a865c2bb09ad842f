"""The token a client sends, and where a fresh one comes from.

Tokens expire on open connections too (SPEC 5): at the token's `exp` the server sends
`auth:expired` and ends the SSE response or closes the WebSocket with 4001, and a
long-poll's wait ends. A client given a `token_provider` (a sync or async callable
returning the token, or None / "" for none) survives that:

- the provider is asked before every connection attempt (the first, each reconnect, each
  fallback probe), so every attempt carries the freshest token the provider has;
- `auth:expired` ends the session and the client reconnects at once with a new token,
  resuming every stream from its last id: no event is lost or doubled;
- a 401 answer or a 4001 close is retried (with backoff) with a new token instead of ending
  the client, and such attempts never count towards `max_attempts` or the fallback to
  polling: the client does not give up while the provider returns tokens;
- a provider that raises counts as a failed attempt (backoff, `max_attempts`): raise when no
  token can be had right now; return None only to read public streams anonymously (a user
  stream then answers 401, which ends the client with `StreamRefused`).

Without a provider the `token` is sent as it is, and a refusal of it (401, 4001) ends the
client with `StreamRefused`. A sync provider runs on the event loop: keep it quick (return
a cached token) or make it async.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from tickwire.client.errors import TransportError

TokenProvider = Callable[[], str | Awaitable[str | None] | None]


class Credentials:
    """The current token of one client and its provider (None: the token never changes)."""

    def __init__(self, token: str | None, provider: TokenProvider | None = None) -> None:
        self.token = token or None
        self.provider = provider
        self.refreshes = 0  # how many tokens the provider has given
        self._lock: asyncio.Lock | None = None

    @property
    def renewable(self) -> bool:
        """Whether a refused or expired token is worth replacing: a provider is set and it
        gave a token (a 401 without one means the stream needs a user the provider has not)."""
        return self.provider is not None and self.token is not None

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def refresh(self) -> str | None:
        """Ask the provider for the token to use from now on; without one, keep the token.
        A provider that raises is a `TransportError` (the attempt failed; retry later)."""
        provider = self.provider
        if provider is None:
            return self.token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # a fallback probe and the poller may both be connecting
            try:
                result = provider()
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                raise TransportError(f"the token provider failed: {exc!r}") from exc
            if result is not None and not isinstance(result, str):
                raise TransportError(f"the token provider returned {type(result).__name__}, not str")
            self.token = result or None
            self.refreshes += 1
            return self.token
