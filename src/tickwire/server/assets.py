"""The browser SDK, served in every mode: `/tickwire.js` and `/tickwire-react.js` (SPEC 11).

The files are built from the npm package in `js/` and committed under
`tickwire/static/`, so running the server never needs node. Each is read once, with its
strong `ETag` (a hash of the bytes) and a gzip copy; answers carry `Cache-Control:
no-cache` (browsers keep the file and revalidate it: a `304 Not Modified` on a matching
`If-None-Match`, so an upgraded server is picked up at once), `Content-Type:
text/javascript` and `Access-Control-Allow-Origin: *` (a page on another origin may
import them: they are public code).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tickwire.server.http import CORRELATION_HEADER, error_response

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ASSETS = ("tickwire.js", "tickwire-react.js")
MEDIA_TYPE = "text/javascript; charset=utf-8"
CACHE_CONTROL = "no-cache"
METHODS = "GET, HEAD, OPTIONS"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str


@cache
def load_asset(name: str) -> Asset | None:
    """The file `name` of the static folder with its ETag and gzip copy (None when missing)."""
    path = STATIC_DIR / name
    if name not in ASSETS or not path.is_file():
        return None
    body = path.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, gzip.compress(body, 9, mtime=0), etag)


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` header names `etag` (weak forms and `*` included)."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _endpoint(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        asset = load_asset(name)
        if asset is None:
            return error_response(request, 404, f"{name} is missing from the installation", METHODS)
        gz = "gzip" in request.headers.get("accept-encoding", "").lower()
        etag = asset.etag[:-1] + '-gz"' if gz else asset.etag  # one strong tag per representation
        headers = {
            "ETag": etag,
            "Cache-Control": CACHE_CONTROL,
            "Access-Control-Allow-Origin": "*",
            "X-Content-Type-Options": "nosniff",
            "Vary": "Accept-Encoding",
            CORRELATION_HEADER: getattr(request.state, "correlation_id", ""),
        }
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        if gz:
            headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped if gz else asset.body, 200, headers=headers, media_type=MEDIA_TYPE)

    return serve


def asset_routes() -> list[Route]:
    """`GET /tickwire.js` and `GET /tickwire-react.js` (HEAD too)."""
    return [Route(f"/{name}", _endpoint(name), methods=["GET", "HEAD"]) for name in ASSETS]
