"""The React hooks of /tickwire-react.js render live data in a small page (React bundled
for the test, mapped by an import map), and a price tick re-renders only its own symbol;
useStream() without arguments re-renders as the connection's state changes; useAlerts
lists the unacknowledged alerts and follows acknowledgements of another tab."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from browser.kit import Steps, sdk_page, serve_react, wait_until
from support.e2e import alert, fill, get, order, price, sym, uid
from support.servers import ServerProcess

APP = """
import { createElement as h, createRoot, StrictMode } from "react";
import { TickwireProvider, ConnectionStatus, usePriceStream, useOrders, usePositions, useStream } from "/tickwire-react.js";
const [A, B] = %(symbols)s;
window.TOKEN = %(token)s;
window.renders = { [A]: 0, [B]: 0 };
function Price({ symbol }) {
  const { prices } = usePriceStream([symbol]);
  window.renders[symbol] += 1;
  return h("div", { id: "price-" + symbol }, symbol + " " + (prices[symbol]?.price ?? "-"));
}
function Orders() {
  const { orders } = useOrders();
  return h("ul", { id: "orders" }, orders.map((o) => h("li", { key: o.orderId }, o.orderId + " " + o.status)));
}
function Positions() {
  const { positions, totalValue } = usePositions();
  return h("div", { id: "positions" }, positions.length + " positions, total " + totalValue);
}
function Alerts() {
  const { events, last } = useStream("alerts");
  return h("div", { id: "alerts" }, events.length + " alerts, last: " + (last ? last.data.message : "-"));
}
function App() {
  return h(StrictMode, null, h(TickwireProvider, { getToken: () => window.TOKEN, transport: "ws" },
    h(ConnectionStatus), h(Price, { symbol: A }), h(Price, { symbol: B }), h(Orders), h(Positions), h(Alerts)));
}
createRoot(document.getElementById("root")).render(h(App));
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_KEEPALIVE_S": "1", "TICKWIRE_THROTTLE_MS": "0"}).start()
    yield proc
    proc.stop()


def test_hooks_render_live_data_without_rerendering_every_subscriber(
    page: Page, steps: Steps, server: ServerProcess
) -> None:
    user, a, b = uid("re"), sym(), sym()
    with steps("the React page connects"):
        server.publish(price(a, 1.0), price(b, 100.0))
        importmap = serve_react(page, server.url)
        script = APP % {"symbols": json.dumps([a, b]), "token": json.dumps(server.token(user))}
        sdk_page(page, server.url, script, importmap=importmap, body='<div id="root"></div>')
        wait_until(page, "document.querySelector('.tw-status')?.dataset.state === 'connected'")
        assert page.get_attribute(".tw-status", "data-color") == "green"
        wait_until(page, "(s) => document.getElementById('price-' + s)?.textContent.endsWith(' 100')", arg=b)
    with steps("orders, fills, positions and alerts render"):
        server.publish(
            order(user, "o1", a),
            fill(user, "o1", 10, 1.0),
            {
                "type": "alert:new",
                "user": user,
                "data": {"alertId": "a1", "level": "info", "message": "hello"},
            },
        )
        wait_until(page, "document.getElementById('orders').textContent.includes('o1 filled')")
        wait_until(page, "document.getElementById('positions').textContent.startsWith('1 positions')")
        wait_until(page, "document.getElementById('alerts').textContent.endsWith('last: hello')")
        assert "orders: live" in page.text_content(".tw-streams")
    with steps("ticks of A re-render A's component, never B's"):
        before = page.evaluate("({ ...renders })")
        for i in range(30):
            server.publish(price(a, 2.0 + i))
        wait_until(page, "(s) => document.getElementById('price-' + s).textContent.endsWith(' 31')", arg=a)
        after = page.evaluate("({ ...renders })")
        assert after[b] == before[b], (before, after)
        assert 1 <= after[a] - before[a] <= 30, (before, after)
    with steps("the reconnect button reconnects"):
        page.click(".tw-reconnect")
        wait_until(page, "document.querySelector('.tw-status').dataset.state === 'connected'")


STATUS_APP = """
import { createElement as h, createRoot } from "react";
import { TickwireProvider, useStream } from "/tickwire-react.js";
window.shown = [];
function Status() {
  const { status } = useStream();
  if (window.shown[window.shown.length - 1] !== status.state) window.shown.push(status.state);
  return h("div", { id: "status", "data-state": status.state }, status.state);
}
createRoot(document.getElementById("root")).render(h(TickwireProvider,
  { transport: "ws", backoff: { initialMs: 200, maxMs: 1000 } }, h(Status)));
"""


def test_use_stream_without_arguments_renders_the_connection_status_as_it_changes(
    page: Page, steps: Steps
) -> None:
    """The server is the test's own: it stops and comes back on the same port."""
    server = ServerProcess().start()
    restarted: ServerProcess | None = None
    shown = "document.getElementById('status')?.dataset.state"
    try:
        with steps("the page connects: useStream() shows 'connected'"):
            sdk_page(
                page,
                server.url,
                STATUS_APP,
                importmap=serve_react(page, server.url),
                body='<div id="root"></div>',
            )
            wait_until(page, f"{shown} === 'connected'")
        with steps("the server stops: useStream() shows 'reconnecting'"):
            server.stop()
            wait_until(page, f"{shown} === 'reconnecting'")
        with steps("the server comes back on the same port: useStream() shows 'connected' again"):
            restarted = ServerProcess()
            restarted.port = server.port
            restarted.env["TICKWIRE_PORT"] = str(server.port)
            restarted.start()
            wait_until(page, f"{shown} === 'connected'", timeout_s=30)
            assert page.evaluate("window.shown") == ["connecting", "connected", "reconnecting", "connected"]
    finally:
        if restarted is not None:
            restarted.stop()
        server.stop()


ALERTS_APP = """
import { createElement as h, createRoot } from "react";
import { TickwireProvider, useAlerts } from "/tickwire-react.js";
window.TOKEN = %(token)s;
function Alerts() {
  const { alerts, ack, loading, status } = useAlerts();
  return h("ul", { id: "alerts", "data-loading": String(loading), "data-state": status?.state ?? "" },
    alerts.map((a) => h("li", { key: a.alertId, "data-alert-id": a.alertId }, a.message,
      h("button", { className: "ack", onClick: () => ack(a.alertId) }, "acknowledge"))));
}
createRoot(document.getElementById("root")).render(
  h(TickwireProvider, { getToken: () => window.TOKEN, transport: "ws" }, h(Alerts)));
"""

# The second tab: the plain SDK's feed over SSE (the user's streams on /api/stream/me).
FEED_PAGE = """
import { TickwireClient } from "/tickwire.js";
window.tw = new TickwireClient({ getToken: () => %(token)s, transport: "sse" });
window.feed = tw.alerts();
window.ids = () => feed.alerts.map((a) => a.alertId).join(",");
"""


def test_use_alerts_lists_acknowledges_and_follows_another_tab(
    page: Page, steps: Steps, server: ServerProcess
) -> None:
    user = uid("al")
    token = json.dumps(server.token(user))
    other = page.context.new_page()
    ids = "[...document.querySelectorAll('#alerts li')].map((e) => e.dataset.alertId).join(',')"
    with steps("an alert published before the pages open is listed from the history in both tabs"):
        server.publish(alert(user, 1, message="first"))
        sdk_page(
            page,
            server.url,
            ALERTS_APP % {"token": token},
            importmap=serve_react(page, server.url),
            body='<div id="root"></div>',
        )
        sdk_page(other, server.url, FEED_PAGE % {"token": token})
        wait_until(page, f"{ids} === 'a-1'")
        wait_until(other, "window.ids?.() === 'a-1'")
    with steps("a new alert on the stream is listed first in both tabs"):
        wait_until(page, "document.getElementById('alerts').dataset.state === 'live'")
        wait_until(other, "tw.status.state === 'connected' && tw.status.streams.alerts?.state === 'live'")
        server.publish(alert(user, 2, "warning", message="second"))
        wait_until(page, f"{ids} === 'a-2,a-1'")
        wait_until(other, "ids() === 'a-2,a-1'")
    with steps("ack() in the React tab: gone there and, by alert:ack, in the other tab"):
        page.click('#alerts li[data-alert-id="a-1"] .ack')
        wait_until(page, f"{ids} === 'a-2'")
        wait_until(other, "ids() === 'a-2'")
    with steps("an ack in the other tab reaches the React tab; the history has none unacknowledged"):
        assert other.evaluate("feed.ack('a-2').then((a) => a.by)") == user
        wait_until(page, f"{ids} === ''")
        left = get(server, "/api/alerts", server.token(user), params={"unacked": "true"}).json()
        assert left == {"alerts": [], "next": None}, left
