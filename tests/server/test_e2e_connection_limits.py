"""End to end: what `tickwire serve` bounds before a request reaches the app
(drivers/uvicorn_http.py): the time and size of a request head, and the open connections
of one client address.

Without them a client sending one header line a second held its connection forever, an
8 MB Authorization header was read whole, and one address could open any number of
connections.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator

import orjson
import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from support.e2e import REASONS, assert_error, get, http, open_stream, wait_until
from support.e2e_client import SSEClient
from support.raw_http import read_response
from support.servers import ServerProcess

HEAD_TIMEOUT_S = 1.0
CAP = 5


@pytest.fixture(scope="module")
def head_server() -> Iterator[ServerProcess]:
    proc = ServerProcess(
        {"TICKWIRE_HEADER_TIMEOUT_S": str(HEAD_TIMEOUT_S), "TICKWIRE_KEEPALIVE_S": "0.5"}
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def capped_server() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_MAX_CONNS_PER_IP": str(CAP), "TICKWIRE_KEEPALIVE_S": "1"}).start()
    yield proc
    proc.stop()


def _socket(server: ServerProcess, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def _closed_by_server(sock: socket.socket, wait_s: float) -> bool:
    """Whether the server closes `sock` (EOF or reset) within `wait_s`, reading nothing else."""
    sock.settimeout(wait_s)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _assert_431(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 431, (status, body)
    parsed = orjson.loads(body)
    assert parsed["statusCode"] == 431 and parsed["error"] == REASONS[431], parsed
    assert "at most 32768 bytes" in parsed["message"], parsed
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert headers.get("x-correlation-id")


# -- the head's time ------------------------------------------------------------------------------------


def test_a_client_sending_one_header_line_at_a_time_is_closed(head_server: ServerProcess) -> None:
    with _socket(head_server) as sock:
        began = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        while not closed and time.monotonic() - began < 6:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = _closed_by_server(sock, 0.25)
        took = time.monotonic() - began
    assert closed, "the slow client was never closed"
    assert HEAD_TIMEOUT_S - 0.2 <= took <= HEAD_TIMEOUT_S + 1.5, took
    assert http.get(head_server.url + "/healthz", timeout=5).status_code == 200


def test_a_silent_connection_is_closed(head_server: ServerProcess) -> None:
    with _socket(head_server) as sock:
        began = time.monotonic()
        assert _closed_by_server(sock, 6)
        assert time.monotonic() - began <= HEAD_TIMEOUT_S + 1.5


def test_the_next_request_on_a_kept_alive_connection_has_the_same_bound(head_server: ServerProcess) -> None:
    with _socket(head_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # ... and the rest never comes
        began = time.monotonic()
        assert _closed_by_server(sock, 6)
        assert time.monotonic() - began <= HEAD_TIMEOUT_S + 1.5


def test_streams_outlive_the_head_timeout(head_server: ServerProcess) -> None:
    """The bound is on the head only: an open stream, SSE or WebSocket, is never cut by it."""
    with open_stream(head_server, "prices?symbols=AAPL", initial=2) as stream:
        stream.read_for(HEAD_TIMEOUT_S * 2.5)  # keepalives every 0.5 s
        assert not stream.closed
        assert stream.raw.count(b": keepalive") >= 2, stream.raw[-200:]
    with _ws(head_server) as ws:
        time.sleep(HEAD_TIMEOUT_S * 2.5)
        ws.send(orjson.dumps({"type": "ping", "ts": 1}).decode())
        messages = [orjson.loads(ws.recv(timeout=5)) for _ in range(3)]  # snapshot, subscribed, pong
        assert {"type": "pong", "ts": 1} in messages, messages


# -- the head's size ---------------------------------------------------------------------------------------


def test_a_64_kb_header_gets_431(head_server: ServerProcess) -> None:
    big = b"a" * 65536
    for request in (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + big + b"\r\n\r\n",
        b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + big + b"\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /api/stream/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: "
        + big
        + b"\r\n\r\n",
    ):
        with _socket(head_server) as sock:
            sock.sendall(request)
            _assert_431(*read_response(sock))
            assert _closed_by_server(sock, 6)
    # A head under the bound is served.
    fine = get(head_server, "/healthz", headers={"X-Fine": "a" * 16_000})
    assert fine.status_code == 200


def test_an_endless_header_is_refused_before_it_is_read_whole(head_server: ServerProcess) -> None:
    """An 8 MB Authorization header: the answer comes after the bound, not after 8 MB."""
    block = b"a" * 65536
    with _socket(head_server) as sock:
        sock.sendall(b"GET /api/stream/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 8_000_000 and not select.select([sock], [], [], 0.02)[0]:
                sock.sendall(block)
                sent += len(block)
        assert sent < 1_000_000, sent  # the bound is 32 KB; a read is at most 256 KB
        _assert_431(*read_response(sock))
    assert http.get(head_server.url + "/healthz", timeout=5).status_code == 200


def test_refusals_are_counted(head_server: ServerProcess) -> None:
    with _socket(head_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        assert read_response(sock)[0] == 431
    with _socket(head_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert _closed_by_server(sock, 6)
    metrics = http.get(head_server.url + "/metrics", timeout=5).text
    assert 'tickwire_requests_rejected_total{reason="header_too_large"}' in metrics
    assert 'tickwire_requests_rejected_total{reason="header_timeout"}' in metrics


# -- connections per address ------------------------------------------------------------------------------


def _ws(server: ServerProcess) -> ClientConnection:
    return connect(
        f"ws://127.0.0.1:{server.port}/api/stream/ws?streams=prices",
        subprotocols=[Subprotocol("tickwire.json")],
        proxy=None,
        open_timeout=5,
        ping_interval=None,
    ).__enter__()  # the context-manager form (a bare connect() is deprecated)


def _served(server: ServerProcess) -> bool:
    """Whether a new connection gets an answer (not closed at accept)."""
    try:
        with _socket(server, timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/1.1 200")
    except (ConnectionResetError, BrokenPipeError):
        return False


def _refused(server: ServerProcess) -> bool:
    """Whether a new connection is closed without an answer."""
    with _socket(server, timeout=5) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError):
            return True
        return _closed_by_server(sock, 5)


def test_connections_beyond_the_cap_per_address_are_refused(capped_server: ServerProcess) -> None:
    server = capped_server
    assert wait_until(lambda: _served(server))  # the readiness probes' connections are gone
    streams = [SSEClient(server.url, "/api/stream/prices") for _ in range(3)]
    sockets = [_ws(server), _ws(server)]
    try:
        assert all(s.status == 200 for s in streams)
        assert _refused(server)  # the 6th connection from 127.0.0.1
        # Closing a WebSocket (the upgraded connection) frees its slot ...
        sockets.pop().close()
        assert wait_until(lambda: _served(server))
        sockets.append(_ws(server))
        assert _refused(server)
        # ... and so does ending an SSE stream.
        streams.pop().close()
        assert wait_until(lambda: _served(server))
    finally:
        for stream in streams:
            stream.close()
        for ws in sockets:
            ws.close()
    assert wait_until(lambda: _served(server))
    metrics = http.get(server.url + "/metrics", timeout=5).text
    assert 'tickwire_requests_rejected_total{reason="conns_per_ip"}' in metrics


def test_the_cap_counts_open_connections_not_requests(capped_server: ServerProcess) -> None:
    """Many requests in a row, each on its own connection, are never refused."""
    assert wait_until(lambda: _served(capped_server))
    for _ in range(3 * CAP):
        response = http.get(capped_server.url + "/healthz", timeout=5)
        assert response.status_code == 200
    assert_error(http.post(capped_server.url + "/api/publish", timeout=5), 401)
