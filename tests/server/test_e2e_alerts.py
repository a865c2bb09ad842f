"""End to end (a real `tickwire serve`): the alert rules API and the alert history of SPEC 13.
Create, list, patch, delete; validation naming the bad field; another user's ids are 404; a
price crossing published over HTTP reaches the owner's SSE and WebSocket as `alert:new`
and nobody else; an acknowledgement updates the history and reaches a second tab; the per-user
rule bound refuses one rule too many and frees a place on a delete."""

from __future__ import annotations

import httpx
import orjson

from support.alerts import WSSubscriber, call, create_rule
from support.e2e import assert_error, open_stream, price, publish, read_until_type, sym, uid
from support.servers import ServerProcess


def test_create_list_patch_delete(server: ServerProcess) -> None:
    token = server.token(uid("alice"))
    symbol = sym()
    rule = create_rule(
        server, token, kind="pct_move", symbol=symbol, threshold=2.5, windowS=300, severity="warning"
    )
    assert rule["ruleId"].startswith("r-")
    assert (rule["kind"], rule["symbol"], rule["threshold"], rule["windowS"]) == (
        "pct_move",
        symbol,
        2.5,
        300,
    )
    assert (rule["throttleS"], rule["enabled"], rule["armed"], rule["fired"], rule["suppressed"]) == (
        30,
        True,
        True,
        0,
        0,
    )
    second = create_rule(server, token, kind="price_below", symbol=symbol, threshold=10)
    listed = call(server, "GET", "/api/alerts/rules", token).json()["rules"]
    assert [r["ruleId"] for r in listed] == [rule["ruleId"], second["ruleId"]]
    path = f"/api/alerts/rules/{rule['ruleId']}"
    patched = call(server, "PATCH", path, token, {"enabled": False, "threshold": 3})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["enabled"], patched.json()["threshold"]) == (False, 3)
    assert call(server, "GET", path, token).json()["enabled"] is False
    assert call(server, "DELETE", path, token).status_code == 204
    assert_error(call(server, "GET", path, token), 404, "Rule not found")
    assert [r["ruleId"] for r in call(server, "GET", "/api/alerts/rules", token).json()["rules"]] == [
        second["ruleId"]
    ]


def test_validation_errors_name_the_field(server: ServerProcess) -> None:
    token = server.token(uid("alice"))
    rules = "/api/alerts/rules"
    cases = [
        ({"symbol": "A", "threshold": 1}, "`kind` is required"),
        ({"kind": "price_above", "symbol": "A", "threshold": "high"}, "`threshold` must be a finite number"),
        ({"kind": "nope", "symbol": "A", "threshold": 1}, "`kind` must be one of"),
        ({"kind": "price_above", "symbol": "A", "threshold": 1, "colour": "red"}, "unknown field(s) colour"),
        ({"kind": "price_above", "symbol": "A", "threshold": 1, "severity": "x"}, "`severity` must be"),
    ]
    for body, message in cases:
        error = assert_error(call(server, "POST", rules, token, body), 400)
        assert message in error["message"], error
    assert_error(call(server, "POST", rules, token, [1, 2]), 400, "Body must be a JSON object")
    bad_json = httpx.post(
        server.url + rules,
        content=b"{nope",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert "not valid JSON" in assert_error(bad_json, 400)["message"]
    assert_error(call(server, "POST", rules, None, {"kind": "price_above"}), 401, "No valid session found")
    assert_error(call(server, "GET", "/api/alerts", token, limit=0), 400)
    rule = create_rule(server, token, kind="price_above", symbol="A", threshold=1)
    error = assert_error(call(server, "PATCH", f"{rules}/{rule['ruleId']}", token, {"windowS": 5}), 400)
    assert "windowS" in error["message"]


def test_the_per_user_rule_bound_refuses_one_too_many_until_one_is_deleted() -> None:
    """With `alert_max_rules` at 2 the third rule is refused before anything is written; a
    delete frees the place again, and another user has a bound of their own."""
    proc = ServerProcess({"TICKWIRE_ALERT_MAX_RULES": "2"}).start()
    try:
        token = proc.token(uid("alice"))
        rules = "/api/alerts/rules"
        first = create_rule(proc, token, kind="price_above", symbol=sym(), threshold=1)
        second = create_rule(proc, token, kind="price_below", symbol=sym(), threshold=1)
        refused = call(proc, "POST", rules, token, {"kind": "price_above", "symbol": sym(), "threshold": 3})
        error = assert_error(refused, 400)
        assert "at most 2 rules per user" in error["message"], error
        listed = call(proc, "GET", rules, token).json()["rules"]
        assert [r["ruleId"] for r in listed] == [first["ruleId"], second["ruleId"]]
        create_rule(proc, proc.token(uid("bob")), kind="price_above", symbol=sym(), threshold=1)
        assert call(proc, "DELETE", f"{rules}/{first['ruleId']}", token).status_code == 204
        third = create_rule(proc, token, kind="price_above", symbol=sym(), threshold=3)
        listed = call(proc, "GET", rules, token).json()["rules"]
        assert [r["ruleId"] for r in listed] == [second["ruleId"], third["ruleId"]]
        assert_error(
            call(proc, "POST", rules, token, {"kind": "price_above", "symbol": "A", "threshold": 4}), 400
        )
    finally:
        proc.stop()


def test_another_users_rule_and_alert_ids_are_not_found(server: ServerProcess) -> None:
    alice, bob = uid("alice"), uid("bob")
    rule = create_rule(server, server.token(alice), kind="price_above", symbol=sym(), threshold=1)
    publish(server, {"type": "alert:new", "user": alice, "data": {"alertId": "secret", "message": "m"}})
    token = server.token(bob)
    path = f"/api/alerts/rules/{rule['ruleId']}"
    for method, body in (("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)):
        assert_error(call(server, method, path, token, body), 404, "Rule not found")
    assert_error(call(server, "POST", "/api/alerts/secret/ack", token), 404, "Alert not found")
    assert call(server, "GET", "/api/alerts", token).json() == {"alerts": [], "next": None}
    assert call(server, "GET", path, server.token(alice)).json()["enabled"] is True  # untouched


def test_a_crossing_reaches_the_owners_sse_and_websocket_and_nobody_else(server: ServerProcess) -> None:
    alice, bob, symbol = uid("alice"), uid("bob"), sym()
    rule = create_rule(
        server, server.token(alice), kind="price_above", symbol=symbol, threshold=100, severity="error"
    )
    ws = WSSubscriber(server, server.token(alice), [{"stream": "alerts"}])
    with (
        open_stream(server, "alerts", server.token(alice)) as mine,
        open_stream(server, "alerts", server.token(bob)) as theirs,
    ):
        publish(server, price(symbol, 99.5))
        publish(server, price(symbol, 100.5))
        event = read_until_type(mine, "alert:new", lambda d: d.get("ruleId") == rule["ruleId"])
        data = event.json()
        assert (data["symbol"], data["value"], data["threshold"], data["kind"]) == (
            symbol,
            100.5,
            100,
            "price_above",
        )
        assert data["severity"] == data["level"] == "error" and data["urgent"] is True
        assert event.id is not None
        message = ws.until(lambda m: m.get("event") == "alert:new")
        assert message["data"]["alertId"] == data["alertId"] and message["id"] == event.id
        theirs.read_for(0.3)
        assert theirs.of_type("alert:new") == []
    ws.close()
    stored = call(server, "GET", f"/api/alerts/rules/{rule['ruleId']}", server.token(alice)).json()
    assert (stored["fired"], stored["armed"]) == (1, False) and stored["lastFiredAt"]


def test_history_pages_and_an_ack_reaches_a_second_tab(server: ServerProcess) -> None:
    alice = uid("alice")
    token = server.token(alice)
    items = [
        {"type": "alert:new", "user": alice, "data": {"alertId": f"a{i}", "message": f"m{i}"}}
        for i in range(5)
    ]
    publish(server, *items)
    first = call(server, "GET", "/api/alerts", token, limit=2).json()
    assert [a["alertId"] for a in first["alerts"]] == ["a4", "a3"] and first["next"] == "a3"
    rest = call(server, "GET", "/api/alerts", token, limit=10, before=first["next"]).json()
    assert [a["alertId"] for a in rest["alerts"]] == ["a2", "a1", "a0"] and rest["next"] is None
    assert call(server, "GET", "/api/alerts", token, limit=5).json()["next"] is None  # exactly all
    with (
        open_stream(server, "alerts", token, initial=6) as tab1,
        open_stream(server, "alerts", token, initial=6) as tab2,
    ):
        acked = call(server, "POST", "/api/alerts/a3/ack", token)
        assert acked.status_code == 200, acked.text
        body = acked.json()
        assert body["alertId"] == "a3" and body["by"] == alice and body["ackedAt"]
        for tab in (tab1, tab2):
            event = read_until_type(tab, "alert:ack", lambda d: d.get("alertId") == "a3")
            assert event.json()["ackedAt"] == body["ackedAt"] and event.id is not None
    assert call(server, "POST", "/api/alerts/a3/ack", token).json() == body  # idempotent
    unacked = call(server, "GET", "/api/alerts", token, unacked="true").json()["alerts"]
    assert [a["alertId"] for a in unacked] == ["a4", "a2", "a1", "a0"]
    everything = call(server, "GET", "/api/alerts", token).json()["alerts"]
    assert [(a["alertId"], a["acked"]) for a in everything][:2] == [("a4", False), ("a3", True)]


def test_state_changes_refuse_forms_and_cross_site_cookies(server: ServerProcess) -> None:
    """server/csrf.py guards these endpoints too: a form body is 415 and the session cookie
    from another site is 403, whatever the endpoint; the cookie from this host works."""
    alice = uid("alice")
    cookie = f"session={server.token(alice)}"
    body = orjson.dumps({"kind": "price_above", "symbol": "A", "threshold": 1})
    own = f"http://127.0.0.1:{server.port}"
    writes = [
        ("POST", "/api/alerts/rules"),
        ("PATCH", "/api/alerts/rules/r-x"),
        ("POST", "/api/alerts/a-x/ack"),
        ("POST", "/api/scans/s-x/run"),
    ]
    for method, path in writes:
        url = server.url + path
        json_cross = {"Cookie": cookie, "Origin": "https://evil.example", "Content-Type": "application/json"}
        assert_error(httpx.request(method, url, content=body, headers=json_cross), 403)
        form = {"Cookie": cookie, "Origin": own, "Content-Type": "text/plain"}
        assert_error(httpx.request(method, url, content=body, headers=form), 415)
    assert_error(httpx.delete(server.url + "/api/alerts/rules/r-x", headers={"Cookie": cookie}), 403)
    same_site = {"Cookie": cookie, "Origin": own, "Content-Type": "application/json"}
    created = httpx.post(server.url + "/api/alerts/rules", content=body, headers=same_site)
    assert created.status_code == 201, created.text
    assert [
        r["ruleId"] for r in call(server, "GET", "/api/alerts/rules", server.token(alice)).json()["rules"]
    ] == [created.json()["ruleId"]]
