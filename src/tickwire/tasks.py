"""Ending background tasks for good.

One `cancel()` is not always enough: under Python 3.11, `asyncio.wait_for` returns normally
when the awaited operation completed just as the cancel arrived (redis-py wraps every
socket write in one), so the cancel is lost and a `while True` loop around such a call runs
on. Cancelling again until the task is done ends it at its next await.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

CANCEL_ROUNDS = 10
ROUND_WAIT_S = 0.5


async def cancel_until_done(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait for them, cancelling those still running again, for at most
    `CANCEL_ROUNDS` rounds of `ROUND_WAIT_S`. `tasks` is read again each round (a live set
    also gets the tasks spawned meanwhile)."""
    for _ in range(CANCEL_ROUNDS):
        pending = [task for task in tasks if not task.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=ROUND_WAIT_S)
