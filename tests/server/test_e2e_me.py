"""End to end: `/api/stream/me?streams=...` (SPEC 2): several of the caller's own streams on
one connection, one id resuming them all, the union of their snapshots; a WebSocket, which
carries any number of streams already, is told to subscribe to the streams themselves."""

from __future__ import annotations

from support.alerts import WSSubscriber
from support.e2e import (
    alert,
    assert_error,
    get,
    open_stream,
    order,
    poll,
    publish,
    read_until_type,
    types_of,
    uid,
)
from support.e2e_client import SSEClient
from support.servers import ServerProcess

ME = "me?streams=orders,positions,alerts,strategies/{sid}"


def strategy(user: str, sid: str, n: int) -> dict[str, object]:
    return {"type": "strategy:update", "user": user, "data": {"strategyId": sid, "status": "running", "n": n}}


def test_one_connection_carries_several_own_streams_and_resumes_them_all(server: ServerProcess) -> None:
    user, sid, other_sid = uid("me"), uid("s"), uid("s")
    token = server.token(user)
    publish(server, alert(user, 1), order(user, "o1"), strategy(user, sid, 0), strategy(user, other_sid, 0))
    with open_stream(server, ME.format(sid=sid), token, initial=5) as stream:
        connected = stream.events[0].json()
        assert connected["stream"] == "me"
        # buffered events of the log streams first, then the snapshots (the last id: the log's end)
        assert types_of(stream.events[1:5]) == [
            "alert:new",
            "strategy:update",
            "order:update",
            "position:update",
        ]
        assert stream.events[3].json()["orders"][0]["orderId"] == "o1"
        snapshot_id = stream.events[4].id
        publish(
            server, order(user, "o2"), strategy(user, other_sid, 1), strategy(user, sid, 1), alert(user, 2)
        )
        read_until_type(stream, "alert:new", lambda d: d["message"] == "alert 2")
        live = [(e.event, e.json()) for e in stream.events[5:]]
        assert [t for t, _ in live] == ["order:update", "strategy:update", "alert:new"]
        assert live[1][1]["strategyId"] == sid  # another strategy of the user is not part of it
    with SSEClient(
        server.url,
        f"/api/stream/{ME.format(sid=sid)}",
        token=token,
        headers={"Last-Event-ID": snapshot_id or ""},
    ) as resumed:
        resumed.read_until(4, timeout=5)
        assert types_of(resumed.events) == ["connected", "order:update", "strategy:update", "alert:new"]
    streams = f"orders,positions,alerts,strategies/{sid}"
    replay = poll(server, "me", token, after=snapshot_id, streams=streams).json()
    assert [e["event"] for e in replay["events"]] == ["order:update", "strategy:update", "alert:new"]


def test_me_takes_only_the_callers_own_streams(server: ServerProcess) -> None:
    user = uid("me")
    token = server.token(user)
    foreign = uid("s")
    publish(server, strategy(uid("owner"), foreign, 0))
    for query, status in [
        ("streams=orders,prices", 400),
        ("streams=", 400),
        ("", 400),
        ("streams=me", 400),
        ("streams=nope", 404),
        (f"streams=alerts,strategies/{foreign}", 403),
    ]:
        assert_error(get(server, f"/api/stream/me?{query}", token), status)
    assert_error(get(server, "/api/stream/me?streams=orders"), 401)


def test_a_websocket_subscription_to_me_says_to_subscribe_to_the_streams_themselves(
    server: ServerProcess,
) -> None:
    ws = WSSubscriber(server, server.token(uid("me")), [{"stream": "me"}, {"stream": "orders"}])
    try:
        refused = ws.until(lambda m: m.get("type") == "error")
        assert (refused["code"], refused["stream"], refused["rid"]) == ("bad_request", "me", "1")
        assert "subscribe to the streams themselves" in refused["message"], refused
        subscribed = ws.until(lambda m: m.get("type") == "subscribed")
        assert [s["stream"] for s in subscribed["streams"]] == ["orders"]  # the others still start
    finally:
        ws.close()
