"""Fuzzing of the HTTP endpoints of one real server (tests/fuzz/conftest.py: one server for
this module; a bystander client that must still be served after every test; a server log
that must hold no error when the module ends).

    resume ids ........ Last-Event-ID, ?lastEventId= on SSE; ?after= on polls
    query strings ..... symbols, limit, wait, userId, lastEventId, anything else, raw bytes
    paths ............. any stream path under the prefix
    headers ........... Authorization, Cookie, Origin, Accept-Encoding, X-Correlation-ID
    publish bodies .... JSON of every shape, deep nesting, huge numbers, NaN-like literals,
                        invalid UTF-8, duplicated keys; the admin test broadcast's bodies

No answer is a 5xx; an error has the SPEC 5 shape; a stream that opens starts with
`connected`, and a resume either replays or says `stream:reset` with a known reason.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import jwt
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from support.e2e import PREFIX, REASONS, http, publish, raw_http
from support.e2e_client import SSEClient
from support.fuzzing import (
    Nested,
    budget,
    event_ids,
    json_text,
    nasty_strings,
    publish_bodies,
    stream_paths,
    texts,
)
from support.servers import SECRET, ServerProcess
from tickwire.server.auth import issue_token

SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
RESET_REASONS = {"unknown_epoch", "history_trimmed", "unknown_position", "malformed_id"}
USER = "fz"

# -- what a client may send -------------------------------------------------------------------


def header_text(value: str) -> str:
    """A header value as a client's bytes (UTF-8, read as latin-1), without the control
    characters HTTP forbids there (the HTTP parser refuses those before tickwire sees them)."""
    raw = value.encode("utf-8", "surrogatepass").decode("latin-1")
    return "".join(c for c in raw if c == "\t" or " " <= c != "\x7f")


header_values = st.one_of(texts, st.binary(max_size=80).map(lambda b: b.decode("latin-1"))).map(header_text)


def query_value(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


query_values = st.one_of(
    texts.map(query_value),
    st.sampled_from(["%", "%z", "%ff%fe", "%00", "a+b", "%2C%2C", "+", "&", "="]),
)
query_names = st.sampled_from(
    ["symbols", "limit", "wait", "userId", "lastEventId", "after", "delta", "x", ""]
)
queries = st.lists(st.tuples(query_names, query_values), max_size=5).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
)


@pytest.fixture(scope="module")
def tokens(fuzz_server: ServerProcess) -> dict[str, str]:
    return {
        "user": fuzz_server.token(USER),
        "other": fuzz_server.token("fz-other"),
        "admin": fuzz_server.token("fz-admin", "admin"),
        "publisher": fuzz_server.token("fz-pub", "publisher"),
    }


def authorizations(tokens: dict[str, str]) -> st.SearchStrategy[str]:
    valid = tokens["user"]
    publisher = tokens["publisher"]
    expired = issue_token(SECRET, USER, (), -10)
    forged = jwt.encode(
        {"sub": USER, "exp": int(time.time()) + 600}, "another-secret-" * 3, algorithm="HS256"
    )
    none_alg = jwt.encode({"sub": USER, "exp": int(time.time()) + 600}, None, algorithm="none")
    return st.one_of(
        st.sampled_from(
            [
                f"Bearer {valid}",
                f"Bearer {publisher}",
                f"bearer   {valid}  ",
                f"Bearer {valid}x",
                f"Bearer {expired}",
                f"Bearer {forged}",
                f"Bearer {none_alg}",
                f"Basic {valid}",
                "Bearer",
                "Bearer ",
                f"Bearer {'x' * 9000}",
            ]
        ),
        header_values,
        header_values.map(lambda v: "Bearer " + v),
    )


@pytest.fixture(scope="module")
def known_ids(fuzz_server: ServerProcess) -> list[str]:
    """Real ids of the fuzzed server: resumable ones, next to the fuzzed ones."""
    items = [
        {"type": "alert:new", "user": USER, "data": {"message": "m1"}},
        {
            "type": "order:update",
            "user": USER,
            "data": {"orderId": "o1", "symbol": "FZ", "side": "buy", "qty": 1},
        },
        {"type": "price:update", "data": {"symbol": "FZ", "price": 1.5}},
        {"type": "agent:status", "data": {"agentId": "fz", "state": "running"}},
    ]
    return publish(fuzz_server, *items)


def resume_ids(known: list[str]) -> st.SearchStrategy[str]:
    def mutate(pair: tuple[str, int, str]) -> str:
        text, at, char = pair
        at %= len(text) + 1
        return text[:at] + char + text[at + 1 :]

    return st.one_of(
        event_ids,
        st.sampled_from(known),
        st.tuples(
            st.sampled_from(known), st.integers(0, 60), st.sampled_from(["0", "z", "Z", "", "-", "~"])
        ).map(mutate),
    ).map(header_text)


# -- what the server must answer --------------------------------------------------------------


def check_answer(status: int, headers: dict[str, str], body: bytes) -> None:
    """Not a 5xx; a JSON error in the SPEC 5 shape, with a correlation id."""
    assert status < 500, (status, body[:300])
    if status >= 400 and headers.get("content-type", "").startswith("application/json"):
        error = orjson.loads(body)
        assert set(error) == {"error", "message", "statusCode"}, error
        assert error["statusCode"] == status and error["error"] == REASONS.get(status, error["error"]), error
        assert error["message"], error
        assert headers.get("x-correlation-id"), headers


@contextlib.contextmanager
def request(
    server: ServerProcess, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> Iterator[SSEClient]:
    """One request over a raw socket (no client-side validation of what is sent)."""
    client = SSEClient(server.url, path, headers=headers, timeout=5, method=method)
    try:
        yield client
    finally:
        client.close()


def stream_start(client: SSEClient) -> list[Any]:
    """An SSE answer's first events (connected, then a reset, a snapshot or a replay)."""
    assert client.headers.get("content-type", "").startswith("text/event-stream"), client.headers
    events = client.read_until(2, 0.5)
    assert events and events[0].event == "connected", events
    if len(events) > 1 and events[1].event == "stream:reset":
        data = events[1].json()
        assert data["recovered"] is False and data["reason"] in RESET_REASONS, data
    assert all(e.event != "stream:reset" for e in client.events[2:]), client.events
    return events


def answer(client: SSEClient) -> tuple[int, dict[str, str], bytes]:
    if client.status == 200 and client.headers.get("content-type", "").startswith("text/event-stream"):
        stream_start(client)
        return client.status, client.headers, b""
    if client.headers.get("content-length") != "0":
        with contextlib.suppress(orjson.JSONDecodeError):
            client.body_json(timeout=5)
    check_answer(client.status, client.headers, client.body)
    return client.status, client.headers, client.body


# -- resume ids ---------------------------------------------------------------------------------


@budget(60)
@given(
    data=st.data(),
    how=st.sampled_from(["header", "query"]),
    path=st.sampled_from(["orders", "alerts", "prices"]),
)
@example(data=None, how="header", path="orders")
def test_any_resume_id_replays_or_resets(
    fuzz_server: ServerProcess, known_ids: list[str], tokens: dict[str, str], data: Any, how: str, path: str
) -> None:
    last = data.draw(resume_ids(known_ids), label="id") if data is not None else "1735819800000-" + "z" * 40
    headers = {"Authorization": f"Bearer {tokens['user']}"}
    if how == "header":
        headers["Last-Event-ID"] = last
        target = f"{PREFIX}/{path}"
    else:
        target = f"{PREFIX}/{path}?lastEventId={query_value(last)}"
    with request(fuzz_server, target, headers) as client:
        assert client.status == 200, (client.status, client.body[:200])
        stream_start(client)


@budget(60)
@given(
    data=st.data(),
    path=st.sampled_from(["orders", "alerts", "prices", "agents", "trading"]),
    limit=st.one_of(st.none(), texts, st.sampled_from(["0", "1", "1000", "1001", "1e2", "1_0", "\u0665"])),
    wait=st.one_of(st.none(), texts, st.sampled_from(["0", "0.1", "0.2", "0.3", "nan", "inf", "-0", "1e-9"])),
)
def test_any_poll_parameters(
    fuzz_server: ServerProcess,
    known_ids: list[str],
    tokens: dict[str, str],
    data: Any,
    path: str,
    limit: str | None,
    wait: str | None,
) -> None:
    after = data.draw(st.one_of(st.none(), resume_ids(known_ids)), label="after")
    params = [(k, v) for k, v in (("after", after), ("limit", limit), ("wait", wait)) if v is not None]
    query = "&".join(f"{k}={query_value(v)}" for k, v in params)
    with request(
        fuzz_server, f"{PREFIX}/{path}/events?{query}", {"Authorization": f"Bearer {tokens['user']}"}
    ) as c:
        status, _, body = answer(c)
    assert status in (200, 400), (status, body[:200])
    if status == 200:
        polled = orjson.loads(body)
        assert set(polled) >= {"events", "lastEventId", "recovered"}, polled
        if polled["recovered"] is False:
            assert polled["reason"] in RESET_REASONS, polled
        for event in polled["events"]:
            assert set(event) >= {"event", "id", "data"}, event


# -- query strings and paths --------------------------------------------------------------------


@budget(80)
@given(
    path=st.one_of(
        st.sampled_from(["prices", "orders", "trading", "alerts", "agents", "strategies/s1", "ai-decisions"]),
        stream_paths.map(lambda p: quote(p.encode("utf-8", "surrogatepass"), safe="/")),
    ),
    query=st.one_of(queries, st.binary(max_size=60).map(lambda b: quote(b, safe="=&%,"))),
    events=st.booleans(),
)
@example(path="prices", query="symbols=" + ",".join(f"S{i}" for i in range(201)), events=False)
@example(path="prices", query="symbols=" + "A" * 5000, events=False)
@example(path="trading", query="userId=fz-other", events=False)
@example(path="trading", query="userId=%ff", events=True)
@example(path="strategies/%2e%2e", query="", events=False)
@example(path="test", query="", events=False)
@example(path="ws", query="", events=False)
def test_any_query_string_and_path(
    fuzz_server: ServerProcess, tokens: dict[str, str], path: str, query: str, events: bool
) -> None:
    target = f"{PREFIX}/{path}{'/events' if events else ''}?{query}"
    with request(fuzz_server, target, {"Authorization": f"Bearer {tokens['user']}"}) as client:
        status, _, body = answer(client)
    assert status in (200, 400, 401, 403, 404, 405), (status, body[:200])


# -- headers ------------------------------------------------------------------------------------


@budget(80)
@given(
    data=st.data(),
    target=st.sampled_from(["sse-orders", "sse-prices", "poll", "metrics", "options", "publish"]),
)
def test_any_headers(fuzz_server: ServerProcess, tokens: dict[str, str], data: Any, target: str) -> None:
    names = st.sampled_from(["Authorization", "Cookie", "Origin", "Accept-Encoding", "X-Correlation-ID"])
    values = {
        "Authorization": authorizations(tokens),
        "Cookie": st.one_of(
            header_values,
            st.sampled_from(
                [f"session={tokens['user']}", f'session="{tokens["user"]}"', "session=", "a=b; session"]
            ),
            authorizations(tokens).map(lambda v: "session=" + v.removeprefix("Bearer ")),
        ),
        "Origin": st.one_of(
            header_values, st.sampled_from(["null", "http://evil.example", "http://[::1", "*"])
        ),
        "Accept-Encoding": st.one_of(
            header_values,
            st.sampled_from(["gzip", "gzip;q=0", "GZIP;q=0.0001", "gzip;q=nan", "br, gzip;q=1e999"]),
        ),
        "X-Correlation-ID": st.one_of(
            header_values, st.sampled_from(["ok-id", "a" * 128, "a" * 129, "x y", "\xff", "a\tb"])
        ),
    }
    chosen = data.draw(st.lists(names, unique=True, max_size=5), label="headers")
    headers = {name: data.draw(values[name], label=name) for name in chosen}
    if target in ("sse-orders", "sse-prices"):
        with request(fuzz_server, f"{PREFIX}/{target.removeprefix('sse-')}", headers) as client:
            status, answered, _ = answer(client)
    else:
        method, path, body = {
            "poll": ("GET", f"{PREFIX}/alerts/events", b""),
            "metrics": ("GET", f"{PREFIX}/metrics", b""),
            "options": ("OPTIONS", "/api/publish", b""),
            "publish": (
                "POST",
                "/api/publish",
                b'{"type":"agent:status","data":{"agentId":"fz-h","state":"on"}}',
            ),
        }[target]
        head = {"Host": f"127.0.0.1:{fuzz_server.port}", **headers, "Content-Length": str(len(body))}
        if body:
            head["Content-Type"] = "application/json"
        raw = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
        status, answered, content = raw_http(fuzz_server, raw.encode("latin-1") + body)
        check_answer(status, answered, content)
    assert status in (200, 400, 401, 403), status
    # the correlation id answered is the caller's when it is sane, else a fresh one: never junk
    answered_id = answered.get("x-correlation-id", "")
    assert SANE_ID.fullmatch(answered_id), answered
    given_id = headers.get("X-Correlation-ID", "").strip(" \t")
    if SANE_ID.fullmatch(given_id):
        assert answered_id == given_id, (given_id, answered_id)


# -- publish bodies -------------------------------------------------------------------------------


def post(
    server: ServerProcess, path: str, body: bytes, token: str, content_type: str = "application/json"
) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    return http.post(server.url + path, content=body, headers=headers, timeout=15)


def items_in(body: Any) -> int:
    return len(body) if isinstance(body, list) else 1


@budget(100)
@given(publish_bodies)
@example({"type": "alert:new", "user": USER, "data": {"message": "m", "n": Nested(300)}})
@example({"type": "agent:status", "data": {"agentId": "fz", "n": Nested(300)}})
@example({"type": "price:update", "data": {"symbol": "FZ", "price": 2**70}})
@example({"type": "price:update", "data": {"symbol": "FZ", "price": float("nan")}})
@example([{"type": "order:update", "user": USER, "data": {"orderId": "o", "qty": 1e308}}] * 3)
def test_any_publish_body(fuzz_server: ServerProcess, tokens: dict[str, str], body: Any) -> None:
    response = post(fuzz_server, "/api/publish", json_text(body), tokens["publisher"])
    check_answer(response.status_code, dict(response.headers), response.content)
    assert response.status_code in (200, 400, 413), (response.status_code, response.text[:300])
    if response.status_code == 200:
        assert len(response.json()["ids"]) == items_in(body)


raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    nasty_strings.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b'{"type":"alert:new","type":"price:update","user":"fz","data":{"message":"m","symbol":"S"}}',
            b'{"type":"price:update","data":{"symbol":"FZ","price":NaN}}',
            b'{"type":"price:update","data":{"symbol":"FZ","price":Infinity}}',
            b'{"type":"price:update","data":{"symbol":"FZ","price":1e400}}',
            b'{"type":"price:update","data":{"symbol":"FZ","price":123456789012345678901234567890}}',
            b'{"type":"price:update","data":{"symbol":"FZ","price":-0}}',
            b'{"type":"alert:new","user":"fz","data":{"message":"\xff\xfe"}}',
            b'{"type":"alert:new","user":"fz","data":{"message":"\xed\xa0\x80"}}',
            b'{"type":"alert:new","user":"fz","data":{"message":"\\ud800"}}',
            b'\xef\xbb\xbf{"type":"agent:status","data":{"agentId":"a"}}',
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            b"[]",
            b"{}",
            b"null",
            b" ",
            b"x" * 70_000,
        ]
    ),
)


@budget(100)
@given(raw_bodies, st.sampled_from(["application/json", "text/plain", "multipart/form-data; boundary=x", ""]))
def test_any_publish_bytes(
    fuzz_server: ServerProcess, tokens: dict[str, str], raw: bytes, content_type: str
) -> None:
    response = post(fuzz_server, "/api/publish", raw, tokens["publisher"], content_type)
    check_answer(response.status_code, dict(response.headers), response.content)
    assert response.status_code in (200, 400, 413, 415), (response.status_code, response.text[:300])


@budget(40)
@given(st.one_of(publish_bodies.map(json_text), raw_bodies))
@example(b'{"message": null}')
@example(b'{"message": ["x"]}')
@example(b'{"message": "' + b"m" * 10_001 + b'"}')
def test_any_test_broadcast_body(fuzz_server: ServerProcess, tokens: dict[str, str], raw: bytes) -> None:
    response = post(fuzz_server, f"{PREFIX}/test", raw, tokens["admin"])
    check_answer(response.status_code, dict(response.headers), response.content)
    assert response.status_code in (200, 400, 413), (response.status_code, response.text[:300])
