"""Keeping garbage-collector pauses out of delivery latency.

A full collection walks every tracked object; with thousands of connections that
is over 100 ms during which no event is written. Connection state lives for minutes
and is never cyclic garbage while it lives (connections break their own reference
cycles when they close, so reference counting frees them), so it need not be
walked again and again: every `freeze_every_s` the young garbage is collected and
the survivors are frozen out of the collector's sight. A full, unfrozen collection
still runs every `full_every_s` to reclaim any cycle that escaped.

Only `tickwire serve` applies this policy: an application that mounts tickwire keeps
its own garbage-collector settings.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("tickwire.gc")


async def keep_gc_pauses_short(freeze_every_s: float = 5.0, full_every_s: float = 300.0) -> None:
    gc.collect()
    gc.freeze()
    next_full = time.monotonic() + full_every_s
    while True:
        await asyncio.sleep(freeze_every_s)
        gc.collect(1)  # the young garbage goes first, so that it is not frozen
        if time.monotonic() >= next_full:
            next_full = time.monotonic() + full_every_s
            gc.unfreeze()
            started = time.perf_counter()
            gc.collect()
            log.info(
                "full garbage collection", extra={"ms": round((time.perf_counter() - started) * 1000, 1)}
            )
        gc.freeze()
