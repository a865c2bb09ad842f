"""Connections that come and go leave nothing behind, even though `tickwire serve`
freezes long-lived objects out of the collector's sight (server.gcpolicy): a
connection that lived through a freeze must still be freed when it closes."""

from __future__ import annotations

import contextlib
import re
import socket
import time

import httpx
from websockets.sync.client import connect

from support.servers import ServerProcess

FREEZE_EVERY_S = 5.0


def _open(proc: ServerProcess, count: int) -> list[socket.socket]:
    request = b"GET /api/stream/prices HTTP/1.1\r\nHost: x\r\n\r\n"
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
        sock.sendall(request)
        head = b""
        while b"event: connected" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
        socks.append(sock)
    return socks


def _generation(proc: ServerProcess, count: int) -> None:
    """`count` connections that live through a freeze, then close."""
    socks = _open(proc, count)
    time.sleep(FREEZE_EVERY_S + 0.5)
    for sock in socks:
        sock.close()
    time.sleep(0.5)


def _ws_generation(proc: ServerProcess, count: int) -> None:
    """`count` WebSocket connections (a session, its commands and pinger around each) that
    live through a freeze, then close."""
    token = proc.token("churn")
    with contextlib.ExitStack() as sockets:
        for _ in range(count):
            ws = sockets.enter_context(
                connect(
                    f"ws://127.0.0.1:{proc.port}/api/stream/ws?streams=alerts",
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=5,
                )
            )
            ws.recv(timeout=5)
        time.sleep(FREEZE_EVERY_S + 0.5)
    time.sleep(0.5)


def _gauge(proc: ServerProcess, name: str) -> float:
    text = httpx.get(proc.url + "/metrics", timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def test_connections_that_lived_through_a_freeze_are_freed() -> None:
    proc = ServerProcess().start()
    try:
        _generation(proc, 200)
        _generation(proc, 200)
        assert _gauge(proc, 'tickwire_connections{transport="sse"}') == 0
        assert _gauge(proc, "tickwire_connection_objects") == 0
    finally:
        proc.stop()


def test_websockets_that_lived_through_a_freeze_are_freed() -> None:
    proc = ServerProcess({"TICKWIRE_MAX_CONNS_PER_USER": "100"}).start()
    try:
        _ws_generation(proc, 50)
        assert _gauge(proc, 'tickwire_connections{transport="ws"}') == 0
        assert _gauge(proc, "tickwire_connection_objects") == 0
    finally:
        proc.stop()


def test_open_connections_are_counted_as_live_objects(server: ServerProcess) -> None:
    socks = _open(server, 5)
    try:
        assert _gauge(server, "tickwire_connection_objects") >= 5
    finally:
        for sock in socks:
            sock.close()
