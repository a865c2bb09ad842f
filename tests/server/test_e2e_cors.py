"""End to end: CORS preflights and headers (SPEC section 5), with `*` and with a list."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from support.e2e import ALLOW_HEADERS, assert_error, get, http, open_stream, uid
from support.servers import ServerProcess

LISTED = ("https://a.example", "https://b.example")
UNLISTED = "https://evil.example"


def _preflight(server: ServerProcess, path: str, origin: str, method: str = "GET") -> httpx.Response:
    return http.options(
        server.url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
        timeout=10,
    )


def _vary(response_headers: httpx.Headers | dict[str, str]) -> list[str]:
    return [v.strip().lower() for v in response_headers.get("vary", "").split(",") if v.strip()]


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/stream/orders", "GET, OPTIONS"),
        ("/api/stream/prices", "GET, OPTIONS"),
        ("/api/stream/strategies/s1", "GET, OPTIONS"),
        ("/api/stream/alerts/events", "GET, OPTIONS"),
        ("/api/stream/metrics", "GET, OPTIONS"),
        ("/api/publish", "POST, OPTIONS"),
        ("/api/stream/test", "POST, OPTIONS"),
    ],
)
def test_preflight_with_any_origin(server: ServerProcess, path: str, methods: str) -> None:
    response = _preflight(server, path, UNLISTED, "POST" if "POST" in methods else "GET")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == methods
    assert response.headers["access-control-allow-headers"] == ALLOW_HEADERS
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers.get("x-correlation-id")


def test_star_never_comes_with_credentials_on_streams_and_errors(server: ServerProcess) -> None:
    user = uid("cors")
    with open_stream(server, "alerts", server.token(user), headers={"Origin": UNLISTED}) as stream:
        assert stream.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in stream.headers
        assert stream.headers["access-control-allow-methods"] == "GET, OPTIONS"
    response = get(server, "/api/stream/alerts", headers={"Origin": UNLISTED})
    assert_error(response, 401)
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


@pytest.fixture(scope="module")
def listed_server() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_CORS_ORIGINS": ",".join(LISTED), "TICKWIRE_KEEPALIVE_S": "1"})
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("origin", LISTED)
@pytest.mark.parametrize(
    ("path", "methods"), [("/api/stream/orders", "GET, OPTIONS"), ("/api/publish", "POST, OPTIONS")]
)
def test_listed_origin_is_echoed_with_credentials(
    listed_server: ServerProcess, origin: str, path: str, methods: str
) -> None:
    response = _preflight(listed_server, path, origin)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "origin" in _vary(response.headers)
    assert response.headers["access-control-allow-methods"] == methods
    assert response.headers["access-control-allow-headers"] == ALLOW_HEADERS


def test_listed_origin_on_stream_poll_and_error_responses(listed_server: ServerProcess) -> None:
    origin = LISTED[1]
    user = uid("corsl")
    token = listed_server.token(user)
    with open_stream(listed_server, "alerts", token, headers={"Origin": origin}) as stream:
        assert stream.headers["access-control-allow-origin"] == origin
        assert stream.headers["access-control-allow-credentials"] == "true"
        assert "origin" in _vary(stream.headers)
    for response in (
        get(listed_server, "/api/stream/alerts/events", token, headers={"Origin": origin}),
        get(listed_server, "/api/stream/alerts", headers={"Origin": origin}),
    ):
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "origin" in _vary(response.headers)


def test_unlisted_origin_is_not_echoed(listed_server: ServerProcess) -> None:
    user = uid("corsu")
    response = _preflight(listed_server, "/api/stream/orders", UNLISTED)
    assert response.status_code == 200
    for headers in (
        response.headers,
        get(listed_server, "/api/stream/orders", headers={"Origin": UNLISTED}).headers,
    ):
        assert headers.get("access-control-allow-origin") in (None, "null")
        assert headers.get("access-control-allow-origin") != "*"
        assert "access-control-allow-credentials" not in headers
    with open_stream(
        listed_server, "alerts", listed_server.token(user), headers={"Origin": UNLISTED}
    ) as stream:
        assert stream.headers.get("access-control-allow-origin") in (None, "null")
        assert "access-control-allow-credentials" not in stream.headers
