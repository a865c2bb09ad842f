"""End to end: authentication and the JSON error shape of SPEC section 5."""

from __future__ import annotations

import time

import jwt
import pytest

from support.e2e import UNAUTHORIZED_BODY, assert_error, get, http, open_stream, poll, uid
from support.servers import SECRET, ServerProcess

USER_STREAMS = ["orders", "positions", "trading", "ai-decisions", "alerts", "strategies/whatever"]


@pytest.mark.parametrize("stream", USER_STREAMS)
def test_user_stream_without_credentials_is_401_with_the_exact_body(
    server: ServerProcess, stream: str
) -> None:
    response = get(server, f"/api/stream/{stream}")
    assert response.status_code == 401
    assert response.content == UNAUTHORIZED_BODY
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-correlation-id")


def _forged(user: str) -> str:
    return jwt.encode(
        {"sub": user, "exp": int(time.time()) + 600}, "another-secret-" + "x" * 40, algorithm="HS256"
    )


def _unsigned(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 600}, None, algorithm="none")


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda s, u: "not-a-jwt", id="garbage"),
        pytest.param(lambda s, u: s.token(u, ttl=-30), id="expired"),
        pytest.param(lambda s, u: _forged(u), id="forged"),
        pytest.param(lambda s, u: _unsigned(u), id="alg-none"),
        pytest.param(lambda s, u: jwt.encode({"sub": u}, SECRET, algorithm="HS256"), id="no-exp"),
        pytest.param(
            lambda s, u: jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"), id="no-sub"
        ),
        pytest.param(lambda s, u: s.token(u)[:-3] + "AAA", id="bad-signature"),
    ],
)
def test_bad_tokens_are_401(server: ServerProcess, make_token: object) -> None:
    user = uid("bad")
    token = make_token(server, user)  # type: ignore[operator]
    assert_error(get(server, "/api/stream/orders", token), 401)
    assert_error(poll(server, "alerts", token), 401)
    cookie = {"Cookie": f"session={token}"}
    assert_error(get(server, "/api/stream/alerts", headers=cookie), 401)


def test_error_bodies_share_one_shape(server: ServerProcess) -> None:
    user = uid("shape")
    token = server.token(user)
    body = assert_error(get(server, f"/api/stream/strategies/{uid('none')}", token), 404)
    assert body["message"] == "Strategy not found"
    assert_error(get(server, f"/api/stream/trading?userId={uid('other')}", token), 403)
    assert_error(get(server, "/api/stream/no-such-stream", token), 404)
    assert_error(get(server, "/api/stream/orders/extra", token), 404)
    assert_error(get(server, "/api/stream/no-such-stream/events", token), 404)
    assert_error(get(server, "/nothing-here"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/stream/orders"),
        ("POST", "/api/stream/alerts"),
        ("PUT", "/api/stream/prices"),
        ("DELETE", "/api/stream/alerts/events"),
        ("GET", "/api/publish"),
        ("PUT", "/api/publish"),
        ("POST", "/healthz"),
        ("POST", "/metrics"),
        ("POST", "/api/stream/metrics"),
        ("GET", "/api/stream/test"),
    ],
)
def test_wrong_method_is_405_in_the_json_shape(server: ServerProcess, method: str, path: str) -> None:
    response = http.request(method, server.url + path, headers={"Authorization": "Bearer x"}, timeout=10)
    assert_error(response, 405)


def test_given_correlation_id_is_echoed_on_errors_and_generated_otherwise(server: ServerProcess) -> None:
    cid = "req-" + uid("c")
    response = get(server, "/api/stream/orders", headers={"X-Correlation-ID": cid})
    assert_error(response, 401)
    assert response.headers["x-correlation-id"] == cid
    response = http.request("DELETE", server.url + "/api/stream/orders", headers={"X-Correlation-ID": cid})
    assert response.headers["x-correlation-id"] == cid
    response = http.post(server.url + "/api/publish", headers={"X-Correlation-ID": cid}, json={})
    assert_error(response, 401)
    assert response.headers["x-correlation-id"] == cid
    a = get(server, "/api/stream/orders").headers["x-correlation-id"]
    b = get(server, "/api/stream/orders").headers["x-correlation-id"]
    assert a
    assert a != b
    assert get(server, "/healthz", headers={"X-Correlation-ID": cid}).headers["x-correlation-id"] == cid


def test_valid_token_from_cookie_and_bearer_both_work(server: ServerProcess) -> None:
    user = uid("both")
    with open_stream(server, "alerts", server.token(user)) as stream:
        assert stream.events[0].json()["clientId"].startswith(f"{user}-alerts-")
    body = poll(server, "alerts", headers={"Cookie": f"session={server.token(user)}"}).json()
    assert body["recovered"] is True


def test_plain_http_on_the_websocket_endpoint_says_what_to_do(server: ServerProcess) -> None:
    response = get(server, "/api/stream/ws")
    body = assert_error(response, 400)
    assert "WebSocket" in body["message"]
