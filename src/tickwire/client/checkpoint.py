"""Checkpoints: where a client's streams were consumed, kept across restarts.

    client = Client(url, ["orders", "alerts"], get_token=..., checkpoint=FileCheckpoint("bot.ckpt"))

A `Client` given `checkpoint=` restores each stream's position from the store when it
starts (ids you pass as `last_event_ids` win), and saves the consumed positions
(delivery.py: an event counts once its handler returned, or once your loop asked for the
next one) at most every `every` consumed events or `interval_s` seconds after the first
unsaved one, whichever comes first, and when it closes. A crash loses at most what was
consumed since the last save: those events are delivered again after the restart, marked
`replayed` (at least once). A handler that is still running when the process dies has not
returned: its event is delivered again too.

Stores (one document per client `name`, written whole, so a reader never sees half):

- `FileCheckpoint(path)`: JSON, written to a temporary file in the same directory, flushed
  to disk, then renamed over the old one (atomic on POSIX), the directory flushed too.
- `RedisCheckpoint(url_or_client, key_prefix="tickwire:checkpoint:")`: one `SET` of the JSON
  document at `{key_prefix}{name}` (atomic).
- `MemoryCheckpoint()`: a dict, for tests and for clients restarted in one process.

Any object with `load(name)` and `save(name, positions)` coroutines (and `every`,
`interval_s`) is a store. A save that fails is logged and tried again later; it never
stops the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

log = logging.getLogger("tickwire.client")

VERSION = 1


class CheckpointStore(Protocol):
    every: int
    interval_s: float

    async def load(self, name: str) -> dict[str, str]: ...

    async def save(self, name: str, positions: Mapping[str, str]) -> None: ...


def _document(name: str, positions: Mapping[str, str]) -> bytes:
    body = {"version": VERSION, "client": name, "positions": dict(positions), "savedAt": time.time()}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def _positions(raw: bytes | str | None, where: str, name: str) -> dict[str, str]:
    if raw is None or raw in (b"", ""):
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{where}: not a tickwire checkpoint: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("positions"), dict):
        raise ValueError(f"{where}: not a tickwire checkpoint (no `positions`)")
    if doc.get("client") not in (None, name):
        raise ValueError(
            f"{where} is the checkpoint of client {doc['client']!r}, not {name!r}: give each client its own"
        )
    return {str(k): v for k, v in doc["positions"].items() if isinstance(v, str)}


class FileCheckpoint:
    """A JSON file, replaced atomically at each save."""

    def __init__(self, path: str | os.PathLike[str], *, every: int = 100, interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.every = every
        self.interval_s = interval_s

    async def load(self, name: str) -> dict[str, str]:
        try:
            raw = await asyncio.to_thread(self.path.read_bytes)
        except FileNotFoundError:
            return {}
        return _positions(raw, str(self.path), name)

    async def save(self, name: str, positions: Mapping[str, str]) -> None:
        await asyncio.to_thread(self._write, _document(name, positions))

    def _write(self, body: bytes) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # the rename itself survives a power cut
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


class RedisCheckpoint:
    """One key per client, written with one SET of the whole document."""

    def __init__(
        self,
        redis: Any,
        *,
        key_prefix: str = "tickwire:checkpoint:",
        every: int = 100,
        interval_s: float = 1.0,
        ttl_s: float | None = None,
    ) -> None:
        from redis.asyncio import Redis

        self._owned = isinstance(redis, str)
        self.redis: Redis = Redis.from_url(redis) if isinstance(redis, str) else redis
        self.key_prefix = key_prefix
        self.every = every
        self.interval_s = interval_s
        self.ttl_s = ttl_s

    def key(self, name: str) -> str:
        return self.key_prefix + name

    async def load(self, name: str) -> dict[str, str]:
        raw = await self.redis.get(self.key(name))
        return _positions(raw, f"redis key {self.key(name)}", name)

    async def save(self, name: str, positions: Mapping[str, str]) -> None:
        px = int(self.ttl_s * 1000) if self.ttl_s else None
        await self.redis.set(self.key(name), _document(name, positions), px=px)

    async def aclose(self) -> None:
        if self._owned:
            await self.redis.aclose()


class MemoryCheckpoint:
    """Positions in a dict (this process only)."""

    def __init__(self, *, every: int = 1, interval_s: float = 0.1) -> None:
        self.every = every
        self.interval_s = interval_s
        self.saved: dict[str, dict[str, str]] = {}
        self.saves = 0

    async def load(self, name: str) -> dict[str, str]:
        return dict(self.saved.get(name, {}))

    async def save(self, name: str, positions: Mapping[str, str]) -> None:
        self.saved[name] = dict(positions)
        self.saves += 1


class Checkpointer:
    """When one client saves: every `store.every` consumed events or `store.interval_s`
    seconds after the first unsaved one, and at close."""

    def __init__(
        self, store: CheckpointStore, name: str, positions: Callable[[], Mapping[str, str | None]]
    ) -> None:
        self.store = store
        self.name = name
        self._positions = positions
        self._count = 0
        self._dirty = asyncio.Event()
        self._full = asyncio.Event()
        self._saved: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.saves = 0

    async def restore(self) -> dict[str, str]:
        saved = await self.store.load(self.name)
        self._saved = dict(saved)
        return saved

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"tickwire-checkpoint-{self.name}"
        )

    def consumed(self) -> None:
        """One more event finished (called per event: cheap)."""
        self._count += 1
        if self._count == 1:
            self._dirty.set()
        if self._count >= self.store.every:
            self._full.set()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.store.interval_s):
                    await self._full.wait()
            await self.save()

    async def save(self) -> bool:
        """Save the consumed positions now (when they changed); False when the store failed."""
        async with self._lock:
            self._count = 0
            self._dirty.clear()
            self._full.clear()
            positions = {k: v for k, v in self._positions().items() if v is not None}
            if positions == self._saved:
                return True
            try:
                await self.store.save(self.name, positions)
            except Exception as exc:  # the next save tries again
                log.warning("client %s: checkpoint not saved: %r", self.name, exc)
                self._dirty.set()
                return False
            self._saved = positions
            self.saves += 1
            return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        await self.save()
