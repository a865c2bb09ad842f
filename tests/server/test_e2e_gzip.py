"""End to end: gzip-encoded SSE that still delivers every event at once (SPEC section 3)."""

from __future__ import annotations

from support.drivers import EVERY_DRIVER
from support.e2e import alert, open_stream, price, publish, read_until_type, sym, uid
from support.e2e_client import SSEClient
from support.servers import ServerProcess

pytestmark = EVERY_DRIVER


def test_gzip_stream_is_decodable_while_open(server: ServerProcess) -> None:
    user = uid("gz")
    token = server.token(user)
    with open_stream(server, "alerts", token, headers={"Accept-Encoding": "gzip"}) as stream:
        assert stream.headers.get("content-encoding") == "gzip"
        assert stream.events[0].event == "connected"  # decoded before anything else was published
        assert stream.body[:2] == b"\x1f\x8b"  # a gzip member on the wire
        for n in range(3):
            publish(server, alert(user, n))
            event = read_until_type(stream, "alert:new", lambda d, n=n: d.get("alertId") == f"a-{n}")
            assert event.id is not None
        assert not stream.closed
        assert [e.json()["alertId"] for e in stream.of_type("alert:new")] == ["a-0", "a-1", "a-2"]


def test_gzip_negotiated_among_several_codings_on_a_public_stream(server: ServerProcess) -> None:
    s = sym()
    with open_stream(
        server, f"prices?symbols={s}", headers={"Accept-Encoding": "br, gzip;q=0.8"}, initial=2
    ) as stream:
        assert stream.headers.get("content-encoding") == "gzip"
        publish(server, price(s, 10.0))
        read_until_type(stream, "price:update", lambda d: d.get("price") == 10.0)


def test_no_gzip_without_accept_encoding_or_with_q0(server: ServerProcess) -> None:
    user = uid("nogz")
    with open_stream(server, "alerts", server.token(user)) as stream:
        assert "content-encoding" not in stream.headers
        assert stream.raw.startswith(b"event: connected\n")
    stream = SSEClient(
        server.url,
        "/api/stream/alerts",
        token=server.token(user),
        headers={"Accept-Encoding": "gzip;q=0, identity"},
    )
    with stream:
        assert stream.status == 200
        assert "content-encoding" not in stream.headers
