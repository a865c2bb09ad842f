"""`/tickwire.js` and `/tickwire-react.js` are served by every server, in demo mode and
not, with text/javascript, an ETag (304 on If-None-Match), Cache-Control and gzip; they are
the committed build of js/ (make test checks that it equals a fresh build)."""

from __future__ import annotations

import httpx
import pytest

from support.servers import ServerProcess
from tickwire.server.assets import ASSETS, STATIC_DIR


@pytest.mark.parametrize("env", [{}, {"TICKWIRE_DEMO": "1"}], ids=["plain", "demo"])
def test_sdk_modules_are_served_with_caching_headers(env: dict[str, str]) -> None:
    server = ServerProcess(env).start()
    try:
        for name in ASSETS:
            url = f"{server.url}/{name}"
            plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
            assert plain.status_code == 200, name
            assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
            assert plain.headers["cache-control"] == "no-cache"
            assert plain.headers["access-control-allow-origin"] == "*"
            assert plain.content == (STATIC_DIR / name).read_bytes()
            etag = plain.headers["etag"]
            assert etag.startswith('"') and etag.endswith('"')
            again = httpx.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
            assert again.status_code == 304
            assert again.content == b""
            assert again.headers["etag"] == etag
            zipped = httpx.get(url, headers={"Accept-Encoding": "gzip"})
            assert zipped.headers["content-encoding"] == "gzip"
            assert zipped.headers["etag"] != etag  # another representation, another strong tag
            assert zipped.content == plain.content  # httpx decodes it
            assert httpx.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
            assert httpx.head(url).status_code == 200
            assert httpx.post(url, json={}).status_code == 405
        react = (STATIC_DIR / "tickwire-react.js").read_text()
        assert 'from "react"' in react and 'from "./tickwire.js"' in react
        core = (STATIC_DIR / "tickwire.js").read_text().splitlines()
        assert not [line for line in core if line.startswith("import ")]  # no runtime dependency
    finally:
        server.stop()
