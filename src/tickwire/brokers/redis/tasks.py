"""The broker's background tasks and whether it is stopping: shared by the components, so
one `stop()` ends every loop and every repair."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from tickwire.tasks import cancel_until_done


class Tasks:
    def __init__(self) -> None:
        self.stopping = False
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def cancel_all(self) -> None:
        """Cancel every task until none is left. Every loop also checks `stopping`: a
        cancellation that lands inside a Redis call can come out as a timeout error
        (asyncio.timeout), or be lost (tickwire/tasks.py), so one cancel may not be enough."""
        await cancel_until_done(self._running)
