"""Fuzzing of the WebSocket endpoint of one real server (tests/fuzz/conftest.py: one server
for this module, a bystander that must still be served after every test, a server log that
must hold no error when the module ends).

    handshake ... `?streams=&symbols=`, subprotocols, Authorization, Cookie, Origin
    messages .... commands of every shape in tickwire.json (text) and tickwire.msgpack
                  (binary), arbitrary text and bytes, frames of the wrong kind

A handshake is accepted or refused with a 4xx; a bad message gets an `error` with a
documented code and the socket stays usable (a `ping` after the fuzz gets its `pong`).
The only closes allowed are 4001 (a bad token in an `auth` message or at the handshake)
and 1008 (a bound of the protocol); never 1011, never a dropped connection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgpack
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from support.e2e import PREFIX
from support.fuzzing import (
    budget,
    commands,
    json_like,
    json_text,
    msgpack_values,
    outcome,
    pack,
    packable,
    packed_commands,
    stream_paths,
    texts,
)
from support.servers import ServerProcess
from tickwire.codes import ERROR_CODES

USER = "fz"
ALLOWED_CLOSES = {1008, 4001}


@pytest.fixture(scope="module")
def token(fuzz_server: ServerProcess) -> str:
    return fuzz_server.token(USER)


def open_socket(
    server: ServerProcess,
    *,
    query: str = "",
    subprotocols: list[str] | None = None,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
) -> ClientConnection:
    return connect(
        f"ws://127.0.0.1:{server.port}{PREFIX}/ws{query}",
        additional_headers=headers or {},
        subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols is not None else None,
        origin=Origin(origin) if origin else None,
        open_timeout=5,
        close_timeout=2,
        ping_interval=None,
        max_size=1 << 24,
        compression=None,
    ).__enter__()


def decode(message: str | bytes) -> dict[str, Any]:
    value = msgpack.unpackb(message) if isinstance(message, bytes) else orjson.loads(message)
    assert isinstance(value, dict), value
    return value


def finish(ws: ClientConnection, binary: bool) -> tuple[list[dict[str, Any]], int | None]:
    """Send a final ping; read until its pong or a close. The messages, and the close code."""
    ping = {"type": "ping", "rid": "fuzz-end", "ts": 1}
    messages: list[dict[str, Any]] = []
    try:
        ws.send(pack(ping) if binary else orjson.dumps(ping).decode())
        while True:
            message = decode(ws.recv(timeout=5))
            messages.append(message)
            if message.get("type") == "pong" and message.get("rid") == "fuzz-end":
                return messages, None
    except ConnectionClosed as exc:
        return messages, exc.rcvd.code if exc.rcvd is not None else None
    finally:
        ws.close()


def check_messages(messages: list[dict[str, Any]]) -> None:
    for message in messages:
        assert message.get("type") in {
            "authenticated",
            "subscribed",
            "unsubscribed",
            "event",
            "error",
            "pong",
        }
        if message["type"] == "error":
            assert message["code"] in ERROR_CODES, message
            assert message["code"] != "internal_error", message
            assert isinstance(message["message"], str) and message["message"], message


def check_close(code: int | None, sent: list[Any]) -> None:
    if code is None:
        return
    assert code in ALLOWED_CLOSES, f"closed with {code} after {sent!r:.500}"
    if code == 4001:  # only a bad token does that
        assert any(b"auth" in (f if isinstance(f, bytes) else f.encode()) for f in sent), sent


# -- handshake -----------------------------------------------------------------------------------

handshake_queries = st.one_of(
    st.just(""),
    st.lists(
        st.tuples(
            st.sampled_from(["streams", "symbols", "x"]),
            st.one_of(
                st.lists(stream_paths, max_size=4).map(lambda p: ",".join(p)),
                st.sampled_from(["prices", "agents", "prices,agents", "orders", "prices,prices", ",,"]),
                texts,
            ).map(lambda v: quote(v.encode("utf-8", "surrogatepass"), safe=",")),
        ),
        max_size=3,
    ).map(lambda pairs: "?" + "&".join(f"{k}={v}" for k, v in pairs)),
    st.binary(max_size=40).map(lambda b: "?" + quote(b, safe="=&,")),
)


@budget(50)
@given(
    query=handshake_queries,
    subprotocols=st.one_of(
        st.none(),
        st.lists(st.sampled_from(["tickwire.json", "tickwire.msgpack", "graphql-ws", "x"]), max_size=3),
    ),
    credentials=st.sampled_from(["none", "bearer", "bad-bearer", "cookie", "cookie-cross-site"]),
)
@example(query="?streams=" + ",".join(["prices"] * 101), subprotocols=None, credentials="none")
@example(query="?streams=orders", subprotocols=None, credentials="none")
@example(
    query="?streams=prices&symbols=" + ",".join(f"S{i}" for i in range(201)),
    subprotocols=None,
    credentials="none",
)
def test_any_handshake(
    fuzz_server: ServerProcess, token: str, query: str, subprotocols: list[str] | None, credentials: str
) -> None:
    headers = {
        "none": {},
        "bearer": {"Authorization": f"Bearer {token}"},
        "bad-bearer": {"Authorization": "Bearer not-a-token"},
        "cookie": {"Cookie": f"session={token}"},
        "cookie-cross-site": {"Cookie": f"session={token}"},
    }[credentials]
    origin = "http://evil.example" if credentials == "cookie-cross-site" else None
    binary = (
        bool(subprotocols)
        and next((p for p in subprotocols or [] if p.startswith("tickwire.")), "") == "tickwire.msgpack"
    )
    ws, refused = outcome(
        lambda: open_socket(
            fuzz_server, query=query, subprotocols=subprotocols, headers=headers, origin=origin
        ),
        InvalidStatus,
    )
    if ws is None:
        assert 400 <= refused.response.status_code < 500, refused.response.status_code
        return
    messages, code = finish(ws, binary)
    check_messages(messages)
    if code is not None:
        assert code == 4001 and credentials == "bad-bearer", code


# -- messages ------------------------------------------------------------------------------------

text_frames = st.one_of(
    commands.map(lambda c: json_text(c).decode("utf-8", "replace")),
    st.text(max_size=200),
    st.sampled_from(
        [
            '{"type":"ping","type":"subscribe","streams":["orders"]}',
            '{"type":"ping","ts":1e999}',
            '{"type":"ping","ts":NaN}',
            '{"type":"subscribe","streams":[{"stream":"orders","lastEventID":"x"}]}',
            '{"type":"subscribe","rid":9007199254740993,"streams":["prices"]}',
            '{"type":"unsubscribe","streams":["never-subscribed"]}',
            "[" * 5000,
            '{"a":' * 3000,
            "",
        ]
    ),
)
binary_frames = st.one_of(
    packed_commands,
    msgpack_values.map(pack),
    st.binary(max_size=200),
    st.sampled_from([b"\xc1", b"\xd4\x01\x00", b"\x81\x01\x02", b"\x91" * 5000, b"\xdd\xff\xff\xff\xff"]),
)


@budget(50)
@given(st.lists(st.one_of(text_frames, binary_frames), min_size=1, max_size=6), st.booleans())
@example(["x" * 70_000], False)  # over the message bound: 1008
@example([pack({"type": "auth", "token": "garbage"})], True)
def test_any_messages(
    fuzz_server: ServerProcess, token: str, frames: list[str | bytes], binary: bool
) -> None:
    subprotocol = "tickwire.msgpack" if binary else "tickwire.json"
    ws = open_socket(fuzz_server, subprotocols=[subprotocol], headers={"Authorization": f"Bearer {token}"})
    sent = send_all(ws, frames)
    messages, code = finish(ws, binary)
    check_messages(messages)
    check_close(code, sent)
    if code == 1008:  # only the size bound can be broken here (the command rate is high)
        assert any(len(f) > 65536 for f in sent), sent


@budget(40)
@given(st.lists(st.one_of(commands, json_like), min_size=1, max_size=6), st.booleans())
@example([{"type": "auth", "token": "x"}], False)
@example([{"type": "subscribe", "streams": [{"stream": "orders", "lastEventId": "1735819800000-zz"}]}], True)
def test_any_commands_anonymous(fuzz_server: ServerProcess, values: list[Any], binary: bool) -> None:
    """A socket that did not authenticate: the same, plus `auth` messages of any token."""
    ws = open_socket(fuzz_server, subprotocols=["tickwire.msgpack" if binary else "tickwire.json"])
    frames: list[str | bytes] = []
    for value in values:
        text = json_text(value).decode("utf-8", "replace")
        frames.append((pack(value) if packable(value) else text.encode()) if binary else text)
    sent = send_all(ws, frames)
    messages, code = finish(ws, binary)
    check_messages(messages)
    check_close(code, sent)


def send_all(ws: ClientConnection, frames: list[str | bytes]) -> list[str | bytes]:
    """Send `frames` in order; those sent before the server closed the socket."""
    sent: list[str | bytes] = []
    try:
        for frame in frames:
            ws.send(frame)
            sent.append(frame)
    except ConnectionClosed:
        pass
    return sent
