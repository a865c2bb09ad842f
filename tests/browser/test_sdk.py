"""The browser SDK in Debian's chromium against a real `tickwire serve` (not demo mode):
a page imports /tickwire.js, subscribes to orders and prices and receives what is
published, over each transport; `/api/stream/me` carries the user's streams over SSE."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page

from browser.kit import Steps, sdk_page, wait_until
from support.e2e import fill, order, price, sym, uid
from support.servers import ServerProcess

CLIENT_PAGE = """
import { TickwireClient } from "/tickwire.js";
const OPTIONS = %(options)s;
window.TOKEN = %(token)s;
window.events = [];
window.tw = new TickwireClient({ ...OPTIONS, getToken: () => window.TOKEN });
window.handles = {
  orders: tw.subscribe("orders", { onEvent: (e) => events.push(e) }),
  prices: tw.subscribe("prices", { symbols: %(symbols)s, onEvent: (e) => events.push(e) }),
};
window.orderEvents = () => events.filter((e) => e.stream === "orders" && e.type.startsWith("order:") && !e.data.snapshot)
  .map((e) => e.data.orderId + ":" + e.type + ":" + e.id);
// What a failure's screenshot shows: the status, the local orders and the last events.
const shown = document.body.appendChild(document.createElement("pre"));
const show = () => {
  const last = events.slice(-12).map((e) => [e.stream, e.type, e.id, e.seq, e.replayed ? "replayed" : "", e.reset ? "reset" : ""].join(" "));
  shown.textContent = [JSON.stringify(tw.status, null, 1), "orders: " + [...tw.local.orders.keys()].join(", "), ...last].join(String.fromCharCode(10));
};
tw.onStatus(show);
setInterval(show, 250);
window.ready = true;
"""


def open_client(page: Page, base_url: str, token: str | None, symbols: list[str], **options: Any) -> None:
    script = CLIENT_PAGE % {
        "options": json.dumps(options),
        "token": json.dumps(token),
        "symbols": json.dumps(symbols),
    }
    sdk_page(page, base_url, script)
    wait_until(page, "window.ready === true")


def wait_connected(page: Page, transport: str | None = None, timeout_s: float = 15) -> None:
    expr = "tw.status.state === 'connected'" + (
        f" && tw.status.transport === '{transport}'" if transport else ""
    )
    wait_until(page, expr, timeout_s)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_KEEPALIVE_S": "1", "TICKWIRE_THROTTLE_MS": "0"}).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize(
    ("transport", "protocol"), [("ws", "json"), ("ws", "msgpack"), ("sse", "json"), ("poll", "json")]
)
def test_orders_and_prices_arrive_over_each_transport(
    page: Page, steps: Steps, server: ServerProcess, transport: str, protocol: str
) -> None:
    user, symbol = uid("bt"), sym()
    with steps("publish before the page opens: it gets a snapshot"):
        server.publish(order(user, "o1", symbol), price(symbol, 10.0))
    with steps(f"open the page over {transport}/{protocol}"):
        open_client(
            page,
            server.url,
            server.token(user),
            [symbol],
            transport=transport,
            protocol=protocol,
            pollIntervalMs=100,
        )
        wait_connected(page, transport)
        wait_until(page, "tw.local.orders.has('o1')")
        wait_until(page, "(s) => tw.local.prices.get(s)?.price === 10", arg=symbol)
    with steps("live order, fill and price"):
        server.publish(order(user, "o2", symbol), fill(user, "o2", 10, 12.5), price(symbol, 11.0))
        wait_until(page, "tw.local.orders.get('o2')?.status === 'filled'")
        wait_until(page, "(s) => tw.local.prices.get(s)?.price === 11", arg=symbol)
    with steps("the status reports the transport and per-stream counts"):
        status = page.evaluate("tw.status")
        assert status["color"] == "green"
        assert status["streams"]["orders"]["events"] >= 2
        assert status["streams"]["orders"]["dupes"] == 0
        if transport == "ws":
            wait_until(page, "tw.status.rttMs !== null")
        seen = page.evaluate("orderEvents()")
        assert [e.rsplit(":", 1)[0] for e in seen if e.startswith("o2:")] == [
            "o2:order:update",
            "o2:order:fill",
        ]
        assert len(seen) == len(set(seen)), seen
    with steps("log events carry the server's seq (per type), ticks none"):
        seqs = page.evaluate(
            "events.filter((e) => e.data.orderId === 'o2' || e.type === 'price:update')"
            ".map((e) => [e.type, e.seq])"
        )
        assert ["order:update", 2] in seqs and ["order:fill", 1] in seqs, seqs
        assert all(seq is None for kind, seq in seqs if kind == "price:update"), seqs
        assert status["streams"]["orders"]["gaps"] == 0


def test_sse_mode_carries_the_users_streams_on_one_me_response(
    page: Page, steps: Steps, server: ServerProcess
) -> None:
    user, symbol = uid("me"), sym()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    with steps("subscribe orders, positions and alerts over SSE"):
        open_client(page, server.url, server.token(user), [symbol], transport="sse")
        page.evaluate(
            "window.alerts = []; tw.subscribe('alerts', { onEvent: (e) => alerts.push(e) });"
            "tw.subscribe('positions')"
        )
        wait_until(page, "tw.status.state === 'connected' && Object.keys(tw.status.streams).length === 4")
    with steps("one /me response for the user's streams, one for prices"):
        wait_until(page, "tw.status.streams.positions.state === 'live'")
        streams = [u for u in urls if "/api/stream/" in u and "/events" not in u]
        me = [u for u in streams if "/api/stream/me?" in u]
        assert me, streams
        assert "streams=alerts%2Corders%2Cpositions" in me[-1], me
        assert any(f"/api/stream/prices?symbols={symbol}" in u for u in streams), streams
    with steps("events are told apart by type"):
        server.publish(
            order(user, "o7", symbol),
            {"type": "alert:new", "user": user, "data": {"alertId": "a1", "level": "info", "message": "hi"}},
        )
        wait_until(page, "alerts.some((e) => e.data.alertId === 'a1')")
        wait_until(page, "tw.local.orders.has('o7')")
        assert page.evaluate("alerts.every((e) => e.type === 'alert:new' || e.type === 'stream:reset')")
        assert page.evaluate("orderEvents().length") == 1


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_login_and_logout_keep_the_public_streams_flowing(
    page: Page, steps: Steps, server: ServerProcess, transport: str
) -> None:
    user, symbol = uid("li"), sym()
    sockets: list[str] = []
    price_requests: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("request", lambda r: price_requests.append(r.url) if "/api/stream/prices" in r.url else None)
    with steps("anonymous (getToken gives no token): prices flow, orders wait for a user"):
        server.publish(price(symbol, 1.0))
        open_client(page, server.url, None, [symbol], transport=transport)
        wait_until(page, "(s) => tw.local.prices.get(s)?.price === 1", arg=symbol)
        wait_until(page, "tw.status.streams.orders?.state === 'unauthorized'")
        assert page.evaluate("tw.status.color") == "green"
    with steps("login: the user's orders start, prices never stopped"):
        server.publish(order(user, "o1", symbol))
        page.evaluate("(t) => { window.TOKEN = t; tw.login(t); }", server.token(user))
        wait_until(page, "tw.local.orders.has('o1') && tw.status.streams.orders.state === 'live'")
        server.publish(order(user, "o2", symbol), price(symbol, 2.0))
        wait_until(
            page, "(s) => tw.local.orders.has('o2') && tw.local.prices.get(s)?.price === 2", arg=symbol
        )
        assert page.evaluate("tw.status.user") == user
        if transport == "ws":
            assert len(sockets) == 1, sockets  # the token went in an auth message on the open socket
        else:
            assert len(price_requests) == 1, price_requests
    with steps("logout: the user's state is cleared, prices go on"):
        page.evaluate("window.TOKEN = null; tw.logout()")
        wait_until(page, "tw.local.orders.size === 0 && tw.status.streams.orders.state === 'unauthorized'")
        server.publish(price(symbol, 3.0))
        wait_until(page, "(s) => tw.local.prices.get(s)?.price === 3", arg=symbol)
        assert page.evaluate("events.filter((e) => e.reset).length") == 0
        assert page.evaluate("Object.values(tw.status.streams).find((s) => s.stream === 'prices').gaps") == 0
        if transport == "sse":
            assert len(price_requests) == 1, price_requests


def test_sse_over_eventsource_with_the_session_cookie_resumes_from_the_last_id(
    page: Page, steps: Steps, server: ServerProcess
) -> None:
    """The reader for hosts without streamed fetch: EventSource, which sends the cookie only
    and reports no status; reopened after a failure, it resumes from the last id."""
    user, symbol = uid("es"), sym()
    requests: list[tuple[str, str]] = []
    page.on(
        "request", lambda r: requests.append((r.resource_type, r.url)) if "/api/stream/" in r.url else None
    )
    me = re.compile(r".*/api/stream/me\?.*")
    with steps("the session cookie; the page reads SSE with EventSource"):
        server.publish(order(user, "o1", symbol), price(symbol, 5.0))
        page.context.add_cookies([{"name": "session", "value": server.token(user), "url": server.url}])
        backoff = {"initialMs": 200, "maxMs": 1000}
        open_client(
            page, server.url, None, [symbol], transport="sse", sseReader="eventsource", backoff=backoff
        )
        wait_connected(page, "sse")
        wait_until(page, "tw.local.orders.has('o1')")
        wait_until(page, "(s) => tw.local.prices.get(s)?.price === 5", arg=symbol)
    with steps("every stream request went through EventSource"):
        streams = [(kind, url) for kind, url in requests if "/events" not in url]
        assert streams, requests
        assert all(kind == "eventsource" for kind, _ in streams), streams
        assert any("/api/stream/me?streams=orders" in url for _, url in streams), streams
    with steps("live order and fill"):
        server.publish(order(user, "o2", symbol), fill(user, "o2", 10, 12.5), price(symbol, 6.0))
        wait_until(page, "tw.local.orders.get('o2')?.status === 'filled'")
        wait_until(page, "(s) => tw.local.prices.get(s)?.price === 6", arg=symbol)
    with steps("the /me response fails to reopen while an order is published"):
        page.route(me, lambda route: route.abort())
        page.evaluate("tw.reconnect()")
        wait_until(page, "tw.status.state === 'reconnecting'")
        server.publish(order(user, "o3", symbol))
        page.unroute(me)
    with steps("reopened: resumes from the last id; the missed order arrives once, marked replayed"):
        wait_connected(page, "sse")
        wait_until(page, "tw.local.orders.has('o3')")
        reopened = [url for kind, url in requests if kind == "eventsource" and "/api/stream/me?" in url][-1]
        assert "lastEventId=" in reopened, reopened
        seen = page.evaluate("orderEvents()")
        assert [e.rsplit(":", 1)[0] for e in seen] == [
            "o2:order:update",
            "o2:order:fill",
            "o3:order:update",
        ], seen
        assert page.evaluate("events.find((e) => e.data.orderId === 'o3').replayed") is True
        assert page.evaluate("events.filter((e) => e.reset).length") == 0
