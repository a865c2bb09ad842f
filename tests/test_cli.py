"""The `tickwire` command against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import jwt
import orjson

from support.servers import SECRET, ServerProcess


def tickwire(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tickwire", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def test_token_is_a_valid_jwt_with_roles() -> None:
    out = tickwire(
        "token", "--user", "alice", "--role", "admin", "--ttl", "60", env={"TICKWIRE_SECRET": SECRET}
    )
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["admin"]
    assert claims["exp"] - claims["iat"] == 60


def test_token_without_a_secret_says_what_to_do() -> None:
    out = tickwire("token", "--user", "alice")
    assert out.returncode == 2
    assert "TICKWIRE_SECRET" in out.stderr


def test_token_refuses_a_short_secret() -> None:
    out = tickwire("token", "--user", "alice", "--secret", "short")
    assert out.returncode == 2
    assert "at least 32 bytes" in out.stderr


def test_serve_with_bad_config_exits_with_a_clear_message() -> None:
    out = tickwire("serve", env={"TICKWIRE_SECRET": SECRET, "TICKWIRE_PORT": "eighty"})
    assert out.returncode == 2
    assert "TICKWIRE_PORT" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_without_secret_explains() -> None:
    out = tickwire("serve")
    assert out.returncode == 2
    assert "TICKWIRE_SECRET is not set" in out.stderr


def test_publish_and_tail(server: ServerProcess) -> None:
    token = server.token("cli-user")
    env = {"TICKWIRE_SECRET": SECRET}
    result: dict[str, subprocess.CompletedProcess[str]] = {}

    def tail() -> None:
        result["tail"] = tickwire(
            "tail",
            f"{server.url}/api/stream/alerts",
            "--token",
            token,
            "--max-events",
            "3",
            "--json",
            "--duration",
            "20",
        )

    thread = threading.Thread(target=tail)
    thread.start()
    time.sleep(1.5)  # let the tail connect; the assertions below do not depend on timing
    ids = []
    for i in range(2):
        out = tickwire(
            "publish",
            "--url",
            server.url,
            "--type",
            "alert:new",
            "--user",
            "cli-user",
            "--data",
            orjson.dumps({"message": f"m{i}"}).decode(),
            env=env,
        )
        assert out.returncode == 0, out.stderr
        ids.append(out.stdout.strip())
    thread.join(30)
    lines = [orjson.loads(line) for line in result["tail"].stdout.splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == "connected"
    alerts = [line for line in lines if line["event"] == "alert:new"]
    assert [a["data"]["message"] for a in alerts] == ["m0", "m1"][: len(alerts)]
    assert [a["id"] for a in alerts] == ids[: len(alerts)]
    assert len(lines) == 3


def test_publish_reports_server_errors() -> None:
    proc = ServerProcess().start()
    try:
        out = tickwire(
            "publish", "--url", proc.url, "--type", "nope", "--data", "{}", env={"TICKWIRE_SECRET": SECRET}
        )
        assert out.returncode == 1
        assert "HTTP 400" in out.stderr and "unknown event type" in out.stderr
        bad_json = tickwire(
            "publish",
            "--url",
            proc.url,
            "--type",
            "alert:new",
            "--data",
            "{",
            env={"TICKWIRE_SECRET": SECRET},
        )
        assert bad_json.returncode == 2
        assert "not valid JSON" in bad_json.stderr
    finally:
        proc.stop()


def test_tail_reports_http_errors(server: ServerProcess) -> None:
    out = tickwire("tail", f"{server.url}/api/stream/orders", "--max-events", "1")
    assert out.returncode == 1
    assert "HTTP 401" in out.stderr


def test_serve_bounds_request_heads_and_connections_per_ip_from_the_settings() -> None:
    """`tickwire serve` runs uvicorn with drivers/uvicorn_http.py's protocol, bound by the settings
    (defaults: 32 KiB heads, 10 s to send one, 1000 connections per IP)."""
    from tickwire.cli import _http_protocol
    from tickwire.config import load_settings
    from tickwire.drivers.uvicorn_http import TickwireHTTPProtocol

    defaults = _http_protocol(load_settings(env={"TICKWIRE_SECRET": SECRET}))
    assert isinstance(defaults, type) and issubclass(defaults, TickwireHTTPProtocol)
    guard = defaults.guard
    assert (guard.max_head_bytes, guard.head_timeout_s, guard.max_conns_per_ip) == (32768, 10.0, 1000)
    env = {
        "TICKWIRE_SECRET": SECRET,
        "TICKWIRE_MAX_HEADER_BYTES": "4096",
        "TICKWIRE_HEADER_TIMEOUT_S": "2.5",
        "TICKWIRE_MAX_CONNS_PER_IP": "0",
    }
    configured = _http_protocol(load_settings(env=env))
    assert isinstance(configured, type) and issubclass(configured, TickwireHTTPProtocol)
    assert (configured.guard.max_head_bytes, configured.guard.head_timeout_s) == (4096, 2.5)
    assert configured.guard.max_conns_per_ip == 0
    assert defaults.guard is not configured.guard  # one guard per server
