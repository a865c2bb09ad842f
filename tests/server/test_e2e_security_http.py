"""End to end, security: the demo's session cookie flags, and CORS never pairing
`Access-Control-Allow-Origin: *` with credentials (SPEC 5), whatever the configuration."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from websockets.sync.client import connect
from websockets.typing import Origin, Subprotocol

from support.e2e import alert, get, http, open_stream, post_publish, uid
from support.e2e_client import SSEClient
from support.servers import ServerProcess

LISTED = "https://app.example"
ORIGINS = [LISTED, "https://evil.example", "null", "*", "https://app.example.evil.example"]


def _demo(env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_DEMO": "1", **(env or {})})
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def demo_server() -> Iterator[ServerProcess]:
    """The demo; uvicorn trusts X-Forwarded-Proto from the loopback (its default proxy list)."""
    yield from _demo()


@pytest.fixture(scope="module")
def untrusting_demo_server() -> Iterator[ServerProcess]:
    """The demo behind a proxy at another address: a loopback client's X-Forwarded-Proto is ignored."""
    yield from _demo({"FORWARDED_ALLOW_IPS": "192.0.2.10"})


def _cookie_attributes(response: httpx.Response) -> tuple[str, dict[str, str]]:
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith("session=")]
    assert len(cookies) == 1, response.headers
    value, *attributes = (part.strip() for part in cookies[0].split(";"))
    parsed = {}
    for attribute in attributes:
        name, _, setting = attribute.partition("=")
        parsed[name.lower()] = setting.lower()
    return value.removeprefix("session="), parsed


def _login(server: ServerProcess, headers: dict[str, str] | None = None) -> httpx.Response:
    response = http.post(server.url + "/api/login", json={"user": "alice"}, headers=headers or {})
    assert response.status_code == 200, response.text
    return response


# -- the session cookie ---------------------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_lax(demo_server: ServerProcess) -> None:
    token, attributes = _cookie_attributes(_login(demo_server))
    assert token
    assert "httponly" in attributes
    assert attributes["samesite"] == "lax"
    assert attributes["path"] == "/"
    assert "secure" not in attributes  # plain http: a Secure cookie would never be sent back
    logout = http.post(demo_server.url + "/api/logout")
    _, cleared = _cookie_attributes(logout)
    assert cleared["max-age"] == "0"
    assert "httponly" in cleared
    assert cleared["samesite"] == "lax"


def test_session_cookie_is_secure_behind_an_https_proxy(demo_server: ServerProcess) -> None:
    behind_tls = {"X-Forwarded-Proto": "https"}
    _, attributes = _cookie_attributes(_login(demo_server, behind_tls))
    assert "secure" in attributes
    assert "httponly" in attributes
    assert attributes["samesite"] == "lax"
    _, cleared = _cookie_attributes(http.post(demo_server.url + "/api/logout", headers=behind_tls))
    assert "secure" in cleared
    _, plain = _cookie_attributes(_login(demo_server, {"X-Forwarded-Proto": "http"}))
    assert "secure" not in plain


def test_an_untrusted_peer_cannot_choose_the_scheme(untrusting_demo_server: ServerProcess) -> None:
    _, attributes = _cookie_attributes(_login(untrusting_demo_server, {"X-Forwarded-Proto": "https"}))
    assert "secure" not in attributes
    assert "httponly" in attributes


def test_the_page_flow_works_with_the_cookie_alone(demo_server: ServerProcess) -> None:
    """What the demo page does, over real sockets: log in (the answer holds no token), stream
    and trade with the HttpOnly cookie only, from the page's origin, with JSON requests."""
    page = demo_server.url
    with httpx.Client(base_url=page, headers={"Origin": page}, timeout=10) as browser:
        login = browser.post("/api/login", json={"user": "alice"})
        assert login.status_code == 200, login.text
        assert login.json() == {"userId": "alice", "roles": [], "strategies": ["momentum-alice"]}
        token = browser.cookies["session"]
        assert token not in login.text
        cookie = f"session={token}"
        with SSEClient(page, "/api/stream/orders", cookie=cookie) as stream:
            assert stream.status == 200
        with connect(
            f"ws://127.0.0.1:{demo_server.port}/api/stream/ws",
            additional_headers={"Cookie": cookie},
            origin=Origin(page),
            subprotocols=[Subprotocol("tickwire.json")],
            proxy=None,
            open_timeout=5,
        ) as ws:  # the page's WebSocket: same origin, the cookie authenticates the handshake
            ws.send(
                orjson.dumps({"type": "subscribe", "rid": "1", "streams": [{"stream": "orders"}]}).decode()
            )
            answers = [orjson.loads(ws.recv(timeout=5)) for _ in range(2)]
            assert answers[-1] == {
                "type": "subscribed",
                "v": 1,
                "rid": "1",
                "streams": [{"stream": "orders", "recovered": True}],
            }
        json = {"Content-Type": "application/json"}
        order = {"symbol": "AAPL", "side": "buy", "qty": 1, "type": "limit", "limitPrice": 1}
        created = browser.post("/api/orders", json=order)
        assert created.status_code == 201, created.text
        cancel = browser.request("DELETE", f"/api/orders/{created.json()['orderId']}", headers=json)
        assert cancel.status_code == 200, cancel.text
        assert browser.post("/api/logout", headers=json).status_code == 200


# -- CORS -------------------------------------------------------------------------------------------------


def _cors_server(origins: str) -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_CORS_ORIGINS": origins, "TICKWIRE_KEEPALIVE_S": "1"})
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def listed_server() -> Iterator[ServerProcess]:
    yield from _cors_server(LISTED)


@pytest.fixture(scope="module")
def star_in_list_server() -> Iterator[ServerProcess]:
    """A list that also holds `*`: any origin, so never credentials, even for the listed one."""
    yield from _cors_server(f"{LISTED},*")


def _answers(server: ServerProcess, origin: str) -> list[tuple[str, httpx.Headers | dict[str, str]]]:
    """The headers of every kind of answer, for a request from `origin` carrying a cookie."""
    user = uid("cors")
    token = server.token(user)
    cookie = {"Origin": origin, "Cookie": f"session={token}"}
    out: list[tuple[str, httpx.Headers | dict[str, str]]] = []
    for method, path in (("GET", "/api/stream/orders"), ("POST", "/api/publish"), ("GET", "/metrics")):
        preflight = http.options(
            server.url + path,
            headers={"Origin": origin, "Access-Control-Request-Method": method},
        )
        out.append((f"preflight {path}", preflight.headers))
    out.append(("401", get(server, "/api/stream/orders", headers={"Origin": origin}).headers))
    out.append(("404", get(server, "/api/stream/nope", headers=cookie).headers))
    out.append(("poll", get(server, "/api/stream/alerts/events", headers=cookie).headers))
    out.append(("json metrics", get(server, "/api/stream/metrics", headers=cookie).headers))
    publisher = server.token(uid("p"), "publisher")
    out.append(
        ("publish", post_publish(server, alert(user, 1), publisher, headers={"Origin": origin}).headers)
    )
    big = post_publish(server, None, publisher, raw=b"x" * 2_000_000, headers={"Origin": origin})
    assert big.status_code == 413
    out.append(("413", big.headers))
    with open_stream(server, "alerts", headers=cookie) as stream:
        out.append(("sse", stream.headers))
    return out


def _assert_never_star_with_credentials(
    answers: list[tuple[str, httpx.Headers | dict[str, str]]], origin: str, credentials_for: str | None
) -> None:
    for what, headers in answers:
        allow = headers.get("access-control-allow-origin")
        credentials = headers.get("access-control-allow-credentials")
        assert not (allow == "*" and credentials is not None), (what, headers)
        if origin == credentials_for:
            assert (allow, credentials) == (origin, "true"), (what, headers)
            assert "origin" in headers.get("vary", "").lower(), (what, headers)
        else:
            assert credentials is None, (what, headers)
            assert allow in (None, "*"), (what, headers)


@pytest.mark.parametrize("origin", ORIGINS)
def test_star_never_allows_credentials(server: ServerProcess, origin: str) -> None:
    answers = _answers(server, origin)
    _assert_never_star_with_credentials(answers, origin, None)
    assert all(headers.get("access-control-allow-origin") == "*" for _, headers in answers)


@pytest.mark.parametrize("origin", ORIGINS)
def test_a_list_echoes_only_listed_origins_with_credentials(
    listed_server: ServerProcess, origin: str
) -> None:
    answers = _answers(listed_server, origin)
    _assert_never_star_with_credentials(answers, origin, LISTED)
    if origin != LISTED:
        assert all(headers.get("access-control-allow-origin") is None for _, headers in answers)


@pytest.mark.parametrize("origin", ORIGINS)
def test_a_list_with_star_never_allows_credentials(star_in_list_server: ServerProcess, origin: str) -> None:
    answers = _answers(star_in_list_server, origin)
    _assert_never_star_with_credentials(answers, origin, None)
    assert all(headers.get("access-control-allow-origin") == "*" for _, headers in answers)
