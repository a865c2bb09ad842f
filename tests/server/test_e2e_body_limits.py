"""End to end: request bodies over the limit (SPEC 5 and 9) get a 413 the client can read.

The server answers as soon as the Content-Length (or the streamed body) passes the limit,
then reads and discards what the client still sends, within bounds, before it closes: a
client that sends its whole body before reading (httpx, or a raw socket doing `sendall`)
must never see a reset instead of the answer, and other clients are served meanwhile.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from support.e2e import alert, assert_error, http, open_stream, post_publish, read_until_type, uid
from support.raw_http import post_head, read_response
from support.servers import ServerProcess

MB = 1_000_000
BLOCK = b"x" * 65536
SIZES = [pytest.param(5 * MB, id="5MB"), pytest.param(50 * MB, id="50MB")]
TOO_LARGE = {"error": "Payload Too Large", "statusCode": 413}


# -- helpers ------------------------------------------------------------------------------------------


def _blocks(size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        block = BLOCK[: min(left, len(BLOCK))]
        left -= len(block)
        yield block


def _framed(size: int, chunked: bool) -> Iterator[bytes]:
    """The body as it goes on the wire: as is, or in chunked transfer coding."""
    for block in _blocks(size):
        yield b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
    if chunked:
        yield b"0\r\n\r\n"


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """One complete response with a Content-Length JSON body; nothing may follow it."""
    status, headers, body = read_response(sock)
    assert len(body) == int(headers["content-length"]), body
    parsed: dict[str, object] = orjson.loads(body)
    return status, headers, parsed


def _read_to_eof(sock: socket.socket) -> bytes:
    """What the server still sends until it closes; a reset fails the test (ConnectionResetError)."""
    rest = b""
    while chunk := sock.recv(65536):
        rest += chunk
    return rest


def _send_until_closed(sock: socket.socket, frame: bytes, cap: int) -> tuple[int, bool]:
    """Send `frame` again and again: the bytes sent, and whether the server closed before `cap`."""
    sent = 0
    try:
        while sent < cap:
            sock.sendall(frame)
            sent += len(frame)
    except (ConnectionResetError, BrokenPipeError):
        return sent, True
    return sent, False


def _raw_post(
    server: ServerProcess, path: str, size: int, *, chunked: bool, close: bool, token: str | None
) -> tuple[int, dict[str, str], dict[str, object]]:
    """Send the whole body (sendall must not fail), then read the answer and the server's close."""
    with post_head(server, path, length=None if chunked else size, token=token, close=close) as sock:
        for piece in _framed(size, chunked):
            sock.sendall(piece)
        status, headers, body = _read_response(sock)
        assert _read_to_eof(sock) == b""
    return status, headers, body


def _assert_too_large(body: dict[str, object]) -> None:
    assert set(body) == {"error", "message", "statusCode"}, body
    assert {k: body[k] for k in TOO_LARGE} == TOO_LARGE, body
    assert isinstance(body["message"], str)
    assert "at most" in body["message"], body


def _publisher(server: ServerProcess) -> str:
    return server.token("test-publisher", "publisher")


# -- /api/publish ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_httpx_reads_the_413_of_a_large_publish(server: ServerProcess, size: int, chunked: bool) -> None:
    content: bytes | Iterator[bytes] = _blocks(size) if chunked else b"x" * size
    headers = {"Authorization": f"Bearer {_publisher(server)}", "Content-Type": "application/json"}
    response = http.post(server.url + "/api/publish", content=content, headers=headers, timeout=60)
    body = assert_error(response, 413)
    assert body["message"] == "Body too large: at most 1048576 bytes"
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
def test_raw_client_sends_everything_then_reads_the_413(
    server: ServerProcess, size: int, chunked: bool, close: bool
) -> None:
    status, headers, body = _raw_post(
        server, "/api/publish", size, chunked=chunked, close=close, token=_publisher(server)
    )
    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert headers.get("x-correlation-id")
    _assert_too_large(body)


def test_test_broadcast_reads_the_413_too(server: ServerProcess) -> None:
    admin = server.token(uid("root"), "admin")
    for chunked in (False, True):
        status, _, body = _raw_post(
            server, "/api/stream/test", 5 * MB, chunked=chunked, close=True, token=admin
        )
        assert status == 413
        _assert_too_large(body)
    content: Iterator[bytes] = _blocks(5 * MB)
    response = http.post(
        server.url + "/api/stream/test",
        content=content,
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert_error(response, 413)


def test_an_answer_given_before_reading_the_body_is_readable(server: ServerProcess) -> None:
    """401 and 403 are decided before the body is read: they are discarded-after too."""
    path = "/api/publish"
    for token, status in ((None, 401), ("garbage", 401), (server.token(uid("u")), 403)):
        got, _, body = _raw_post(server, path, 5 * MB, chunked=False, close=True, token=token)
        assert got == status
        assert body["statusCode"] == status


def test_other_clients_are_served_while_a_body_is_discarded(server: ServerProcess) -> None:
    user = uid("linger")
    size = 50 * MB
    pieces = _framed(size, chunked=False)
    with post_head(server, "/api/publish", length=size, token=_publisher(server), close=True) as slow:
        slow.sendall(b"".join(next(pieces) for _ in range(16)))  # 1 MiB of 50 MB
        status, headers, body = _read_response(slow)  # answered before the body is complete
        assert status == 413
        assert headers["connection"] == "close"
        _assert_too_large(body)
        # The server is still reading that body; everyone else is served meanwhile.
        with open_stream(server, "alerts", server.token(user)) as stream:
            assert post_publish(server, alert(user, 1)).status_code == 200
            read_until_type(stream, "alert:new", lambda d: d["alertId"] == "a-1")
        assert http.get(server.url + "/healthz").status_code == 200
        for piece in pieces:
            slow.sendall(piece)
        assert _read_to_eof(slow) == b""


# -- bounds -------------------------------------------------------------------------------------------


def test_discarding_stops_after_a_bounded_number_of_bytes(server: ServerProcess) -> None:
    """A client that never stops sending is cut off (here: well before 512 MiB)."""
    with post_head(server, "/api/publish", length=None, token=_publisher(server)) as sock:
        frame = b"%x\r\n%s\r\n" % (len(BLOCK * 16), BLOCK * 16)
        sock.sendall(frame * 2)
        status, _, body = _read_response(sock)
        assert status == 413
        _assert_too_large(body)
        sent, closed = _send_until_closed(sock, frame, 512 * 1_048_576)
        assert closed, f"the server still reads after {sent} bytes"
        assert sent >= 32 * 1_048_576  # it did discard a while before closing


def test_discarding_stops_when_the_client_goes_quiet(server: ServerProcess) -> None:
    """A client that announces more than it sends does not hold the connection forever."""
    with post_head(server, "/api/publish", length=5 * MB, token=_publisher(server)) as sock:
        sock.sendall(b"x" * 100_000)
        status, _, body = _read_response(sock)
        assert status == 413
        _assert_too_large(body)
        sock.settimeout(60)  # a generous timeout, not a timing assertion: the server closes
        assert _read_to_eof(sock) == b""


def test_a_body_under_the_limit_is_still_published(server: ServerProcess) -> None:
    user = uid("small")
    items = [alert(user, i, note="y" * 1000) for i in range(500)]
    raw = orjson.dumps(items)
    assert 500_000 < len(raw) < 1_048_576
    response = post_publish(server, None, raw=raw)
    assert response.status_code == 200, response.text
    assert len(response.json()["ids"]) == 500
    assert "connection" not in response.headers or response.headers["connection"] != "close"


# -- the demo's login and order ticket (16 KB bound) -----------------------------------------------


@pytest.fixture(scope="module")
def demo_server() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_DEMO": "1"})
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_demo_login_and_orders_read_the_413(demo_server: ServerProcess, chunked: bool) -> None:
    alice = demo_server.token("alice")
    for path, token, expected in (
        ("/api/login", None, 413),
        ("/api/orders", alice, 413),
        ("/api/orders", None, 401),
    ):
        status, _, body = _raw_post(demo_server, path, 5 * MB, chunked=chunked, close=True, token=token)
        assert status == expected, (path, body)
        if expected == 413:
            assert body["message"] == "Body too large: at most 16384 bytes"
            _assert_too_large(body)
    content: bytes | Iterator[bytes] = _blocks(5 * MB) if chunked else b"x" * (5 * MB)
    response = httpx.post(
        demo_server.url + "/api/login",
        content=content,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert_error(response, 413)
    login = httpx.post(demo_server.url + "/api/login", json={"user": "alice"}, timeout=10)
    assert login.status_code == 200
