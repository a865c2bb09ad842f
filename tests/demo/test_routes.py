"""The demo routes (tickwire.demo.routes): login, logout, orders and the page, over in-process HTTP."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from demo.helpers import demo_node_settings
from tickwire.demo import create_demo_app
from tickwire.demo.routes import STATIC_FILES, WEB_DIR

Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


PAGE = "http://127.0.0.1"
"""The page's origin: a browser sends it as Origin on the page's POSTs and DELETEs."""


def in_app(scenario: Scenario) -> None:
    """Run `scenario` against a demo app in-process (the node and its loops start with the first
    request), as the page does: from the page's origin."""

    async def main() -> None:
        app = create_demo_app(demo_node_settings())
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url=PAGE, headers={"Origin": PAGE}
            ) as client:
                await scenario(client)
        finally:
            await app.state.node.stop()

    asyncio.run(main())


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"error", "message", "statusCode"}
    assert body["statusCode"] == response.status_code
    return response.status_code, body["error"], body["message"]


def test_login_sets_an_http_only_session_cookie() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post("/api/login", json={"user": "alice"})
        assert response.status_code == 200
        # Who logged in, and never the token: a script that could read it would defeat HttpOnly.
        assert response.json() == {"userId": "alice", "roles": [], "strategies": ["momentum-alice"]}
        cookie = response.headers["set-cookie"]
        token = cookie.removeprefix("session=").split(";")[0]
        assert token.count(".") == 2 and token not in response.text
        for attribute in ("HttpOnly", "Path=/", "SameSite=lax"):
            assert attribute in cookie
        me = await client.get("/api/me")
        assert me.json() == {"userId": "alice", "roles": [], "strategies": ["momentum-alice"]}
        admin = (await client.post("/api/login", json={"user": "admin"})).json()
        assert admin == {"userId": "admin", "roles": ["admin"], "strategies": ["momentum-admin"]}

    in_app(scenario)


def test_login_refuses_unknown_users_and_bad_bodies() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        status, error, message = error_of(await client.post("/api/login", json={"user": "mallory"}))
        assert (status, error) == (400, "Bad Request")
        assert "alice, bob, admin" in message
        assert error_of(await client.post("/api/login", json=["alice"]))[2] == "Body must be a JSON object"
        bad = await client.post("/api/login", content=b"{", headers={"Content-Type": "application/json"})
        assert error_of(bad)[2] == "Body is not valid JSON"
        form = await client.post(
            "/api/login", content=b"user=alice", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert error_of(form)[:2] == (415, "Unsupported Media Type")
        assert "application/json" in error_of(form)[2]
        huge = await client.post("/api/login", json={"user": "x" * 20_000})
        assert error_of(huge)[0] == 413
        wrong = await client.get("/api/login")
        assert error_of(wrong) == (405, "Method Not Allowed", "Method not allowed: use POST")
        assert wrong.headers["allow"] == "POST, OPTIONS"

    in_app(scenario)


def test_logout_and_me() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        assert error_of(await client.get("/api/me")) == (401, "Unauthorized", "No valid session found")
        await client.post("/api/login", json={"user": "bob"})
        assert (await client.get("/api/me")).status_code == 200
        response = await client.post("/api/logout")
        assert response.status_code == 200
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert (await client.get("/api/me")).status_code == 401
        forged = await client.get("/api/me", headers={"Authorization": "Bearer not-a-token"})
        assert error_of(forged) == (401, "Unauthorized", "Invalid or expired session")

    in_app(scenario)


def test_place_and_cancel_orders_over_http() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        anonymous = await client.post("/api/orders", json={"symbol": "AAPL", "side": "buy", "qty": 1})
        assert error_of(anonymous)[0] == 401
        await client.post("/api/login", json={"user": "alice"})
        limit = {"symbol": "AAPL", "side": "buy", "qty": 3, "type": "limit", "limitPrice": 1}
        created = await client.post("/api/orders", json=limit)
        assert created.status_code == 201
        order = created.json()
        assert order["status"] == "new" and order["limitPrice"] == 1.0
        url = f"/api/orders/{order['orderId']}"
        await client.post("/api/login", json={"user": "bob"})
        assert error_of(await client.delete(url))[0] == 404
        await client.post("/api/login", json={"user": "alice"})
        canceled = await client.delete(url)
        assert canceled.status_code == 200
        assert canceled.json()["status"] == "canceled" and canceled.json()["reason"] == "user_requested"
        status, error, message = error_of(await client.delete(url))
        assert (status, error) == (409, "Conflict") and "already canceled" in message
        market = await client.post("/api/orders", json={"symbol": "MSFT", "side": "sell", "qty": 2})
        assert market.status_code == 201 and market.json()["type"] == "market"

    in_app(scenario)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"symbol": "AAPL", "side": "buy"}, "Missing qty"),
        ({"side": "buy", "qty": 1}, "Missing symbol"),
        ({"symbol": "AAPL", "side": "buy", "qty": 1, "price": 3}, "Unknown field(s) price"),
        ({"symbol": "AAPL", "side": "short", "qty": 1}, "side must be buy or sell"),
        ({"symbol": "AAPL", "side": "buy", "qty": 0}, "qty must be a whole number"),
        (
            {"symbol": "AAPL", "side": "buy", "qty": 1, "type": "limit"},
            "limitPrice must be a positive number",
        ),
        ({"symbol": "XXX", "side": "buy", "qty": 1}, "symbol must be one of"),
    ],
)
def test_order_validation_messages(body: dict[str, Any], message: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        await client.post("/api/login", json={"user": "alice"})
        status, _error, text = error_of(await client.post("/api/orders", json=body))
        assert status == 400
        assert message in text

    in_app(scenario)


def test_the_page_and_its_static_files() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/static/app.js" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for name, media_type in STATIC_FILES.items():
            response = await client.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == media_type
            assert response.headers["x-content-type-options"] == "nosniff"
        for name in ("index.html", "..%2fdemo%2fapp.py", "app.jsx"):
            assert (await client.get(f"/static/{name}")).status_code == 404, name
        assert error_of(await client.post("/"))[0] == 405

    in_app(scenario)


def test_login_logout_and_orders_refuse_cross_site_requests_with_the_cookie() -> None:
    """A cross-site form (text/plain, form-encoded) or fetch cannot trade with the user's cookie."""
    order = {"symbol": "AAPL", "side": "buy", "qty": 1}

    async def scenario(client: httpx.AsyncClient) -> None:
        await client.post("/api/login", json={"user": "alice"})
        created = await client.post("/api/orders", json={**order, "type": "limit", "limitPrice": 1})
        assert created.status_code == 201
        url = f"/api/orders/{created.json()['orderId']}"
        evil = {"Origin": "https://evil.example"}
        for form in ("text/plain", "application/x-www-form-urlencoded"):
            forged = await client.post(
                "/api/orders",
                content=b'{"symbol":"AAPL","side":"buy","qty":1}',
                headers={**evil, "Content-Type": form},
            )
            assert error_of(forged)[:2] == (403, "Forbidden")
        assert error_of(await client.post("/api/orders", json=order, headers=evil))[0] == 403
        assert error_of(await client.delete(url, headers=evil))[0] == 403
        assert error_of(await client.post("/api/logout", headers=evil))[0] == 403
        relogin = await client.post("/api/login", json={"user": "bob"}, headers=evil)
        assert error_of(relogin)[0] == 403  # logged in: the cookie is there, so the origin counts
        # Without Origin (nor Referer) the cookie is not honoured for a change either.
        request = client.build_request("POST", "/api/orders", json=order)
        del request.headers["origin"]
        assert error_of(await client.send(request))[0] == 403
        # From the page: JSON only.
        plain = await client.post("/api/orders", content=b"{}", headers={"Content-Type": "text/plain"})
        assert error_of(plain)[:2] == (415, "Unsupported Media Type")
        assert (await client.get("/api/me")).json()["userId"] == "alice"  # nothing changed
        assert (await client.delete(url)).status_code == 200
        logout = await client.post("/api/logout", headers={"Content-Type": "application/json"})
        assert logout.status_code == 200

    in_app(scenario)


def test_login_without_a_session_refuses_forms() -> None:
    """No cookie yet: a cross-site form cannot log the browser in as someone else (login CSRF)."""

    async def scenario(client: httpx.AsyncClient) -> None:
        for form in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"):
            response = await client.post(
                "/api/login",
                content=b'{"user":"bob"}',
                headers={"Origin": "https://evil.example", "Content-Type": form},
            )
            assert error_of(response)[0] == 415
            assert "set-cookie" not in response.headers

    in_app(scenario)


APP_JS = WEB_DIR / "app.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's fetch helper")
def test_the_page_sends_json_and_never_handles_the_token() -> None:
    """Run app.js's `api()` under node with a recording `fetch`: every request that changes state
    declares JSON and relies on the cookie (same-origin credentials, no Authorization)."""
    source = APP_JS.read_text()
    start = source.index("async function api(")
    end = source.index("\n}\n", start) + 3
    script = (
        "const calls = [];\n"
        "globalThis.fetch = async (path, init) => { calls.push({ path, ...init });"
        " return { ok: true, status: 200, json: async () => ({}) }; };\n"
        + source[start:end]
        + "(async () => {\n"
        '  await api("POST", "/api/login", { user: "alice" });\n'
        '  await api("POST", "/api/logout");\n'
        '  await api("POST", "/api/orders", { symbol: "AAPL", side: "buy", qty: 1 });\n'
        '  await api("DELETE", "/api/orders/o1");\n'
        '  await api("GET", "/api/me");\n'
        "  console.log(JSON.stringify(calls));\n"
        "})();\n"
    )
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    calls = orjson.loads(out.stdout)
    assert [c["method"] for c in calls] == ["POST", "POST", "POST", "DELETE", "GET"]
    for call in calls:
        assert call["credentials"] == "same-origin"
        assert "Authorization" not in call["headers"]
        if call["method"] != "GET":
            assert call["headers"] == {"Content-Type": "application/json"}, call
    assert orjson.loads(calls[0]["body"]) == {"user": "alice"}
    for name in ("app.js", "tickwire.js"):  # nothing on the page reads or sends a token
        text = (WEB_DIR / name).read_text()
        assert ".token" not in text and "Bearer" not in text, name
