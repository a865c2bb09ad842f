from __future__ import annotations

import orjson
import pytest

from tickwire.codes import CloseReason, close_code
from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection, TimerAction
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.wire.sse import KEEPALIVE, SSECodec, SSEParser


def make(clock: FakeClock, keepalive: float = 30, idle: float = 300) -> Connection:
    return Connection(
        client_id="c",
        user="alice",
        transport="sse",
        codec=SSECodec(),
        clock=clock,
        outbox_limit=10_000,
        notify=lambda: None,
        keepalive_s=keepalive,
        idle_timeout_s=idle,
    )


def test_keepalive_after_the_interval_without_writes() -> None:
    clock = FakeClock()
    conn = make(clock)
    clock.advance(29.9)
    assert conn.on_timer() is TimerAction.NONE
    clock.advance(0.1)
    assert conn.on_timer() is TimerAction.KEEPALIVE
    assert conn.outbox.drain() == KEEPALIVE
    assert conn.next_deadline() == clock.monotonic() + 30


def test_writes_postpone_the_keepalive() -> None:
    clock = FakeClock()
    conn = make(clock)
    clock.advance(20)
    conn.wrote()
    clock.advance(20)
    assert conn.on_timer() is TimerAction.NONE
    clock.advance(10)
    assert conn.on_timer() is TimerAction.KEEPALIVE


def test_idle_close_ignores_keepalives_but_not_events() -> None:
    clock = FakeClock()
    conn = make(clock, keepalive=30, idle=300)
    for _ in range(9):
        clock.advance(30)
        assert conn.on_timer() is TimerAction.KEEPALIVE
        conn.outbox.drain()
        conn.wrote()
    event = Event("alert:new", {"message": "m"}, "user:alice", Position(1, 1, 1), 0)
    conn.send_event(event, b"frame")  # an event at t=270 resets the idle clock
    conn.outbox.drain()
    conn.wrote()
    clock.advance(299)
    assert conn.on_timer() is not TimerAction.IDLE_CLOSE
    clock.advance(1)
    assert conn.on_timer() is TimerAction.IDLE_CLOSE
    assert conn.closing and conn.close_reason == "idle_timeout"


def test_received_messages_count_as_activity() -> None:
    clock = FakeClock()
    conn = make(clock, keepalive=1000, idle=10)
    clock.advance(9)
    conn.received()
    clock.advance(9)
    assert conn.on_timer() is TimerAction.NONE


# -- credential expiry (SPEC 5) ----------------------------------------------------------------


def expiring(clock: FakeClock, in_s: float, keepalive: float = 30, idle: float = 300) -> Connection:
    conn = make(clock, keepalive=keepalive, idle=idle)
    conn.authenticated_until(clock.wall_ms() / 1000 + in_s)
    return conn


def test_the_token_expiry_is_a_deadline_on_the_wall_clock() -> None:
    clock = FakeClock()
    conn = expiring(clock, 5)
    assert conn.next_deadline() == clock.monotonic() + 5  # before the keepalive (30 s)
    clock.advance(4.999)
    assert conn.on_timer() is TimerAction.NONE and not conn.closing
    clock.advance(0.001)
    assert conn.on_timer() is TimerAction.AUTH_EXPIRED
    assert conn.closing and conn.close_reason == "auth_expired"


def test_expiry_sends_auth_expired_without_an_id_after_what_is_queued() -> None:
    clock = FakeClock()
    conn = expiring(clock, 3)
    event = Event("alert:new", {"message": "m"}, "user:alice", Position(1, 1, 1), 0)
    conn.send_event(event, b"event: alert:new\ndata: {}\nid: x\n\n")
    clock.advance(3)
    conn.on_timer()
    frames = list(SSEParser().feed(conn.outbox.drain()))
    assert [(f.event, f.id) for f in frames] == [("alert:new", "x"), ("auth:expired", None)]
    data = orjson.loads(frames[1].data)
    assert set(data) == {"message", "timestamp"} and data["timestamp"] == "2026-01-02T10:40:03.000Z"
    conn.send_control("test", {})  # nothing more is queued once closed
    assert not conn.outbox


def test_a_fresh_token_moves_the_expiry() -> None:
    clock = FakeClock()
    conn = expiring(clock, 10)
    clock.advance(9)
    conn.authenticated_until(clock.wall_ms() / 1000 + 60)
    assert conn.next_deadline() == conn.last_write + 30  # now the keepalive comes first
    clock.advance(1)
    assert conn.on_timer() is not TimerAction.AUTH_EXPIRED
    clock.advance(59)
    assert conn.on_timer() is TimerAction.AUTH_EXPIRED


def test_credentials_without_an_expiry_never_expire() -> None:
    clock = FakeClock()
    conn = make(clock, keepalive=1000, idle=10_000)
    assert conn.expires_at_ms is None
    assert conn.next_deadline() == clock.monotonic() + 1000
    conn.authenticated_until(clock.wall_ms() / 1000 + 1)
    conn.authenticated_until(None)
    clock.advance(999)
    assert conn.on_timer() is TimerAction.NONE


def test_an_expired_websocket_is_closed_with_4001() -> None:
    assert close_code(CloseReason.AUTH_EXPIRED).code == 4001
    assert close_code(CloseReason.AUTH_EXPIRED).name == "auth_expired"
    assert not close_code(CloseReason.AUTH_EXPIRED).reconnect  # not with the same token


def test_ticks_held_by_the_cap_are_released_on_the_connections_timer() -> None:
    clock = FakeClock()
    conn = Connection(
        client_id="c",
        user=None,
        transport="sse",
        codec=SSECodec(),
        clock=clock,
        outbox_limit=10_000,
        notify=lambda: None,
        max_ticks_per_s=10,
    )

    def tick(n: int, symbol: str) -> Event:
        data = {"symbol": symbol, "price": n}
        return Event("price:update", data, "prices", Position(1, 0, n), n, key=symbol, tick=True)

    for n in range(15):
        conn.send_event(tick(n, f"S{n}" if n < 10 else "LATE"), b"[%d]" % n)
    assert conn.outbox.drain() == b"".join(b"[%d]" % n for n in range(10))
    assert conn.next_deadline() == pytest.approx(clock.monotonic() + 0.1)
    assert conn.on_timer() is TimerAction.NONE
    clock.advance(0.1)
    assert conn.on_timer() is TimerAction.RELEASE
    assert conn.outbox.drain() == b"[14]"  # the latest of the five over the cap
    assert conn.next_deadline() == pytest.approx(conn.last_write + 30)  # nothing waits: keepalive
