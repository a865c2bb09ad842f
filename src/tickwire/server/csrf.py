"""State-changing requests: JSON bodies only, and the session cookie only from this site.

Every request whose method is not GET, HEAD or OPTIONS passes `refusal` in the app's
middleware (server/app.py) before it is routed, so every state-changing endpoint is
covered by being an endpoint: `POST /api/publish`, `POST /api/stream/test`, the demo's
login, logout and orders, and whatever is added later (alert rules, scans).

1. **Origin** (403): when the request's credentials are the `session` cookie (no
   `Authorization: Bearer`), its `Origin`, or without one its `Referer`, must be this host
   (the `Host` header) or a listed TICKWIRE_CORS_ORIGINS origin (`*` lists none). A request
   with the cookie and neither header is refused too: browsers send `Origin` on every
   cross-site POST, PUT, PATCH and DELETE and on same-origin ones made by fetch/XHR and
   forms, so only a client that is not a browser omits it, and such a client sends Bearer.
   A cookie is what a browser attaches by itself to a request another site makes it send;
   a Bearer token is not, so Bearer requests from any origin (other services, bots, the
   CLI) are not checked.
2. **Content type** (415): a request with a body, or declaring a `Content-Type`, must
   declare `application/json`. An HTML form can only send
   `application/x-www-form-urlencoded`, `multipart/form-data` and `text/plain`, and a
   cross-site `fetch` with `application/json` needs a CORS preflight, which only listed
   origins pass with credentials. A request without a body and without a Content-Type
   (a bodyless DELETE, a logout) passes: it has nothing to parse.

Refusals use the SPEC's error shape; the unread body is discarded after the answer
(server/http.py), and `tickwire_requests_rejected{reason="cross_site"|"content_type"}`
counts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from tickwire.config import Settings
from tickwire.errors import show
from tickwire.server.auth import by_cookie, origin_allowed

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON = "application/json"


class Refusal:
    """Why a state-changing request is refused: status, message and metric reason."""

    __slots__ = ("message", "reason", "status")

    def __init__(self, status: int, message: str, reason: str) -> None:
        self.status = status
        self.message = message
        self.reason = reason


def refusal(method: str, headers: Mapping[str, str], settings: Settings) -> Refusal | None:
    """None when the request may go on; else why not (module docstring)."""
    if method in SAFE_METHODS:
        return None
    if by_cookie(headers):
        refused = _cross_site(headers, settings)
        if refused is not None:
            return refused
    return _content_type(headers)


def _cross_site(headers: Mapping[str, str], settings: Settings) -> Refusal | None:
    origin = headers.get("origin")
    if origin is None:
        origin = _referer_origin(headers.get("referer"))
        if origin is None:
            return Refusal(
                403,
                "A request authenticated by the session cookie must carry Origin or Referer "
                "(browsers send them); other clients authenticate with Authorization: Bearer",
                "cross_site",
            )
    if origin_allowed(origin, headers, settings):
        return None
    return Refusal(
        403,
        f"Cross-site request refused: the session cookie is only honoured from this site or a "
        f"listed TICKWIRE_CORS_ORIGINS origin (got Origin {show(origin, 80)}); other clients "
        f"authenticate with Authorization: Bearer",
        "cross_site",
    )


def _referer_origin(referer: str | None) -> str | None:
    """`scheme://host[:port]` of a Referer, None without a usable one."""
    if not referer:
        return None
    try:
        parts = urlsplit(referer)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _content_type(headers: Mapping[str, str]) -> Refusal | None:
    declared = headers.get("content-type")
    if declared is None:
        if not _has_body(headers):
            return None
        return Refusal(415, f"A request body must be JSON: send Content-Type: {JSON}", "content_type")
    media = declared.split(";")[0].strip().lower()
    if media == JSON:
        return None
    return Refusal(415, f"Content-Type must be {JSON} (got {show(declared, 60)})", "content_type")


def _has_body(headers: Mapping[str, str]) -> bool:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return True
    return headers.get("content-length", "0").strip() not in ("0", "")
