"""The token a client sends, and where a fresh one comes from.

Tokens expire on open connections too (SPEC 5): at the token's `exp` the server sends
`auth:expired` and ends the SSE response or closes the WebSocket with 4001, and a
long-poll's wait ends. A client given `get_token` (a sync or async callable returning the
token, or None / "" for none; `token_provider` is its former name) survives that:

- it is asked before every connection attempt (the first, each reconnect, each fallback
  probe), so every attempt carries the freshest token it has;
- it is asked again shortly before the token's `exp` (the JWT's claim, read without
  checking the signature: the server checks it), `token_refresh_margin_s` ahead, at most a
  third of the token's lifetime ahead: a WebSocket then sends `{"type":"auth","token":...}`
  on the open socket, which extends it (SPEC 5), so rotation costs no reconnect; SSE and
  polling use the new token from their next request (SSE responses still end at `exp`);
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
import base64
import binascii
import inspect
import time
from collections.abc import Awaitable, Callable

import orjson

from tickwire.client.errors import TransportError

TokenProvider = Callable[[], str | Awaitable[str | None] | None]
# Refresh no sooner than this after a token arrived, whatever its lifetime (no busy loop on a
# token that is already expired or about to).
MIN_REFRESH_S = 1.0


def token_claims(token: str | None) -> dict[str, object] | None:
    """The claims of a JWT, unverified (the server verifies), or None when it is not one."""
    if not token:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    body = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(body))
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def token_expiry(token: str | None) -> float | None:
    """The token's `exp` (unix seconds), or None when it has none or is not a JWT."""
    claims = token_claims(token)
    exp = claims.get("exp") if claims else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class Credentials:
    """The current token of one client and its provider (None: the token never changes)."""

    def __init__(
        self,
        token: str | None,
        provider: TokenProvider | None = None,
        margin_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token or None
        self.provider = provider
        self.margin_s = margin_s
        self.refreshes = 0  # how many tokens the provider has given
        self._clock = clock
        self._received_at = clock()
        self._lock: asyncio.Lock | None = None

    def refresh_in(self) -> float | None:
        """Seconds until the token should be replaced (before its `exp`), or None when it
        never needs to be (no provider, no token, no `exp`)."""
        if self.provider is None:
            return None
        exp = token_expiry(self.token)
        if exp is None:
            return None
        now = self._clock()
        lifetime = max(0.0, exp - self._received_at)
        margin = min(self.margin_s, lifetime / 3)
        earliest = self._received_at + MIN_REFRESH_S
        return max(earliest, exp - margin) - now

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
            self._received_at = self._clock()
            return self.token
