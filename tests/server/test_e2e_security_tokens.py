"""End to end, security: forged, confused and incomplete JWTs (SPEC 5) are refused everywhere a
token is read: a user stream (Bearer and cookie), publishing, and the WebSocket (handshake and
`auth` message, close 4001). Every bad token claims the admin and publisher roles, so a
verification hole would show as a 200, not as a 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import jwt
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from support.e2e import alert, assert_error, get, post_publish, uid
from support.servers import SECRET, ServerProcess

ROLES = ["admin", "publisher"]
FAKE_PUBLIC_KEY = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
    "-----END PUBLIC KEY-----\n"
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": uid("forger"), "iat": now, "exp": now + 3600, "roles": ROLES}
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _craft(header: dict[str, Any], claims: dict[str, Any], key: bytes | None, digest: Any = None) -> str:
    """A JWT assembled by hand: any header, any claims, an HMAC with `key` (or no signature)."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
    if key is None:
        return signing_input + "."
    mac = hmac.new(key, signing_input.encode(), digest or hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _tampered() -> str:
    """A valid token whose payload was swapped for another user's, keeping the signature."""
    good = jwt.encode(_claims(), SECRET, algorithm="HS256")
    head, _, sig = good.split(".")
    other = _b64(orjson.dumps(_claims(sub="victim")))
    return f"{head}.{other}.{sig}"


SECRET_BYTES = SECRET.encode()
BAD_TOKENS: dict[str, Callable[[], str]] = {
    "alg-none": lambda: _craft({"alg": "none", "typ": "JWT"}, _claims(), None),
    "alg-None": lambda: _craft({"alg": "None", "typ": "JWT"}, _claims(), None),
    "alg-NONE-signed": lambda: _craft({"alg": "NONE"}, _claims(), SECRET_BYTES),
    "hs512-right-secret": lambda: _craft(
        {"alg": "HS512", "typ": "JWT"}, _claims(), SECRET_BYTES, hashlib.sha512
    ),
    "hs384-right-secret": lambda: _craft(
        {"alg": "HS384", "typ": "JWT"}, _claims(), SECRET_BYTES, hashlib.sha384
    ),
    "rs256-header-hmac-signature": lambda: _craft({"alg": "RS256", "typ": "JWT"}, _claims(), SECRET_BYTES),
    "rs256-header-garbage-signature": lambda: _craft({"alg": "RS256"}, _claims(), None) + _b64(b"\x01" * 256),
    "hs256-signed-with-a-public-key": lambda: _craft({"alg": "HS256"}, _claims(), FAKE_PUBLIC_KEY.encode()),
    "es256-header": lambda: _craft({"alg": "ES256"}, _claims(), SECRET_BYTES),
    "no-exp": lambda: jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),
    "expired": lambda: jwt.encode(_claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
    "not-yet-valid": lambda: jwt.encode(_claims(nbf=int(time.time()) + 3600), SECRET, algorithm="HS256"),
    "no-sub": lambda: jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"),
    "empty-sub": lambda: jwt.encode(_claims(sub=""), SECRET, algorithm="HS256"),
    "numeric-sub": lambda: _craft({"alg": "HS256"}, _claims(sub=12345), SECRET_BYTES),
    "sub-with-a-line-break": lambda: jwt.encode(_claims(sub="alice\nbob"), SECRET, algorithm="HS256"),
    "exp-as-a-string": lambda: _craft(
        {"alg": "HS256"}, {**_claims(), "exp": str(int(time.time()) + 3600)}, SECRET_BYTES
    ),
    "wrong-secret": lambda: jwt.encode(_claims(), "another-secret-0123456789abcdef0123", algorithm="HS256"),
    "tampered-payload": _tampered,
    "no-signature": lambda: _craft({"alg": "HS256"}, _claims(), None),
    "not-a-jwt": lambda: "definitely.not.ajwt",
}
PARAMS = [pytest.param(make, id=name) for name, make in BAD_TOKENS.items()]


def _good() -> str:
    return jwt.encode(_claims(), SECRET, algorithm="HS256")


def _ws(server: ServerProcess, token: str | None = None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return connect(
        f"ws://127.0.0.1:{server.port}/api/stream/ws",
        additional_headers=headers,
        subprotocols=[Subprotocol("tickwire.json")],
        proxy=None,
        open_timeout=5,
        close_timeout=2,
    )


def _close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes the socket; its close code."""
    for _ in range(100):
        try:
            ws.recv(timeout=5)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("the server kept the socket open")


# -- the controls: the same paths accept a good token ----------------------------------------------------


def test_a_good_token_is_accepted_everywhere(server: ServerProcess) -> None:
    token = _good()
    response = get(server, "/api/stream/alerts/events", token)
    assert response.status_code == 200, response.text
    assert post_publish(server, alert(uid("ok"), 1), token=token).status_code == 200
    with _ws(server) as ws:
        ws.send(orjson.dumps({"type": "auth", "rid": "a", "token": token}).decode())
        types = []
        while "authenticated" not in types:
            types.append(orjson.loads(ws.recv(timeout=5))["type"])


# -- the bad ones ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", PARAMS)
def test_bad_token_on_a_user_stream_is_401(server: ServerProcess, make: Callable[[], str]) -> None:
    token = make()
    assert_error(get(server, "/api/stream/alerts", token), 401)
    assert_error(get(server, "/api/stream/orders/events", token), 401)
    cookie = get(server, "/api/stream/alerts", headers={"Cookie": f"session={token}"})
    assert_error(cookie, 401)


@pytest.mark.parametrize("make", PARAMS)
def test_bad_token_cannot_publish(server: ServerProcess, make: Callable[[], str]) -> None:
    user = uid("victim")
    assert_error(post_publish(server, alert(user, 1), token=make()), 401)
    assert get(server, "/api/stream/alerts/events", _good_for(user)).json()["events"] == []


def _good_for(user: str) -> str:
    return jwt.encode(_claims(sub=user), SECRET, algorithm="HS256")


@pytest.mark.parametrize("make", PARAMS)
def test_bad_token_in_the_ws_auth_message_closes_4001(server: ServerProcess, make: Callable[[], str]) -> None:
    with _ws(server) as ws:
        ws.send(orjson.dumps({"type": "auth", "rid": "a", "token": make()}).decode())
        assert _close_code(ws) == 4001


@pytest.mark.parametrize("make", PARAMS)
def test_bad_token_at_the_ws_handshake_closes_4001(server: ServerProcess, make: Callable[[], str]) -> None:
    with _ws(server, make()) as ws:
        assert _close_code(ws) == 4001
