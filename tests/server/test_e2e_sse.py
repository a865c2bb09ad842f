"""End to end: every SSE endpoint of SPEC section 2, the framing of section 3, and
which event type reaches which stream."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from support.drivers import EVERY_DRIVER
from support.e2e import (
    ID_RE,
    ISO_RE,
    alert,
    assert_error,
    fill,
    get,
    open_stream,
    order,
    price,
    publish,
    read_until_type,
    sym,
    types_of,
    uid,
)
from support.e2e_client import SSEClient
from support.servers import ServerProcess

pytestmark = EVERY_DRIVER

USER_STREAMS = ["orders", "positions", "trading", "ai-decisions", "alerts"]


def strategy(user: str, strategy_id: str, **data: Any) -> dict[str, Any]:
    return {"type": "strategy:update", "user": user, "data": {"strategyId": strategy_id, **data}}


def _check_connected(stream: SSEClient, user: str, name: str) -> None:
    first = stream.events[0]
    assert first.event == "connected"
    assert first.id is None
    assert first.retry is None
    data = first.json()
    assert set(data) >= {"clientId", "stream", "timestamp"}
    assert data["stream"] == name
    assert data["v"] == 1  # the protocol's version (SPEC 6)
    match = re.fullmatch(re.escape(user) + "-" + re.escape(name) + r"-(\d{13})", data["clientId"])
    assert match is not None, data["clientId"]
    assert abs(int(match.group(1)) - time.time() * 1000) < 60_000
    assert ISO_RE.match(data["timestamp"]), data
    # The raw frame of `connected` has neither an id nor a retry line.
    head = stream.raw.split(b"\n\n", 1)[0]
    assert b"\nid:" not in head
    assert b"\nretry:" not in head


@pytest.mark.parametrize(
    ("path", "name", "public"),
    [
        ("orders", "orders", False),
        ("positions", "positions", False),
        ("prices", "prices", True),
        ("prices?symbols=AAPL,MSFT", "prices", True),
        ("trading", "trading", False),
        ("trading?userId={user}", "trading", False),
        ("ai-decisions", "ai-decisions", False),
        ("agents", "agents", True),
        ("alerts", "alerts", False),
        ("strategies/{strategy}", "strategies.{strategy}", False),
    ],
)
def test_every_stream_answers_with_sse_headers_and_connected_first(
    server: ServerProcess, path: str, name: str, public: bool
) -> None:
    user = uid("sse")
    strat = uid("st")
    publish(server, strategy(user, strat, status="running"))
    path = path.format(user=user, strategy=strat)
    name = name.format(strategy=strat)
    token = None if public else server.token(user)
    with open_stream(server, path, token) as stream:
        headers = stream.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        assert headers["connection"].lower() == "keep-alive"
        assert headers.get("x-correlation-id")
        _check_connected(stream, "anonymous" if public else user, name)


def test_public_stream_with_token_uses_the_user_in_client_id(server: ServerProcess) -> None:
    user = uid("pub")
    with open_stream(server, "agents", server.token(user)) as stream:
        _check_connected(stream, user, "agents")


def test_given_correlation_id_is_echoed_on_the_stream(server: ServerProcess) -> None:
    user = uid("cid")
    cid = "corr-" + uid("x")
    with open_stream(server, "alerts", server.token(user), headers={"X-Correlation-ID": cid}) as stream:
        assert stream.headers["x-correlation-id"] == cid


def test_client_ids_are_unique_for_simultaneous_connections(server: ServerProcess) -> None:
    user = uid("uniq")
    token = server.token(user)
    streams = [open_stream(server, "alerts", token) for _ in range(4)]
    try:
        ids = [s.events[0].json()["clientId"] for s in streams]
        assert len(set(ids)) == 4, ids
    finally:
        for s in streams:
            s.close()


def test_session_cookie_authenticates_a_stream(server: ServerProcess) -> None:
    user = uid("cookie")
    stream = SSEClient(server.url, "/api/stream/alerts", cookie=f"session={server.token(user)}")
    with stream:
        assert stream.status == 200
        stream.read_until(1)
        _check_connected(stream, user, "alerts")


def test_log_events_carry_id_and_retry_and_match_published_ids(server: ServerProcess) -> None:
    user = uid("ids")
    with open_stream(server, "alerts", server.token(user)) as stream:
        ids = publish(server, alert(user, 1), alert(user, 2, level="warning"))
        assert all(ID_RE.match(i) for i in ids), ids
        stream.read_until(3)
        events = stream.events[1:]
        assert types_of(events) == ["alert:new", "alert:new"]
        assert [e.id for e in events] == ids
        assert [e.retry for e in events] == [5000, 5000]
        for event in events:
            data = event.json()
            assert ISO_RE.match(data["timestamp"]), data
        assert b"\nid: " + ids[0].encode() + b"\nretry: 5000\n\n" in stream.raw


def test_trading_of_another_user_is_forbidden_and_admin_may_read_it(server: ServerProcess) -> None:
    alice, bob, admin = uid("alice"), uid("bob"), uid("admin")
    publish(server, order(alice, "o-1", symbol=sym()))
    response = get(server, f"/api/stream/trading?userId={alice}", server.token(bob))
    assert_error(response, 403)
    with open_stream(server, f"trading?userId={alice}", server.token(admin, "admin"), initial=3) as stream:
        orders_snapshot = stream.events[1].json()
        assert stream.events[1].event == "order:update"
        assert orders_snapshot["snapshot"] is True
        assert [o["orderId"] for o in orders_snapshot["orders"]] == ["o-1"]
        assert stream.events[2].event == "position:update"
        publish(server, order(alice, "o-2", symbol=sym()))
        live = read_until_type(stream, "order:update", lambda d: d.get("orderId") == "o-2")
        assert live.id is not None


def test_unknown_strategy_is_404_and_foreign_strategy_is_403(server: ServerProcess) -> None:
    owner, other = uid("own"), uid("oth")
    strat = uid("st")
    response = get(server, f"/api/stream/strategies/{uid('nope')}", server.token(owner))
    body = assert_error(response, 404)
    assert body["message"] == "Strategy not found"
    publish(server, strategy(owner, strat, status="running"))
    assert_error(get(server, f"/api/stream/strategies/{strat}", server.token(other)), 403)
    with open_stream(server, f"strategies/{strat}", server.token(owner), initial=2) as stream:
        assert stream.events[1].event == "strategy:update"
        assert stream.events[1].json()["strategyId"] == strat


def test_strategy_stream_only_carries_its_own_strategy(server: ServerProcess) -> None:
    user = uid("two")
    s1, s2 = uid("st"), uid("st")
    publish(server, strategy(user, s1, status="running"), strategy(user, s2, status="running"))
    with open_stream(server, f"strategies/{s1}", server.token(user), initial=2) as stream:
        publish(server, strategy(user, s2, signal="x"), strategy(user, s1, signal="end"))
        read_until_type(stream, "strategy:update", lambda d: d.get("signal") == "end")
        assert [e.json()["strategyId"] for e in stream.events[1:]] == [s1, s1]


def test_each_event_type_reaches_the_right_streams_only(server: ServerProcess) -> None:
    """One event of every type, then one sentinel per stream: everything between the
    snapshot and the sentinel must be exactly the stream's own events (logs are ordered)."""
    user = uid("route")
    token = server.token(user)
    strat = uid("st")
    held, priced = sym(), sym()
    agent_marker = uid("agent")
    publish(server, strategy(user, strat, status="created"))

    streams: dict[str, SSEClient] = {}
    initial = {
        "orders": 2,
        "positions": 2,
        "trading": 3,
        "ai-decisions": 1,
        "alerts": 1,
        f"strategies/{strat}": 2,
        f"prices?symbols={priced}": 2,
        "agents": 1,
    }
    try:
        for path, count in initial.items():
            public = path.startswith(("prices", "agents"))
            streams[path] = open_stream(server, path, None if public else token, initial=count)
        skip = {path: len(s.events) for path, s in streams.items()}

        first = publish(
            server,
            order(user, "o-1", symbol=held, side="buy", qty=10),
            fill(user, "o-1", 10, 100.0),
            {"type": "trade:new", "user": user, "data": {"tradeId": "t-1", "symbol": held, "qty": 10}},
            {"type": "ai:decision", "user": user, "data": {"decisionId": "d-1", "action": "buy"}},
            strategy(user, strat, signal="buy", symbol=held, action="enter", confidence=0.9),
            alert(user, 1),
            price(priced, 50.0),
            {"type": "agent:status", "data": {"agentId": agent_marker, "status": "running"}},
        )
        publish(
            server,
            order(user, "end", symbol=held, side="buy", qty=1),
            fill(user, "end2", 1, 1.0, symbol=sym(), side="buy"),
            {"type": "ai:decision", "user": user, "data": {"decisionId": "end"}},
            strategy(user, strat, signal="end"),
            alert(user, "end"),
            price(priced, 51.0),
            {"type": "agent:status", "data": {"agentId": agent_marker, "status": "end"}},
        )

        def is_end(d: dict[str, Any]) -> bool:
            return (
                d.get("orderId") == "end"
                or d.get("decisionId") == "end"
                or d.get("signal") == "end"
                or (d.get("alertId") == "a-end")
                or d.get("price") == 51.0
                or d.get("status") == "end"
                or (d.get("quantity") == 1 and d.get("entryPrice") == 1.0)
            )

        expected = {
            "orders": ["order:update", "order:fill", "order:update"],
            "positions": ["position:update", "position:update"],
            "trading": ["order:update", "order:fill", "position:update", "trade:new", "order:update"],
            "ai-decisions": ["ai:decision", "ai:decision"],
            "alerts": ["alert:new", "alert:new"],
            f"strategies/{strat}": ["strategy:update", "strategy:update"],
            f"prices?symbols={priced}": ["price:update", "price:update"],
        }
        sentinel_type = {
            "orders": "order:update",
            "positions": "position:update",
            "trading": "order:update",
            "ai-decisions": "ai:decision",
            "alerts": "alert:new",
            f"strategies/{strat}": "strategy:update",
            f"prices?symbols={priced}": "price:update",
            "agents": "agent:status",
        }
        for path, stream in streams.items():
            end = read_until_type(stream, sentinel_type[path], is_end)
            got = stream.events[skip[path] : stream.events.index(end) + 1]
            if path == "agents":  # the agent log is public and shared: keep this test's statuses
                got = [e for e in got if e.json().get("agentId") == agent_marker]
                assert types_of(got) == ["agent:status", "agent:status"], path
                continue
            assert types_of(got) == expected[path], (path, [(e.event, e.data[:80]) for e in got])
            for event in got:
                assert event.id is not None
                assert ID_RE.match(event.id)
                assert ISO_RE.match(event.json()["timestamp"])

        # One id per event, the same on every stream of the log and equal to what publish returned.
        orders_ids = [e.id for e in streams["orders"].events[skip["orders"] :]][:2]
        trading_ids = [e.id for e in streams["trading"].events[skip["trading"] :]][:2]
        assert orders_ids == trading_ids == first[:2]
        position = streams["positions"].events[skip["positions"]].json()
        assert position["symbol"] == held
        assert position["quantity"] == 10
        assert position["entryPrice"] == 100
    finally:
        for stream in streams.values():
            stream.close()


def test_prices_stream_filters_live_ticks_by_symbol(server: ServerProcess) -> None:
    a, b = sym(), sym()
    with (
        open_stream(server, f"prices?symbols={a}", initial=2) as only_a,
        open_stream(server, "prices", initial=2) as every,
    ):
        publish(server, price(b, 1.0), price(a, 2.0))
        read_until_type(only_a, "price:update", lambda d: d.get("symbol") == a)
        read_until_type(every, "price:update", lambda d: d.get("symbol") == a)
        assert [e.json()["symbol"] for e in only_a.events[2:]] == [a]
        assert [e.json()["symbol"] for e in every.events[2:]][-2:] == [b, a]
        for event in only_a.events[2:]:
            data = event.json()
            assert (data["price"], data["bid"], data["ask"]) == (2.0, 1.99, 2.01)
            assert event.id is not None


def test_keepalive_comment_when_idle(server: ServerProcess) -> None:
    user = uid("ka")
    with open_stream(server, "alerts", server.token(user)) as stream:
        deadline = time.monotonic() + 5
        while stream.parser.comments == 0 and time.monotonic() < deadline and not stream.closed:
            stream.read_until(len(stream.events) + 1, 0.5)
        assert stream.parser.comments >= 1
        assert b": keepalive\n\n" in stream.raw


def test_log_events_are_numbered_per_type_and_a_resume_keeps_the_numbers(server: ServerProcess) -> None:
    """`seq` on the wire lets a reader see a hole without asking: consecutive per event type."""
    user = uid("seq")
    with open_stream(server, "orders", server.token(user), initial=2) as stream:
        ids = publish(
            server, order(user, "o-1"), alert(user, 1), fill(user, "o-1", 10, 1.5), order(user, "o-2")
        )
        stream.read_until(5)
        numbered = [(e.event, e.seq) for e in stream.events[2:]]
        assert numbered == [("order:update", 1), ("order:fill", 1), ("order:update", 2)]
        assert stream.events[1].seq is None  # a snapshot is not a log event
    with open_stream(server, "orders", server.token(user), headers={"Last-Event-ID": ids[0]}) as resumed:
        read_until_type(resumed, "order:update", lambda d: d["orderId"] == "o-2")
        assert [(e.event, e.seq) for e in resumed.events[1:]] == [("order:fill", 1), ("order:update", 2)]
