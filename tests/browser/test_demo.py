"""The demo dashboard (demo mode), rebuilt on the SDK, shows the status colours: green when
connected, yellow while reconnecting and in the polling fallback (with its reason), red
once closed; it lists the user's alert rules, adds and deletes one, and shows the
unacknowledged alerts with an acknowledge button. With TICKWIRE_SCREENSHOTS=DIR the tests
also save their screenshots there (docs/ holds some of them)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, WebSocketRoute

from browser.kit import Steps, wait_until
from support.e2e import alert, get, price, sym
from support.servers import ServerProcess

COLOR = "document.getElementById('conn').dataset.color"


def shoot(page: Page, name: str) -> None:
    folder = os.environ.get("TICKWIRE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name))


@pytest.fixture(scope="module")
def demo() -> Iterator[ServerProcess]:
    proc = ServerProcess({"TICKWIRE_DEMO": "1"}).start()
    yield proc
    proc.stop()


def test_dashboard_shows_the_status_colours(page: Page, steps: Steps, demo: ServerProcess) -> None:
    blocked = {"on": False}

    def websocket(ws: WebSocketRoute) -> None:
        if blocked["on"]:
            ws.close(code=1011, reason="blocked by the test")
        else:
            ws.connect_to_server()

    page.route_web_socket(re.compile(r".*/api/stream/ws.*"), websocket)
    page.route(
        re.compile(r".*/api/stream/(me|prices)(\?.*)?$"),
        lambda route: route.abort() if blocked["on"] else route.continue_(),
    )
    with steps("logged in as alice: green, over one WebSocket"):
        page.goto(demo.url + "/?user=alice")
        wait_until(page, f"{COLOR} === 'green'")
        assert page.text_content("#conn-state") == "connected"
        assert page.text_content("#conn-transport") == "ws/json"
        wait_until(page, "/RTT \\d+ ms/.test(document.getElementById('conn-rtt').textContent)")
        wait_until(page, "document.querySelectorAll('#prices tr:not(.empty)').length >= 6")
        wait_until(page, "document.querySelector('[data-stream=orders] .pill').textContent === 'live'")
        dot = page.eval_on_selector(".conn-dot", "e => getComputedStyle(e).backgroundColor")
        assert dot == "rgb(15, 138, 76)", dot
    with steps("an order from the ticket: the order and its position arrive on the streams"):
        page.click("#ticket button[type=submit]")
        wait_until(page, "document.querySelector('#orders tr:not(.empty) .status')?.textContent === 'filled'")
        wait_until(page, "document.querySelectorAll('#positions tr:not(.empty)').length === 1")
        wait_until(
            page, "/^\\d+ events, 0 dupes, 0 gaps$/.test(document.getElementById('conn-counts').textContent)"
        )
    with steps("an alert is acknowledged from the feed; its alert:ack marks it"):
        demo.publish(alert("alice", "demo-1", "warning", message="AAPL crossed 230"))
        wait_until(page, "document.querySelector('#activity li[data-alert-id=\"a-demo-1\"] .ack') !== null")
        page.click('#activity li[data-alert-id="a-demo-1"] .ack')
        wait_until(
            page,
            "document.querySelector('#activity li[data-alert-id=\"a-demo-1\"]').classList.contains('acked')",
        )
        page.wait_for_timeout(1500)  # some prices move
        shoot(page, "browser-demo-connected.png")
    with steps("streaming blocked: yellow while reconnecting, then the polling fallback"):
        blocked["on"] = True
        page.evaluate("tickwire.reconnect()")
        wait_until(page, f"{COLOR} === 'yellow'")
        wait_until(page, "document.getElementById('conn-state').textContent === 'fallback'", timeout_s=60)
        assert page.is_visible("#conn-fallback")
        assert "5 failed streaming attempts" in (page.text_content("#conn-fallback") or "")
        assert page.text_content("#conn-transport") == "poll"
        dot = page.eval_on_selector(".conn-dot", "e => getComputedStyle(e).backgroundColor")
        assert dot == "rgb(214, 161, 26)", dot
        page.wait_for_timeout(1500)
        shoot(page, "browser-demo-fallback.png")
    with steps("closed: red"):
        page.evaluate("tickwire.close()")
        wait_until(page, f"{COLOR} === 'red'")
        assert page.text_content("#conn-state") == "closed"


RULE_ROW = "[...document.querySelectorAll('#rules tr[data-rule-id]')].find((r) => r.textContent.includes(s))"
FIRED = "(id) => document.querySelector(`#alerts li[data-alert-id^='${id}-']`)?.dataset.alertId"


def test_dashboard_adds_a_rule_that_fires_and_acknowledges_its_alert(
    page: Page, steps: Steps, demo: ServerProcess
) -> None:
    symbol = sym()
    with steps("logged in as alice: her demo rules and her unacknowledged alerts are listed"):
        page.goto(demo.url + "/?user=alice")
        wait_until(page, "document.querySelectorAll('#rules tr[data-rule-id]').length >= 4")
        wait_until(page, "/^\\d+$/.test(document.getElementById('alerts-count').textContent)")
    with steps("a rule added with the form is listed"):
        page.select_option("#rule-form select[name=kind]", "price_above")
        page.fill("#rule-form input[name=symbol]", symbol)
        page.fill("#rule-form input[name=threshold]", "100")
        page.click("#rule-form button[type=submit]")
        rule_id = wait_until(page, f"(s) => {RULE_ROW}?.dataset.ruleId", arg=symbol)
        assert (page.text_content("#rule-status") or "").startswith(rule_id)
    with steps("a crossing price published over the API fires it: an unacknowledged alert"):
        demo.publish(price(symbol, 99.0), price(symbol, 101.0))
        alert_id = wait_until(page, FIRED, arg=rule_id)
        item = f'#alerts li[data-alert-id="{alert_id}"]'
        assert f"{symbol} at 101" in (page.text_content(item) or "")
        wait_until(page, f"(s) => {RULE_ROW}?.querySelector('.fired').textContent === '1'", arg=symbol)
        shoot(page, "browser-demo-alerts.png")
    with steps("acknowledged with its button: it leaves the list, the history has it acknowledged"):
        page.click(f"{item} .ack")
        wait_until(page, f"document.querySelector('{item}') === null")
        history = get(demo, "/api/alerts", demo.token("alice"), params={"limit": 1000}).json()["alerts"]
        (acked,) = [a for a in history if a["alertId"] == alert_id]
        assert acked["acked"] is True and acked["ackedBy"] == "alice", acked
    with steps("a bad rule: the server's 400 names the field"):
        page.select_option("#rule-form select[name=kind]", "pct_move")
        page.fill("#rule-form input[name=threshold]", "-1")
        page.click("#rule-form button[type=submit]")
        wait_until(page, "document.getElementById('rule-status').classList.contains('error')")
        assert "threshold" in (page.text_content("#rule-status") or "")
    with steps("deleted: the rule leaves the list"):
        page.click(f'#rules tr[data-rule-id="{rule_id}"] .delete')
        wait_until(page, f"(s) => !{RULE_ROW}", arg=symbol)
        assert (page.text_content("#rule-status") or "") == f"{rule_id} deleted"
