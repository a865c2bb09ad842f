"""End to end, cross-site request forgery on the state-changing endpoints (server/csrf.py).

A cross-site `<form enctype="text/plain">` (or form-encoded, or multipart) POST needs no
preflight and the browser attaches the `session` cookie: such a request must never publish,
broadcast or trade. State-changing requests take only JSON bodies (415), and a request
authenticated by the cookie must come from this host or a listed TICKWIRE_CORS_ORIGINS
origin (Origin, else Referer; neither: refused). Bearer clients work from anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from support.e2e import assert_error, fill, http, poll, uid
from support.servers import ServerProcess

EVIL = "https://evil.example"
LISTED = "https://app.example"
FORMS = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
ENDPOINTS = ["/api/publish", "/api/stream/test"]


@pytest.fixture(scope="module")
def listed_server() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_CORS_ORIGINS": f"{LISTED},https://other.example"}).start()
    yield proc
    proc.stop()


@pytest.fixture(params=["star", "listed"])
def any_server(request: pytest.FixtureRequest, server: ServerProcess) -> ServerProcess:
    """The shared server (TICKWIRE_CORS_ORIGINS=*) and one with a list of origins."""
    if request.param == "star":
        return server
    proc: ServerProcess = request.getfixturevalue("listed_server")
    return proc


def _own_origin(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}"  # httpx sends Host: 127.0.0.1:{port}


def _cookie_of(server: ServerProcess, path: str) -> str:
    """A session cookie with the role `path` needs (a publisher's, an admin's)."""
    role = "publisher" if path == "/api/publish" else "admin"
    return f"session={server.token(uid(role), role)}"


def _forged(victim: str) -> bytes:
    """What an attacker's page sends: a fill for another user."""
    return orjson.dumps(fill(victim, "o-forged", 1000, 0.01))


def _post(server: ServerProcess, path: str, body: bytes | None, **headers: str) -> httpx.Response:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return http.post(server.url + path, content=body, headers=named, timeout=10)


def _nothing_published_for(server: ServerProcess, victim: str) -> None:
    answer = poll(server, "orders", server.token(victim)).json()
    assert answer["lastEventId"] is None, answer
    assert answer["events"][0]["data"]["orders"] == [], answer


# -- cross-site with the cookie: refused ----------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("content_type", FORMS)
def test_a_cross_site_form_post_with_the_cookie_is_refused(
    any_server: ServerProcess, path: str, content_type: str
) -> None:
    victim = uid("victim")
    response = _post(
        any_server,
        path,
        _forged(victim),
        Origin=EVIL,
        Content_Type=content_type,
        Cookie=_cookie_of(any_server, path),
    )
    assert_error(response, 403)
    assert "Cross-site request refused" in response.json()["message"]
    _nothing_published_for(any_server, victim)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_cross_site_json_with_the_cookie_is_refused(any_server: ServerProcess, path: str) -> None:
    """A cross-site fetch with JSON needs a preflight, but the server does not rely on the browser."""
    victim = uid("victim")
    response = _post(
        any_server,
        path,
        _forged(victim),
        Origin=EVIL,
        Content_Type="application/json",
        Cookie=_cookie_of(any_server, path),
    )
    assert_error(response, 403)
    _nothing_published_for(any_server, victim)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("origin", ["null", "https://127.0.0.1.evil.example", "file://"])
def test_odd_origins_with_the_cookie_are_refused(server: ServerProcess, path: str, origin: str) -> None:
    response = _post(
        server, path, b"{}", Origin=origin, Content_Type="application/json", Cookie=_cookie_of(server, path)
    )
    assert_error(response, 403)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_the_cookie_without_origin_needs_a_same_site_referer(server: ServerProcess, path: str) -> None:
    victim = uid("victim")
    body = _forged(victim)
    cookie = _cookie_of(server, path)
    json = "application/json"
    assert_error(_post(server, path, body, Content_Type=json, Cookie=cookie), 403)
    assert_error(_post(server, path, body, Content_Type=json, Cookie=cookie, Referer=EVIL + "/page"), 403)
    _nothing_published_for(server, victim)
    same = _post(server, path, body, Content_Type=json, Cookie=cookie, Referer=_own_origin(server) + "/x?y")
    assert same.status_code == 200, same.text


# -- same site with the cookie: JSON only ---------------------------------------------------------------


def test_same_origin_json_with_the_cookie_publishes(any_server: ServerProcess) -> None:
    victim = uid("user")
    response = _post(
        any_server,
        "/api/publish",
        _forged(victim),
        Origin=_own_origin(any_server),
        Content_Type="application/json; charset=utf-8",
        Cookie=_cookie_of(any_server, "/api/publish"),
    )
    assert response.status_code == 200, response.text
    orders = poll(any_server, "orders", any_server.token(victim)).json()["events"][0]["data"]["orders"]
    assert [o["orderId"] for o in orders] == ["o-forged"]
    test = _post(
        any_server,
        "/api/stream/test",
        b'{"message":"hi"}',
        Origin=_own_origin(any_server),
        Content_Type="application/json",
        Cookie=_cookie_of(any_server, "/api/stream/test"),
    )
    assert test.status_code == 200, test.text
    assert test.json()["sent"] is True


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_listed_origin_may_use_the_cookie(listed_server: ServerProcess, path: str) -> None:
    cookie = _cookie_of(listed_server, path)
    body = orjson.dumps(fill(uid("user"), "o1", 1, 2.0))
    ok = _post(listed_server, path, body, Origin=LISTED, Content_Type="application/json", Cookie=cookie)
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == LISTED
    assert ok.headers["access-control-allow-credentials"] == "true"
    refused = _post(listed_server, path, body, Origin=EVIL, Content_Type="application/json", Cookie=cookie)
    assert_error(refused, 403)
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("content_type", [*FORMS, "application/jsonp", "text/json"])
def test_same_origin_bodies_that_are_not_json_get_415(
    server: ServerProcess, path: str, content_type: str
) -> None:
    victim = uid("victim")
    response = _post(
        server,
        path,
        _forged(victim),
        Origin=_own_origin(server),
        Content_Type=content_type,
        Cookie=_cookie_of(server, path),
    )
    body = assert_error(response, 415)
    assert "application/json" in body["message"]
    _nothing_published_for(server, victim)


# -- Bearer: any origin, JSON only ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("origin", [EVIL, None])
def test_bearer_works_from_any_origin(any_server: ServerProcess, path: str, origin: str | None) -> None:
    role = "publisher" if path == "/api/publish" else "admin"
    headers = {"Authorization": f"Bearer {any_server.token(uid(role), role)}"}
    if origin:
        headers["Origin"] = origin
    body = orjson.dumps(fill(uid("user"), "o1", 1, 2.0))
    ok = http.post(
        any_server.url + path, content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert ok.status_code == 200, ok.text
    # The cookie of another user next to the Bearer token changes nothing: the token is used.
    with_cookie = {
        **headers,
        "Content-Type": "application/json",
        "Cookie": f"session={any_server.token('x')}",
    }
    assert http.post(any_server.url + path, content=body, headers=with_cookie).status_code == 200
    assert_error(
        http.post(any_server.url + path, content=body, headers={**headers, "Content-Type": "text/plain"}), 415
    )
    assert_error(http.post(any_server.url + path, content=body, headers=headers), 415)  # a body, no type


def test_a_bodyless_post_needs_no_content_type(server: ServerProcess) -> None:
    admin = {"Authorization": f"Bearer {server.token(uid('root'), 'admin')}", "Origin": EVIL}
    response = http.post(server.url + "/api/stream/test", headers=admin)
    assert response.status_code == 200, response.text
    # ... but a cookie still needs this site's origin.
    cookie = {"Cookie": _cookie_of(server, "/api/stream/test")}
    assert_error(http.post(server.url + "/api/stream/test", headers={**cookie, "Origin": EVIL}), 403)
    own = http.post(server.url + "/api/stream/test", headers={**cookie, "Origin": _own_origin(server)})
    assert own.status_code == 200, own.text


def test_refusals_keep_the_connection_usable_and_are_counted(server: ServerProcess) -> None:
    """The unread body is discarded after the answer (it is never a reset) and the metric counts."""
    big = b"x" * 300_000
    cookie = _cookie_of(server, "/api/publish")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(2):
            refused = client.post(
                "/api/publish",
                content=big,
                headers={"Origin": EVIL, "Cookie": cookie, "Content-Type": "text/plain"},
            )
            assert_error(refused, 403)
            wrong_type = client.post(
                "/api/publish",
                content=big,
                headers={"Authorization": "Bearer x", "Content-Type": "text/plain"},
            )
            assert_error(wrong_type, 415)
        metrics = client.get("/metrics").text
    assert 'tickwire_requests_rejected_total{reason="cross_site"}' in metrics
    assert 'tickwire_requests_rejected_total{reason="content_type"}' in metrics
