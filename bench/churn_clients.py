"""The clients of the churn soak (bench/churn.py): SSE clients (httpx), WebSocket clients
(`websockets`), both reading their user's `alerts` stream, dropping the connection after a random
hold and resuming with the id of the last event they saw; and never-reading clients on raw sockets,
which the server has to close as slow consumers.

Every alert carries `seq`, its number in its user's sequence; a reading client checks the sequence
it receives across all its connections as it arrives (`Chain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

try:  # httpcore imports sniffio on every request; when it is missing, each failed import walks
    import sniffio  # noqa: F401  (sys.path on disk: most of the load process's CPU at 400 connects/s)
except ImportError:
    sys.modules["sniffio"] = None  # type: ignore[assignment]  # fail at once: httpcore assumes asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from tickwire.wire.sse import SSEParser

MAX_PROBLEMS = 5  # anomalies kept per client, with their details, for the report


@dataclass
class Chain:
    """The alert sequence one client received across its connections, checked as it arrives.

    Exactly once, in order: every event after the first is the one after the previous
    (`next_seq`). A higher seq is a gap (the events in between were lost), a lower one a
    duplicate or an event out of order. A `stream:reset` starts a new chain (counted); it was
    needed only if the history had moved past the client's last alert: the first alert after it
    (the oldest the history still holds) must come after the one the client missed.
    """

    next_seq: int | None = None  # the seq expected next; None before the first event and after a reset
    received: int = 0
    gaps: int = 0  # events missing
    gap_runs: int = 0  # places where events were missing
    dups: int = 0  # events received again, or out of order
    resets: int = 0
    needless_resets: int = 0  # resets although the history still held the next alert
    pending_reset: tuple[int, str] | None = None  # (last seq before it, reason) until the next alert
    problems: list[str] = field(default_factory=list)

    def see(self, seq: int, where: str) -> None:
        self.received += 1
        if self.pending_reset is not None:
            before, reason = self.pending_reset
            self.pending_reset = None
            if reason != "history_trimmed" or seq <= before + 1:
                self.needless_resets += 1
                self._note(
                    f"{where}: the reset ({reason}) after seq {before} was not needed: next came {seq}"
                )
        expected = self.next_seq
        if expected is None or seq == expected:
            self.next_seq = seq + 1
        elif seq > expected:
            self.gaps += seq - expected
            self.gap_runs += 1
            self._note(f"{where}: got seq {seq}, expected {expected} ({seq - expected} missing)")
            self.next_seq = seq + 1
        else:
            self.dups += 1
            self._note(f"{where}: got seq {seq} again or out of order (expected {expected})")

    def reset(self, where: str, reason: str) -> None:
        self.resets += 1
        self._note(f"{where}: stream:reset ({reason}) after seq {self.last}")
        if self.pending_reset is None:
            self.pending_reset = (self.last, reason)
        self.next_seq = None

    @property
    def last(self) -> int:
        return 0 if self.next_seq is None else self.next_seq - 1

    def _note(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


@dataclass
class Client:
    index: int
    user: int
    transport: str  # "sse" or "ws"
    chain: Chain = field(default_factory=Chain)
    last_id: str | None = None
    connects: int = 0  # sessions opened (the server answered)
    up: bool = False

    @property
    def name(self) -> str:
        return f"client {self.index} ({self.transport}, u{self.user})"


@dataclass
class Totals:
    """Counters over every client, for the progress lines and the report."""

    connects: int = 0
    resumes: int = 0  # connects with a last event id
    drops: int = 0  # connections this side ended (hold over)
    abrupt_drops: int = 0  # ... of them without a close handshake / FIN (RST)
    server_ends: int = 0  # connections the server ended
    failures: Counter[str] = field(default_factory=Counter)  # connect attempts refused or broken
    events: int = 0  # alert events received
    limit_events: int = 0  # `connection:limit` received
    auth_expired: int = 0
    up: int = 0
    connect_s: list[float] = field(default_factory=list)  # connect to first byte, seconds


@dataclass
class ClientConfig:
    base: str  # http://127.0.0.1:PORT
    tokens: dict[int, str]  # user -> token
    hold_s: tuple[float, float]  # a connection is dropped after a random hold in this range
    offline_s: float  # then the client waits up to this long before it resumes
    ramp_s: float  # first connects spread over this long
    abrupt_share: float  # share of drops done with a TCP reset instead of a clean close


class Churner:
    """Runs the reading clients: connect, read, drop after a random hold, resume from the last id."""

    def __init__(self, config: ClientConfig, pools: list[httpx.AsyncClient], seed: int) -> None:
        self.config = config
        self.pools = pools  # SSE client i uses pools[i % len]: httpcore's pool is linear in its size
        self.totals = Totals()
        self.churning = True  # False: a connection opened from now on is kept until the end
        self.closing = False  # True: the tasks are being cancelled; their closes are not counted
        self.rng = random.Random(seed)
        self.ws_url = config.base.replace("http://", "ws://", 1) + "/api/stream/ws"

    async def run(self, client: Client) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.config.ramp_s))
        while True:
            hold = self.rng.uniform(*self.config.hold_s) if self.churning else None
            abrupt = self.rng.random() < self.config.abrupt_share
            try:
                if client.transport == "sse":
                    await self._sse(client, hold, abrupt)
                else:
                    await self._ws(client, hold, abrupt)
            except (httpx.HTTPError, InvalidHandshake, ConnectionClosed, OSError, TimeoutError) as exc:
                self.totals.failures[type(exc).__name__] += 1
                await asyncio.sleep(0.5)
            await asyncio.sleep(self.rng.uniform(0, self.config.offline_s))

    def _opened(self, client: Client, started: float) -> str:
        client.connects += 1
        client.up = True
        self.totals.connects += 1
        self.totals.up += 1
        self.totals.resumes += client.last_id is not None
        self.totals.connect_s.append(time.monotonic() - started)
        return f"{client.name} connection {client.connects}"

    def _closed(self, client: Client, dropped: bool, abrupt: bool) -> None:
        client.up = False
        self.totals.up -= 1
        if self.closing:
            return
        if dropped:
            self.totals.drops += 1
            self.totals.abrupt_drops += abrupt
        else:
            self.totals.server_ends += 1

    async def _sse(self, client: Client, hold: float | None, abrupt: bool) -> None:
        headers = {
            "Authorization": f"Bearer {self.config.tokens[client.user]}",
            "Accept-Encoding": "identity",
        }
        if client.last_id is not None:
            headers["Last-Event-ID"] = client.last_id
        started = time.monotonic()
        http = self.pools[client.index % len(self.pools)]
        async with http.stream("GET", f"{self.config.base}/api/stream/alerts", headers=headers) as response:
            if response.status_code != 200:
                self.totals.failures[f"HTTP {response.status_code}"] += 1
                await response.aread()
                return
            where = self._opened(client, started)
            dropped = False
            parser = SSEParser()
            try:
                async with asyncio.timeout(hold):
                    async for chunk in response.aiter_raw():
                        for event in parser.feed(chunk):
                            self._event(client, event.event, event.id, event.data, where)
            except TimeoutError:
                dropped = True
                if abrupt:
                    _reset_on_close(response.extensions.get("network_stream"))
            finally:
                self._closed(client, dropped, abrupt)

    async def _ws(self, client: Client, hold: float | None, abrupt: bool) -> None:
        headers = {"Authorization": f"Bearer {self.config.tokens[client.user]}"}
        started = time.monotonic()
        async with connect(
            self.ws_url,
            subprotocols=[Subprotocol("tickwire.json")],
            additional_headers=headers,
            compression=None,
            ping_interval=None,
            open_timeout=30,
            close_timeout=5,
            max_size=None,
            proxy=None,
        ) as ws:
            where = self._opened(client, started)
            stream: dict[str, str] = {"stream": "alerts"}
            if client.last_id is not None:
                stream["lastEventId"] = client.last_id
            dropped = False
            try:
                await ws.send(orjson.dumps({"type": "subscribe", "streams": [stream]}).decode())
                async with asyncio.timeout(hold):
                    await self._ws_read(client, ws, where)
            except TimeoutError:
                dropped = True
                if abrupt:
                    ws.transport.abort()
            except ConnectionClosed as exc:
                self.totals.failures[f"ws close {exc.rcvd.code if exc.rcvd else 'none'}"] += 1
            finally:
                self._closed(client, dropped, abrupt)

    async def _ws_read(self, client: Client, ws: ClientConnection, where: str) -> None:
        async for message in ws:
            msg = orjson.loads(message)
            kind = msg.get("type")
            if kind == "event":
                data = msg.get("data")
                self._event(client, msg.get("event", ""), msg.get("id"), data, where)
            elif kind == "error":
                self.totals.failures[f"ws error {msg.get('code')}"] += 1

    def _event(self, client: Client, kind: str, event_id: str | None, data: Any, where: str) -> None:
        """One event of either transport (`data`: SSE text or the WebSocket message's object)."""
        if kind == "alert:new":
            payload = orjson.loads(data) if isinstance(data, str) else data
            client.chain.see(int(payload["seq"]), where)
            self.totals.events += 1
            if event_id is not None:
                client.last_id = event_id
        elif kind == "stream:reset":
            payload = orjson.loads(data) if isinstance(data, str) else data
            client.chain.reset(where, str(payload.get("reason")))
        elif kind == "connection:limit":
            self.totals.limit_events += 1
        elif kind == "auth:expired":
            self.totals.auth_expired += 1


def _reset_on_close(stream: Any) -> None:
    """Make the coming close of an httpx connection a TCP reset (SO_LINGER 0) instead of a FIN."""
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# -- never-reading clients ---------------------------------------------------------------------------


@dataclass
class DeafTotals:
    opened: int = 0
    checked: int = 0  # connections held long enough to be judged
    closed_by_server: int = 0  # ... which the server had closed (EOF or reset) when read at last
    bytes_read: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    held_s: list[float] = field(default_factory=list)  # how long each was held before it was judged
    open_ones: list[str] = field(default_factory=list)  # the ones found open: transport, what was read
    ws_close_codes: Counter[int] = field(default_factory=Counter)  # close frames the server sent


class Deaf:
    """Clients on raw sockets with a small receive buffer that send a request and never read.

    Each holds its connection until at least `judge_bytes` were published to its user since it
    connected (`flooded()` counts them), then reads what arrived: the server should have closed
    it as a slow consumer by then (EOF, or a reset). Then it connects again, until `stop`; a
    connection open when `stop` comes is still held and judged.
    """

    def __init__(self, host: str, port: int, judge_bytes: int, flooded: Callable[[], int]) -> None:
        self.host, self.port = host, port
        self.judge_bytes, self.flooded = judge_bytes, flooded
        self.totals = DeafTotals()
        self.stop = asyncio.Event()

    async def run(self, transport: str, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (self.host, self.port))
                await loop.sock_sendall(sock, request)
                self.totals.opened += 1
                started, since = time.monotonic(), self.flooded()
                while self.flooded() - since < self.judge_bytes:  # noqa: ASYNC110 (a counter, polled)
                    await asyncio.sleep(0.5)
                self.totals.held_s.append(time.monotonic() - started)
                await self._judge(transport, sock)
            except OSError as exc:
                self.totals.refused[type(exc).__name__] += 1
                await asyncio.sleep(0.5)
            finally:
                sock.close()

    async def _judge(self, transport: str, sock: socket.socket) -> None:
        """Closed by the server: the connection ended (EOF or reset), or, on a WebSocket, the server
        sent a close frame."""
        ended, data = await self._read_all(sock)
        code = ws_close_code(data) if transport == "ws" else None
        if code is not None:
            self.totals.ws_close_codes[code] += 1
        self.totals.checked += 1
        if ended or code is not None:
            self.totals.closed_by_server += 1
        else:
            self.totals.open_ones.append(
                f"{transport}: open, {len(data):,} bytes read, ending {data[-40:]!r}"
            )

    async def _read_all(self, sock: socket.socket) -> tuple[bool, bytes]:
        """Read everything the socket holds: whether it ends (EOF or reset) within 8 s, and the bytes."""
        loop = asyncio.get_running_loop()
        data = bytearray()
        try:
            async with asyncio.timeout(8.0):
                while chunk := await loop.sock_recv(sock, 1 << 16):
                    data += chunk
        except TimeoutError:
            return False, bytes(data)
        except OSError:  # ECONNRESET: aborted by the server
            return True, bytes(data)
        finally:
            self.totals.bytes_read += len(data)
        return True, bytes(data)


def ws_close_code(data: bytes) -> int | None:
    """The code of the close frame the server sent on a raw WebSocket connection (the bytes after its
    101 answer are unmasked frames); None when there is none. A WebSocket the server closes as a
    slow consumer gets 4008, and the TCP connection ends once the peer answers the close, or 5 s
    later: the close frame is the server's verdict."""
    i = data.find(b"\r\n\r\n") + 4
    if i < 4:
        return None
    while i + 2 <= len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length >= 126:
            size = 2 if length == 126 else 8
            length, i = int.from_bytes(data[i : i + size], "big"), i + size
        if opcode == 0x8:
            return int.from_bytes(data[i : i + 2], "big") if length >= 2 and i + 2 <= len(data) else 1005
        i += length
    return None


def sse_request(host: str, port: int, token: str) -> bytes:
    return (
        f"GET /api/stream/alerts HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()


def ws_request(host: str, port: int, token: str) -> bytes:
    """A WebSocket upgrade subscribing to `alerts` by its URL, so nothing needs to be sent after it."""
    return (
        f"GET /api/stream/ws?streams=alerts HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: tickwire.json\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
