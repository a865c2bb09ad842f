"""Alert actions: the webhook's timeout and retries against a receiver on a real socket, the
outcomes counted and the pending bound, and that a rule firing runs the actions once it is
stamped (not for applications' alerts)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import orjson
import pytest

from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.domain.actions import ActionFailed, Actions, WebhookAction
from tickwire.node import Node
from tickwire.pipeline import PublishRequest


class Receiver:
    """A webhook receiver on a real socket: answers each POST with the next scripted status
    (None: never answers, so the sender times out); records the bodies."""

    def __init__(self, script: list[int | None]) -> None:
        self.script = script
        self.bodies: list[Any] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/alerts"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                self.bodies.append(orjson.loads(await reader.readexactly(length)))
                status = self.script.pop(0)
                if status is None:
                    await reader.read()  # hold the request until the sender gives up
                    return
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def sender(url: str, sleeps: list[float]) -> WebhookAction:
    async def sleep(s: float) -> None:
        sleeps.append(s)  # the backoff is recorded, not waited

    return WebhookAction(url, timeout_s=0.2, retries=3, sleep=sleep)


def test_the_webhook_retries_timeouts_and_5xx_with_backoff() -> None:
    async def main() -> None:
        receiver, sleeps = Receiver([None, 503, 200]), []
        async with receiver as url:
            action = sender(url, sleeps)
            await action.run("alice", {"alertId": "r-1"})
            await action.close()
        assert receiver.bodies == [{"user": "alice", "alert": {"alertId": "r-1"}}] * 3
        assert sleeps == [0.5, 1.0]

    asyncio.run(main())


def test_the_webhook_gives_up_on_a_4xx_after_its_retries_and_on_no_receiver() -> None:
    async def main() -> None:
        for script, sent, waits in (([404], 1, []), ([500] * 4, 4, [0.5, 1.0, 2.0])):
            receiver, sleeps = Receiver(script), []
            async with receiver as url:
                action = sender(url, sleeps)
                with pytest.raises(ActionFailed, match="HTTP"):
                    await action.run("alice", {"alertId": "r-1"})
                await action.close()
            assert (len(receiver.bodies), sleeps) == (sent, waits)
        async with Receiver([]) as url:
            pass  # closed: nothing listens on its port now
        action = sender(url, [])
        with pytest.raises(ActionFailed, match="ConnectError"):
            await action.run("alice", {"alertId": "r-1"})
        await action.close()

    asyncio.run(main())


class Failing:
    name = "failing"

    async def run(self, user: str, alert: dict[str, Any]) -> None:
        raise ActionFailed("the receiver said no")


def test_actions_count_their_outcomes_and_drop_over_the_bound() -> None:
    async def main() -> None:
        counted: list[tuple[str, str]] = []
        tasks: list[asyncio.Task[Any]] = []

        def spawn(coro: Coroutine[Any, Any, Any], name: str) -> None:
            tasks.append(asyncio.create_task(coro, name=name))

        recorder = Recorder()
        actions = Actions([recorder, Failing()], spawn, max_pending=3, counted=lambda *c: counted.append(c))
        actions.run("alice", {"alertId": "a1"})
        actions.run("alice", {"alertId": "a2"})  # its second action is over the bound
        await asyncio.gather(*tasks)
        assert counted == [
            ("failing", "dropped"),
            ("recorder", "ok"),
            ("failing", "failed"),
            ("recorder", "ok"),
        ]
        assert recorder.runs == [("alice", "a1"), ("alice", "a2")] and actions.pending == 0

    asyncio.run(main())


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []

    async def run(self, user: str, alert: dict[str, Any]) -> None:
        self.runs.append((user, alert["alertId"]))


def test_a_firing_runs_the_actions_once_it_is_stamped() -> None:
    async def main() -> None:
        clock = FakeClock()
        settings = load_settings(env={"TICKWIRE_SECRET": "s" * 32, "TICKWIRE_THROTTLE_MS": "0"})
        node = Node(settings, clock=clock)
        recorder = Recorder()
        assert node.alerting.history.actions is not None  # the log action (TICKWIRE_ALERT_LOG)
        node.alerting.history.actions.actions.append(recorder)
        await node.start()
        try:
            rule = await node.alerting.rules.create(
                "alice", {"kind": "price_above", "symbol": "X", "threshold": 1}
            )
            await node.publish([PublishRequest("price:update", {"symbol": "X", "price": 2})])
            await node.publish([PublishRequest("alert:new", {"alertId": "app", "message": "m"}, "alice")])
            for _ in range(10):
                await asyncio.sleep(0)
            assert recorder.runs == [("alice", f"{rule.ruleId}-1")]
            rendered = node.metrics.render().decode()
            assert 'tickwire_alert_actions_total{action="log",outcome="ok"} 1.0' in rendered
            assert 'tickwire_alert_actions_total{action="recorder",outcome="ok"} 1.0' in rendered
        finally:
            await node.stop()

    asyncio.run(main())
