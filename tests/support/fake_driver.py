"""A connection driver that records: what the writer wrote, when the socket was "full",
closes, aborts and pings; and what a WebSocket peer "sends" (`incoming`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tickwire.codes import CloseCode
from tickwire.drivers.base import PeerGone, Received


class FakeDriver:
    peer = "127.0.0.9"

    def __init__(self, *, framed: bool = False, can_ping: bool = False) -> None:
        self.framed = framed
        self.can_ping = can_ping
        self.written: list[bytes] = []
        self.pending: list[bytes] = []
        self.pings: list[bytes] = []
        self.closed: tuple[CloseCode | None, str] | None = None
        self.aborted = False
        self.gone = False
        self.incoming: asyncio.Queue[Received | None] = asyncio.Queue()
        self._room = asyncio.Event()
        self._room.set()

    @property
    def full(self) -> bool:
        return not self._room.is_set()

    @full.setter
    def full(self, value: bool) -> None:
        if value:
            self._room.clear()
        else:
            self._room.set()

    @property
    def writable(self) -> bool:
        return not self.pending

    def write(self, data: bytes) -> bool:
        if self.gone:
            raise PeerGone("gone")
        if self.full or self.pending:
            self.pending.append(data)
            return False
        self.written.append(data)
        return True

    def write_frames(self, frames: Sequence[bytes]) -> bool:
        return all([self.write(frame) for frame in frames])

    async def drain(self) -> None:
        await self._room.wait()
        if self.gone:
            raise PeerGone("gone")
        self.written += self.pending
        self.pending.clear()

    async def close(self, code: CloseCode | None = None, reason: str = "") -> None:
        self.closed = (code, reason)

    def abort(self) -> None:
        self.aborted = True
        self.pending.clear()

    async def receive(self) -> Received | None:
        return await self.incoming.get()

    async def ping(self, payload: bytes) -> None:
        self.pings.append(payload)
