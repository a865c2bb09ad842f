"""The alerts API (SPEC 13): a user's rules and alert history, the caller's own only (an id
of another user's rule or alert is simply not found: 404).

    POST   /api/alerts/rules              create -> 201 with the rule and its ruleId
    GET    /api/alerts/rules              the caller's rules, oldest first
    GET    /api/alerts/rules/{ruleId}     one rule
    PATCH  /api/alerts/rules/{ruleId}     change fields ({"enabled": false}, a threshold...)
    DELETE /api/alerts/rules/{ruleId}     remove -> 204
    GET    /api/alerts?unacked=true&limit=N&before=ID   history, newest first; `next` pages on
    POST   /api/alerts/{alertId}/ack      acknowledge: publishes `alert:ack` to the user's log

A rule's evaluation state is part of it: `armed`, `fired`, `suppressed` (crossings the
throttle held back) and `lastFiredAt`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tickwire.core.event import iso_timestamp
from tickwire.core.streams import Principal
from tickwire.domain.alerting import Alerting
from tickwire.domain.rules import Rule
from tickwire.errors import Refused
from tickwire.pipeline import PublishRequest
from tickwire.server.api import answer, api, bool_param, int_param, no_content, read_object

RULES = "GET, POST, OPTIONS"
RULE = "GET, PATCH, DELETE, OPTIONS"
HISTORY = "GET, OPTIONS"
ACK = "POST, OPTIONS"
MAX_ID = 256


def rule_view(rule: Rule) -> dict[str, Any]:
    view = rule.to_json()
    view["createdAt"] = iso_timestamp(view.pop("createdMs"))
    last = view.pop("lastFiredMs")
    view["lastFiredAt"] = iso_timestamp(last) if last is not None else None
    return view


def _id(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    if not value or len(value) > MAX_ID:
        raise Refused(404, "Rule not found" if name == "ruleId" else "Alert not found")
    return value


async def _rules(request: Request, principal: Principal, alerting: Alerting) -> Response:
    assert principal.user is not None
    if request.method == "POST":
        rule = await alerting.rules.create(principal.user, await read_object(request))
        return answer(request, rule_view(rule), RULES, 201)
    rules = await alerting.rules.rules_of(principal.user)
    return answer(request, {"rules": [rule_view(r) for r in rules]}, RULES)


async def _rule(request: Request, principal: Principal, alerting: Alerting) -> Response:
    assert principal.user is not None
    rule_id = _id(request, "ruleId")
    store = alerting.rules
    if request.method == "PATCH":
        rule = await store.patch(principal.user, rule_id, await read_object(request))
    elif request.method == "DELETE":
        if await store.delete(principal.user, rule_id):
            return no_content(request, RULE)
        rule = None
    else:
        rule = await store.get(principal.user, rule_id)
    if rule is None:
        raise Refused(404, "Rule not found")
    return answer(request, rule_view(rule), RULE)


async def _history(request: Request, principal: Principal, alerting: Alerting) -> Response:
    assert principal.user is not None
    limit = int_param(request, "limit", 100, 1, 1000)
    before = request.query_params.get("before") or None
    if before is not None and len(before) > MAX_ID:
        raise Refused(400, f"`before` must be an alert id (at most {MAX_ID} characters)")
    alerts, after = await alerting.reader.page(
        principal.user, limit=limit, before=before, unacked=bool_param(request, "unacked")
    )
    return answer(request, {"alerts": alerts, "next": after}, HISTORY)


async def _ack(request: Request, principal: Principal, alerting: Alerting) -> Response:
    assert principal.user is not None
    alert_id = _id(request, "alertId")
    acked = await alerting.reader.ack(principal.user, alert_id)
    if acked is None:
        raise Refused(404, "Alert not found")
    payload, new = acked
    if new:  # every connection of the user learns it (it travels on the user's log)
        node = request.app.state.node
        await node.publish(
            [PublishRequest("alert:ack", payload, principal.user)], trace=request.state.correlation_id
        )
    return answer(request, payload, ACK)


def alert_routes() -> list[Route]:
    return [
        Route("/api/alerts/rules", api(RULES, _rules), methods=["GET", "POST"]),
        Route("/api/alerts/rules/{ruleId}", api(RULE, _rule), methods=["GET", "PATCH", "DELETE"]),
        Route("/api/alerts/{alertId}/ack", api(ACK, _ack), methods=["POST"]),
        Route("/api/alerts", api(HISTORY, _history), methods=["GET"]),
    ]
