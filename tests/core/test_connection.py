from __future__ import annotations

from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection, TimerAction
from tickwire.core.event import Event
from tickwire.core.ids import Position
from tickwire.wire.sse import KEEPALIVE, SSECodec


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
