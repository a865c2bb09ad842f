"""JWT sessions (HS256): from the `session` cookie or `Authorization: Bearer`.

An application can replace token checking with its own session store by passing an
`Authenticator` (e.g. a session id in the cookie looked up in Redis) to `create_app`.

A principal carries its credentials' expiry (`Principal.expires_at`, the JWT's `exp`):
open connections end at it (SPEC 5; core/connection.py) and a long-poll's wait does not
outlive it. An `Authenticator` that returns no expiry gives connections that do not expire.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

import jwt

from tickwire.config import Settings
from tickwire.core.event import USER_ID
from tickwire.core.streams import ANONYMOUS, Principal

ROLES = frozenset({"admin", "publisher"})
Authenticator = Callable[[str], Awaitable[Principal | None]]


def issue_token(secret: str, user: str, roles: tuple[str, ...] = (), ttl_s: int = 3600) -> str:
    """A signed session token for `user`, valid for `ttl_s` seconds."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user, "iat": now, "exp": now + ttl_s}
    if roles:
        claims["roles"] = list(roles)
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(secret: str, token: str) -> Principal | None:
    """The principal of a valid token, None for anything else (expired, forged, garbage)."""
    if not token or len(token) > 8192:
        return None
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not USER_ID.fullmatch(sub):  # it names the user's log and streams
        return None
    roles = claims.get("roles", [])
    if not isinstance(roles, list):
        return None
    expires_at = claims["exp"]  # required; PyJWT also takes a numeric string: RFC 7519 says a number
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        return None
    return Principal(
        sub, frozenset(r for r in roles if isinstance(r, str) and r in ROLES), expires_at=float(expires_at)
    )


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The `Authorization: Bearer` token, None without one."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def cookie_token(headers: Mapping[str, str]) -> str | None:
    """The `session` cookie, None without one."""
    cookie = headers.get("cookie")
    if cookie:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie)
        except CookieError:
            return None
        morsel = jar.get("session")
        if morsel is not None and morsel.value:
            return morsel.value
    return None


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    """The bearer token, else the `session` cookie, else None."""
    return bearer_token(headers) or cookie_token(headers)


def by_cookie(headers: Mapping[str, str]) -> bool:
    """Whether the request's credentials are the session cookie (a browser sends it by itself,
    also on requests another site made it send); a Bearer token is what is used when both are there."""
    return bearer_token(headers) is None and cookie_token(headers) is not None


def origin_allowed(origin: str, headers: Mapping[str, str], settings: Settings) -> bool:
    """Whether `origin` (`scheme://host[:port]`) is this host (the request's Host header) or
    one of TICKWIRE_CORS_ORIGINS (a listed origin: `*` lists none)."""
    if not settings.cors_any and origin in settings.cors_origins:
        return True
    host = headers.get("host")
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return host is not None and bool(netloc) and netloc.lower() == host.lower()


def cookie_allowed(headers: Mapping[str, str], settings: Settings) -> bool:
    """Whether a session cookie on a WebSocket handshake may authenticate it.

    Browsers send cookies on cross-site WebSocket handshakes and CORS does not apply to
    WebSockets, so the cookie counts only when the handshake's Origin is this host or one
    of TICKWIRE_CORS_ORIGINS (a listed origin, never `*`); otherwise the socket is anonymous.
    """
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser: browsers always send Origin on WebSocket handshakes
    return origin_allowed(origin, headers, settings)


def websocket_token(headers: Mapping[str, str], settings: Settings) -> str | None:
    """The handshake's token: Bearer, or the cookie where `cookie_allowed`."""
    if not cookie_allowed(headers, settings):
        return bearer_token(headers)
    return token_from_headers(headers)


def jwt_authenticator(secret: str) -> Authenticator:
    async def authenticate(token: str) -> Principal | None:
        return verify_token(secret, token)

    return authenticate


async def principal_of(headers: Mapping[str, str], authenticate: Authenticator) -> Principal:
    token = token_from_headers(headers)
    if token is None:
        return ANONYMOUS
    return await authenticate(token) or ANONYMOUS


def has_credentials(headers: Mapping[str, str]) -> bool:
    return token_from_headers(headers) is not None
