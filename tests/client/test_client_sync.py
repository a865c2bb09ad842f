"""The synchronous facade (sync.py) in a plain script: no asyncio in sight, local state
ready on return, events read with a timeout, a handler on a subscription, history."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson

from support.servers import ServerProcess

SCRIPT = """
import sys, threading, httpx, orjson
import tickwire.client

url, token, publisher, symbol = sys.argv[1:5]
out = {}
with tickwire.client.connect(url, ["orders", "prices", "alerts"], token=token, timeout=10) as c:
    out["price"] = c.local.price(symbol)
    out["orders"] = sorted(c.local.orders)
    handled = threading.Event()
    sub = c.subscribe("alerts", handler=lambda ev: handled.set() if ev.type == "alert:new" else None)
    sub.ready()
    answer = httpx.post(
        url + "/api/publish",
        json=[{"type": "alert:new", "user": sys.argv[5], "data": {"alertId": "a1", "level": "info", "message": "m"}}],
        headers={"Authorization": "Bearer " + publisher},
    )
    answer.raise_for_status()
    out["alerts"] = []
    for ev in c.events(timeout=5):
        if ev.type == "alert:new":
            out["alerts"].append(ev.data.alert_id)
            break
    out["handled"] = handled.wait(5)
    out["history"] = [ev.type for ev in c.history("orders")]
    out["state"] = c.state.value
print(orjson.dumps(out).decode())
"""


def test_a_plain_script_reads_state_events_and_history(server: ServerProcess, kit: Any) -> None:
    user, symbol = kit.uid("sync"), kit.sym()
    server.publish(kit.price(symbol, 12.5))
    server.publish(kit.order(user, "o1"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    args = [server.url, server.token(user), server.token("pub", "publisher"), symbol, user]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = orjson.loads(done.stdout)
    assert out["price"] == 12.5 and out["orders"] == ["o1"]
    assert out["alerts"] == ["a1"] and out["handled"] is True
    assert out["history"] == ["order:update"]  # the snapshot a new connection would get
    assert out["state"] == "connected"
