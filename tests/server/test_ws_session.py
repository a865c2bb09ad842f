"""One WebSocket session (server/ws/session.py) on a recording driver: client messages in,
frames and close codes out, on a real node with the memory broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from support.fake_driver import FakeDriver
from support.waiting import until
from tickwire import codes
from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.core.streams import ANONYMOUS, Principal
from tickwire.drivers.base import Received
from tickwire.node import Node
from tickwire.pipeline import PublishRequest
from tickwire.server.admission import Admission
from tickwire.server.auth import issue_token, jwt_authenticator, verify_token
from tickwire.server.streaming import ClientIds, Flusher
from tickwire.server.ws.session import WSSession
from tickwire.wire.codecs import JSON_CODEC

SECRET = "s" * 32


def run(body: Callable[[Node, Admission], Awaitable[None]], **env: str) -> None:
    async def main() -> None:
        settings = load_settings(
            env={"TICKWIRE_SECRET": SECRET, **{f"TICKWIRE_{k}": v for k, v in env.items()}}
        )
        node = Node(settings)
        await node.start()
        try:
            await body(node, Admission(node, jwt_authenticator(SECRET)))
        finally:
            await node.stop()

    asyncio.run(main())


def session(admission: Admission, driver: FakeDriver, principal: Principal = ANONYMOUS) -> WSSession:
    return WSSession(
        admission,
        driver,
        JSON_CODEC,
        principal,
        client_ids=ClientIds(),
        correlation_id="cid",
        flusher=Flusher(),
    )


async def send(driver: FakeDriver, message: Any) -> None:
    driver.incoming.put_nowait(
        Received(text=message if isinstance(message, str) else orjson.dumps(message).decode())
    )


async def frames_until(
    driver: FakeDriver, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    async with asyncio.timeout(2):
        while True:
            frames = [orjson.loads(f) for f in driver.written]
            if done(frames):
                return frames
            await asyncio.sleep(0.005)


def of_type(frames: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == type_]


def test_subscribe_answers_with_the_snapshot_then_subscribed_then_live_events() -> None:
    async def body(node: Node, admission: Admission) -> None:
        await node.publish([PublishRequest("price:update", {"symbol": "AAPL", "price": 1.5})])
        driver = FakeDriver()
        task = asyncio.create_task(session(admission, driver).run())
        await send(
            driver, {"type": "subscribe", "rid": 7, "streams": [{"stream": "prices", "symbols": ["AAPL"]}]}
        )
        frames = await frames_until(driver, lambda fs: bool(of_type(fs, "subscribed")))
        snapshot, subscribed = frames
        assert snapshot["event"] == "price:update" and snapshot["data"]["initializing"] is True
        assert subscribed == {
            "type": "subscribed",
            "v": 1,
            "rid": 7,
            "streams": [{"stream": "prices", "recovered": True}],
        }
        await node.publish([PublishRequest("price:update", {"symbol": "AAPL", "price": 2.0})])
        frames = await frames_until(driver, lambda fs: len(fs) == 3)
        assert frames[2]["data"]["price"] == 2.0 and frames[2]["stream"] == "prices"
        driver.incoming.put_nowait(None)
        await asyncio.wait_for(task, 1)

    run(body, THROTTLE_MS="0")


def test_bad_messages_get_errors_and_the_session_goes_on() -> None:
    async def body(node: Node, admission: Admission) -> None:
        driver = FakeDriver()
        task = asyncio.create_task(session(admission, driver).run())
        await send(driver, "{not json")
        driver.incoming.put_nowait(Received(data=b"\x00"))
        await send(driver, {"type": "subscribe", "streams": [{"stream": "orders"}]})
        await send(driver, {"type": "ping", "ts": 5})
        frames = await frames_until(driver, lambda fs: bool(of_type(fs, "pong")))
        errors = of_type(frames, "error")
        assert [e["code"] for e in errors] == ["bad_request", "bad_request", "unauthorized"]
        assert "takes text frames" in errors[1]["message"]
        assert frames[-1] == {"type": "pong", "ts": 5}
        driver.incoming.put_nowait(None)
        await asyncio.wait_for(task, 1)

    run(body)


def test_a_message_over_the_bound_closes_with_1008_saying_why() -> None:
    async def body(node: Node, admission: Admission) -> None:
        driver = FakeDriver()
        task = asyncio.create_task(session(admission, driver).run())
        await send(driver, "x" * 2000)
        await until(lambda: driver.closed is not None, 2)
        code, reason = driver.closed
        assert code == codes.POLICY_VIOLATION and reason == "message too big: at most 1024 bytes"
        driver.incoming.put_nowait(None)
        await asyncio.wait_for(task, 1)

    run(body, WS_MAX_MESSAGE_BYTES="1024")


def test_auth_registers_the_user_and_a_bad_token_closes_with_4001() -> None:
    async def body(node: Node, admission: Admission) -> None:
        driver = FakeDriver()
        task = asyncio.create_task(session(admission, driver).run())
        await send(driver, {"type": "auth", "rid": "a", "token": issue_token(SECRET, "alice")})
        frames = await frames_until(driver, lambda fs: bool(of_type(fs, "authenticated")))
        assert frames[-1] == {"type": "authenticated", "v": 1, "rid": "a", "userId": "alice"}
        assert node.hub.user_connection_count("alice") == 1
        bad = FakeDriver()
        bad_task = asyncio.create_task(session(admission, bad).run())
        await send(bad, {"type": "auth", "token": "garbage"})
        await until(lambda: bad.closed is not None, 2)
        assert bad.closed[0] == codes.UNAUTHORIZED
        for d in (driver, bad):
            d.incoming.put_nowait(None)
        await asyncio.wait_for(asyncio.gather(task, bad_task), 1)
        assert node.hub.user_connection_count("alice") == 0

    run(body)


def test_ping_frames_measure_the_round_trip_and_two_missed_pongs_close() -> None:
    async def body(node: Node, admission: Admission) -> None:
        driver = FakeDriver(can_ping=True)
        ws = session(admission, driver)
        task = asyncio.create_task(ws.run())
        await until(lambda: bool(driver.pings), 2)
        driver.incoming.put_nowait(Received(pong=driver.pings[0]))
        await until(lambda: ws.pinger is not None and ws.pinger.rtt is not None)
        await until(lambda: driver.closed is not None, 2)  # no more pongs: closed after two missed
        assert driver.closed[0] is not None and driver.closed[0].name == "ping_timeout"
        driver.incoming.put_nowait(None)
        await asyncio.wait_for(task, 1)

    run(body, WS_PING_S="0.02")


# -- credential expiry (SPEC 5), on a fake clock ---------------------------------------------------


def run_on(clock: FakeClock, body: Callable[[Node, Admission], Awaitable[None]]) -> None:
    async def main() -> None:
        node = Node(load_settings(env={"TICKWIRE_SECRET": SECRET}), clock=clock)
        await node.start()
        try:
            await body(node, Admission(node, jwt_authenticator(SECRET)))
        finally:
            await node.stop()

    asyncio.run(main())


def test_at_the_tokens_expiry_the_socket_gets_auth_expired_and_4001() -> None:
    clock = FakeClock()

    async def body(node: Node, admission: Admission) -> None:
        driver = FakeDriver()
        ws = session(admission, driver, Principal("alice", expires_at=clock.wall_ms() / 1000 + 60))
        task = asyncio.create_task(ws.run())
        await send(driver, {"type": "subscribe", "rid": "s", "streams": [{"stream": "alerts"}]})
        await frames_until(driver, lambda fs: bool(of_type(fs, "subscribed")))
        clock.advance(59.999)
        ws.writer.timers_changed()  # the writer sleeps on the real loop: look at the fake clock now
        for _ in range(5):  # let the writer run: it found nothing due
            await asyncio.sleep(0)
        assert driver.closed is None
        clock.advance(0.001)
        ws.writer.timers_changed()
        await until(lambda: driver.closed is not None, 2)
        code, _ = driver.closed
        assert code is not None and (code.code, code.name) == (4001, "auth_expired")
        last = [orjson.loads(f) for f in driver.written][-1]
        assert last == {
            "type": "event",
            "event": "auth:expired",
            "data": {"message": last["data"]["message"], "timestamp": "2026-01-02T10:41:00.000Z"},
        }
        driver.incoming.put_nowait(None)
        await asyncio.wait_for(task, 1)

    run_on(clock, body)


def test_auth_with_a_fresh_token_extends_the_socket() -> None:
    clock = FakeClock(start_ms=int(time.time() * 1000))  # JWTs are checked on the real clock

    async def body(node: Node, admission: Admission) -> None:
        driver = FakeDriver()
        first = verify_token(SECRET, issue_token(SECRET, "alice", ttl_s=60))
        assert first is not None and first.expires_at is not None
        ws = session(admission, driver, first)
        task = asyncio.create_task(ws.run())
        await send(driver, {"type": "subscribe", "rid": "s", "streams": [{"stream": "alerts"}]})
        await send(driver, {"type": "auth", "rid": "a", "token": issue_token(SECRET, "alice", ttl_s=3600)})
        await frames_until(driver, lambda fs: bool(of_type(fs, "authenticated")))
        clock.advance(61)
        ws.writer.timers_changed()
        await node.publish(
            [PublishRequest("alert:new", {"alertId": "a1", "level": "info", "message": "m"}, "alice")]
        )
        frames = await frames_until(driver, lambda fs: any(f.get("event") == "alert:new" for f in fs))
        assert driver.closed is None and not [f for f in frames if f.get("event") == "auth:expired"]
        clock.advance(3600)
        ws.writer.timers_changed()
        await until(lambda: driver.closed is not None, 2)
        assert driver.closed[0] is not None and driver.closed[0].code == 4001
        driver.incoming.put_nowait(None)
        await asyncio.wait_for(task, 1)

    run_on(clock, body)
