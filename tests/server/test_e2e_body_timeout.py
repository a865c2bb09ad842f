"""End to end: a request body that has not arrived whole within TICKWIRE_BODY_TIMEOUT_S gets
a 408 with the JSON error body, however slowly its bytes trickle in, so a client cannot hold a
request open by sending slowly; other clients are served meanwhile."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import orjson
import pytest

from support.e2e import alert, http, open_stream, post_publish, read_until_type, uid
from support.raw_http import post_head, read_response
from support.servers import ServerProcess

BODY_TIMEOUT_S = "0.5"
TIMED_OUT = {
    "error": "Request Timeout",
    "message": f"Body not received in time: send it whole within {BODY_TIMEOUT_S} s",
    "statusCode": 408,
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_BODY_TIMEOUT_S": BODY_TIMEOUT_S})
    try:
        yield proc.start()
    finally:
        proc.stop()


def _assert_timed_out(sock: socket.socket) -> None:
    status, headers, body = read_response(sock)
    assert (status, orjson.loads(body)) == (408, TIMED_OUT)
    assert headers["content-type"].startswith("application/json")
    assert headers.get("x-correlation-id")
    assert headers["connection"] == "close"


def _rejected(server: ServerProcess, reason: str) -> float:
    """The value of `tickwire_requests_rejected_total{reason}` (0 before the first)."""
    prefix = f'tickwire_requests_rejected_total{{reason="{reason}"}} '
    for line in http.get(server.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def test_a_body_that_stops_arriving_gets_408_and_other_clients_are_served(server: ServerProcess) -> None:
    before = _rejected(server, "body_timeout")
    user = uid("stalled")
    publisher = server.token("test-publisher", "publisher")
    partial = orjson.dumps(alert(user, 1))[:20]
    with (
        post_head(server, "/api/publish", token=publisher, length=1000) as declared,
        post_head(server, "/api/publish", token=publisher, length=None) as chunked,
        post_head(
            server, "/api/stream/test", token=server.token(uid("root"), "admin"), length=100
        ) as broadcast,
    ):
        declared.sendall(partial)
        chunked.sendall(b"%x\r\n%s\r\n" % (len(partial), partial))
        broadcast.sendall(b'{"message"')
        # Those requests wait for the rest of their bodies; everyone else is served.
        with open_stream(server, "alerts", server.token(user)) as stream:
            assert post_publish(server, alert(user, 2)).status_code == 200
            read_until_type(stream, "alert:new", lambda d: d["alertId"] == "a-2")
        assert http.get(server.url + "/healthz").status_code == 200
        for sock in (declared, chunked, broadcast):
            _assert_timed_out(sock)
    assert _rejected(server, "body_timeout") == before + 3


def test_a_body_too_large_is_counted_on_every_route(server: ServerProcess) -> None:
    before = _rejected(server, "body_too_large")
    admin = server.token(uid("root"), "admin")
    headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    big = b'{"message":"' + b"x" * (2 << 20) + b'"}'
    for path in ("/api/publish", "/api/stream/test", "/api/alerts/rules"):
        assert http.post(server.url + path, content=big, headers=headers).status_code == 413
    assert _rejected(server, "body_too_large") == before + 3


def test_a_body_trickling_in_gets_408_all_the_same(server: ServerProcess) -> None:
    """Every byte comes well within the timeout of the one before: the bound is on the whole body."""
    publisher = server.token("test-publisher", "publisher")
    with post_head(server, "/api/publish", token=publisher, length=100_000) as sock:
        sock.sendall(b"[")
        for _ in range(400):  # a bound on the test, well past the timeout
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
            sock.sendall(b" ")
        _assert_timed_out(sock)
