"""The fuzz tests' server: one `tickwire serve` per test module, watched by a bystander.

`fuzz_server` starts a server with bounds that keep fuzzing quick (long-polls at most
0.2 s, a small body limit, no connect rate, many commands per second). `bystander` is a
client of that server for the whole module: an SSE stream and a WebSocket (of user `fz`,
the user the fuzz tests publish for) read continuously in background threads, so that
whatever the fuzz tests publish is also encoded and delivered. After each test both must
still receive a fresh event and /healthz must answer; when the module ends, the server's
log must hold no error and no traceback (an exception that escaped a handler is logged
there even when the client got an answer).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from support.e2e import PREFIX, http, open_stream, publish
from support.e2e_client import SSEClient
from support.servers import ServerProcess

FUZZ_SERVER_ENV = {
    "TICKWIRE_KEEPALIVE_S": "1",
    "TICKWIRE_THROTTLE_MS": "0",
    "TICKWIRE_POLL_MAX_WAIT_S": "0.2",
    "TICKWIRE_MAX_BODY": "65536",
    "TICKWIRE_MAX_CONNS_PER_USER": "10000",
    "TICKWIRE_WS_MAX_COMMANDS_PER_S": "10000",
    "TICKWIRE_LOG_LEVEL": "warning",
}
# What the server's log must never show: an error-level line, or a traceback.
LOG_TROUBLE = re.compile(r'"level":"(error|critical)"|Traceback|Exception in ASGI application')
BYSTANDER = "fz"
BYSTANDER_STREAMS = ["agents", "alerts", "trading", "ai-decisions", "prices"]


class Bystander:
    """A client that minds its own business on the fuzzed server."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.seen: dict[str, str] = {}  # what each connection received last, joined
        self.closed: dict[str, str] = {}
        self._stop = threading.Event()
        self.sse: SSEClient = open_stream(server, "agents")
        token = server.token(BYSTANDER)
        self.ws: ClientConnection = connect(
            f"ws://127.0.0.1:{server.port}{PREFIX}/ws?streams={','.join(BYSTANDER_STREAMS)}",
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=5,
            ping_interval=None,
            max_size=1 << 24,
        ).__enter__()
        self.threads = [
            threading.Thread(target=self._read_sse, daemon=True),
            threading.Thread(target=self._read_ws, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _read_sse(self) -> None:
        while not self._stop.is_set():
            if not self.sse._read_some(0.2):
                self.closed["sse"] = "the stream ended"
                return
            self.seen["sse"] = "".join(e.data for e in self.sse.events[-50:])
            del self.sse.events[:-50]

    def _read_ws(self) -> None:
        recent: list[str] = []
        while not self._stop.is_set():
            try:
                message = self.ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                self.closed["ws"] = repr(exc)
                return
            text = message if isinstance(message, str) else message.decode("latin-1")
            if orjson.loads(text).get("type") == "error":
                self.closed["ws"] = f"got an error message: {text[:200]}"
            recent = [*recent[-50:], text]
            self.seen["ws"] = "".join(recent)

    def still_served(self) -> None:
        """A fresh event reaches both of its connections; /healthz answers."""
        marker = uuid.uuid4().hex
        publish(self.server, {"type": "agent:status", "data": {"agentId": "bystander", "state": marker}})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(marker in self.seen.get(k, "") for k in ("sse", "ws")):
            assert not self.closed, f"the bystander lost its connection: {self.closed}"
            time.sleep(0.01)
        missing = [k for k in ("sse", "ws") if marker not in self.seen.get(k, "")]
        assert not missing, f"the bystander's {missing} went quiet"
        assert http.get(self.server.url + "/healthz", timeout=5).status_code == 200

    def close(self) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(5)
        self.sse.close()
        self.ws.close()


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ServerProcess]:
    server = ServerProcess(FUZZ_SERVER_ENV).start()
    try:
        yield server
    finally:
        output = server.output()
        server.stop()
    trouble = [line for line in output.splitlines() if LOG_TROUBLE.search(line)]
    assert not trouble, "the fuzzed server logged errors:\n" + "\n".join(trouble[:20]) + "\n" + output[-3000:]


@pytest.fixture(scope="module")
def bystander(fuzz_server: ServerProcess) -> Iterator[Bystander]:
    watcher = Bystander(fuzz_server)
    yield watcher
    watcher.close()


@pytest.fixture(autouse=True)
def _others_still_served(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test of a module that fuzzes the server: the bystander is still served."""
    if "fuzz_server" not in request.fixturenames:
        yield
        return
    watcher: Bystander = request.getfixturevalue("bystander")
    yield
    watcher.still_served()
