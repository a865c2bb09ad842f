"""tickwire/tasks.py: a task that lost a cancel (as asyncio.wait_for does under Python 3.11 when
the awaited call completed at the same moment) is cancelled again until it ends."""

from __future__ import annotations

import asyncio

from tickwire.tasks import cancel_until_done


async def loses_the_first_cancel(rounds: list[int]) -> None:
    """A `while True` loop around a call that swallows one cancel."""
    swallowed = False
    while True:
        rounds.append(1)
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed = True  # the call returned normally: the loop goes on


def test_a_task_that_lost_a_cancel_is_cancelled_again() -> None:
    async def main() -> None:
        rounds: list[int] = []
        task = asyncio.create_task(loses_the_first_cancel(rounds))
        await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.2)
        assert not done, "one cancel should not have been enough for this task"
        await cancel_until_done([task])
        assert task.cancelled()

    asyncio.run(main())


def test_tasks_spawned_while_cancelling_are_cancelled_too() -> None:
    async def main() -> None:
        running: set[asyncio.Task[None]] = set()

        async def spawns_on_cancel() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                late = asyncio.create_task(asyncio.sleep(3600))
                running.add(late)
                late.add_done_callback(running.discard)

        first = asyncio.create_task(spawns_on_cancel())
        running.add(first)
        first.add_done_callback(running.discard)
        await asyncio.sleep(0)
        await cancel_until_done(running)
        assert not running

    asyncio.run(main())
