"""End to end: per-user connection cap, connect rate per IP, oversized requests (SPEC 5)."""

from __future__ import annotations

from support.e2e import (
    alert,
    assert_error,
    get,
    http,
    open_stream,
    poll,
    publish,
    raw_http,
    read_until_type,
    uid,
)
from support.e2e_client import SSEClient
from support.servers import ServerProcess


def test_eleventh_connection_is_accepted_and_the_oldest_is_closed(server: ServerProcess) -> None:
    user = uid("cap")
    token = server.token(user)
    streams: list[SSEClient] = []
    try:
        for _ in range(10):
            streams.append(open_stream(server, "alerts", token))
        newest = open_stream(server, "alerts", token)
        streams.append(newest)
        oldest = streams[0]
        limit = oldest.wait_for("connection:limit")
        assert limit is not None, oldest.events
        assert limit.id is None
        data = limit.json()
        assert data["limit"] == 10
        assert isinstance(data["message"], str)
        assert oldest.wait_closed(5), "the server did not close the oldest connection"
        # The other ten are all alive and get live events.
        publish(server, alert(user, "after"))
        for stream in streams[1:]:
            read_until_type(stream, "alert:new", lambda d: d.get("alertId") == "a-after")
            assert not stream.of_type("connection:limit")
        assert not oldest.of_type("alert:new")
        metrics = get(server, "/api/stream/metrics", server.token(uid("root"), "admin")).json()
        assert {"userId": user, "clientCount": 10} in metrics["clientsPerUser"]
    finally:
        for stream in streams:
            stream.close()


def test_connect_rate_per_ip_counts_streams_and_polls() -> None:
    proc = ServerProcess({"TICKWIRE_CONNECT_RATE": "3"})
    try:
        proc.start()
        with open_stream(proc, "prices", initial=2):
            pass
        assert poll(proc, "prices").status_code == 200
        assert_error(get(proc, "/api/stream/orders"), 401)  # refused attempts count too
        limited = poll(proc, "prices")  # the 4th attempt in this minute: a poll
        body = assert_error(limited, 429)
        assert limited.headers["retry-after"].isdigit()
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert body["message"]
        stream = SSEClient(proc.url, "/api/stream/prices")
        with stream:
            assert stream.status == 429
            assert stream.headers["retry-after"].isdigit()
            assert stream.body_json()["statusCode"] == 429
        # Operations endpoints are not stream requests and stay reachable.
        assert http.get(proc.url + "/healthz", timeout=5).status_code == 200
    finally:
        proc.stop()


def test_huge_query_string_is_a_4xx_and_the_server_keeps_serving(server: ServerProcess) -> None:
    symbols = ",".join(f"S{i:05d}" for i in range(17000))  # ~100 KB
    status, _, _ = raw_http(
        server,
        f"GET /api/stream/prices?symbols={symbols} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status in (400, 414, 431), status
    # Over the server's own query limit but small enough for the HTTP parser: the JSON shape.
    response = get(server, "/api/stream/prices", params={"symbols": ",".join(f"S{i}" for i in range(1500))})
    assert_error(response, 400)
    response = poll(server, "prices", symbols=",".join(f"S{i}" for i in range(1500)))
    assert_error(response, 400)
    # Others are still served.
    assert http.get(server.url + "/healthz", timeout=5).status_code == 200
    with open_stream(server, "prices?symbols=AAPL", initial=2) as stream:
        assert stream.events[1].json()["initializing"] is True


def test_too_many_or_invalid_symbols_are_400(server: ServerProcess) -> None:
    assert_error(
        get(server, "/api/stream/prices", params={"symbols": ",".join(f"A{i}" for i in range(201))}), 400
    )
    assert_error(get(server, "/api/stream/prices", params={"symbols": "AAPL,<script>"}), 400)
