"""Waiting for a condition that real I/O or another task makes true, with a bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(check: Callable[[], object], within: float = 10.0, step: float = 0.005) -> None:
    """Return once `check()` is true; TimeoutError after `within` seconds. For conditions
    with no event to wait on (a peer's bytes, another component's state)."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(step)
