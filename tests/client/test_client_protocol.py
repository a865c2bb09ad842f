"""The versioned envelope (SPEC 6), `urgent` on events, and client settings from YAML
(`load_client_config`, `tickwire tail --config`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from support.servers import ServerProcess
from tickwire.client import (
    BackoffPolicy,
    Client,
    ClientConfig,
    ConnectionState,
    ProtocolVersionError,
    load_client_config,
)
from tickwire.client.transports import check_version


def test_versions_absent_or_1_are_accepted_and_2_refused() -> None:
    for fine in ({}, {"v": 1}, {"v": "1"}, {"v": 1.3}, "not a dict"):
        check_version(fine, "test")
    for wrong in ({"v": 2}, {"v": "2.0"}, {"v": 0}, {"v": "x"}):
        with pytest.raises(ProtocolVersionError, match="version"):
            check_version(wrong, "test")


@contextlib.asynccontextmanager
async def sse_server(version: object) -> AsyncIterator[str]:
    """An HTTP server whose every response is an event stream starting with `connected`."""
    connected: dict[str, Any] = {"clientId": "x", "stream": "agents", "timestamp": "2026-01-02T10:30:00.000Z"}
    if version is not None:
        connected["v"] = version

    handlers: set[asyncio.Task[None]] = set()

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
            writer.write(b"event: connected\ndata: " + orjson.dumps(connected) + b"\n\n")
            writer.write(b'event: agent:status\ndata: {"agentId":"a","state":"up"}\nid: 1700000000000-x\n\n')
            await writer.drain()
            await asyncio.Event().wait()  # until the test ends

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await serve_one(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)


@contextlib.asynccontextmanager
async def ws_server(version: object) -> AsyncIterator[str]:
    async def handle(ws: ServerConnection) -> None:
        async for frame in ws:
            command = orjson.loads(frame)
            if command.get("type") == "subscribe":
                answer: dict[str, Any] = {"type": "subscribed", "rid": command["rid"]}
                if version is not None:
                    answer["v"] = version
                answer["streams"] = [{"stream": s["stream"], "recovered": True} for s in command["streams"]]
                await ws.send(orjson.dumps(answer).decode())

    async with serve(handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_an_unknown_major_version_ends_the_client_clearly(transport: str, kit: Any) -> None:
    fake = sse_server if transport == "sse" else ws_server

    async def run(version: object) -> Client:
        async with fake(version) as url:
            client = Client(url, ["agents"], transport=transport, fallback_after=0, **kit.FAST)
            async with client, asyncio.timeout(10):
                if version == 2:
                    with pytest.raises(ProtocolVersionError, match="protocol version 2"):
                        async for _ in client.events():
                            pass
                else:
                    await client.ready()
            return client

    assert asyncio.run(run(2)).state is ConnectionState.CLOSED
    for version in (1, None):  # today's servers, and those from before the envelope had it
        asyncio.run(run(version))


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
def test_error_alerts_are_urgent(server: ServerProcess, kit: Any, transport: str) -> None:
    user = kit.uid("urgent")

    async def main() -> dict[str, bool]:
        client = Client(server.url, ["alerts"], token=server.token(user), transport=transport, **kit.FAST)
        out: dict[str, bool] = {}
        async with client, kit.Publisher(server) as publish, asyncio.timeout(15):
            await client.ready()
            await publish(kit.alert(user, 1, level="info"), kit.alert(user, 2, level="error"))
            async for event in client.events():
                if event.type == "alert:new":
                    out[event.data.alert_id] = event.urgent
                    if len(out) == 2:
                        return out
        return out

    assert asyncio.run(main()) == {"a1": False, "a2": True}


def test_settings_come_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "client.yaml"
    path.write_text(
        "transport: ws\nmax_attempts: 7\nqueue_capacity: 50\nfallback_after: 2\n"
        "backoff: {initial: 0.5, max: 4}\nconflate: {prices: always}\nfirst_connect_timeout_s: 3\n"
    )
    config = load_client_config(path, max_attempts=None, fallback_after=9)
    assert config.transport == "ws" and config.max_attempts == 7 and config.fallback_after == 9
    assert config.backoff == BackoffPolicy(0.5, 4.0) and config.queue_capacity == 50
    assert config.conflate_for("prices") == "always" and config.conflate_for("orders") == "latest"
    assert config.first_connect_timeout_s == 3
    path.write_text("transport: ws\nqueue_capcity: 5\n")
    with pytest.raises(ValueError, match=r"unknown client setting.*queue_capcity"):
        load_client_config(path)
    path.write_text("backoff: {initial: 1, maximum: 2}\n")
    with pytest.raises(ValueError, match=r"backoff: unknown key.*maximum"):
        load_client_config(path)
    with pytest.raises(ValueError, match="give get_token or token_provider"):
        ClientConfig(get_token=lambda: "a", token_provider=lambda: "b")
    same = lambda: "t"  # noqa: E731
    assert ClientConfig(token_provider=same).get_token is same


def tickwire(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "tickwire", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_tail_takes_a_config_file_and_flags(server: ServerProcess, kit: Any, tmp_path: Path) -> None:
    symbol = kit.sym()
    server.publish(kit.price(symbol, 5.0))
    path = tmp_path / "client.yaml"
    path.write_text("transport: ws\nqueue_capacity: 100\nbackoff: {initial: 0.1, max: 1}\n")
    url = f"{server.url}/api/stream/prices?symbols={symbol}"
    out = tickwire("tail", url, "--config", str(path), "--max-events", "2", "--json", "--backoff-max", "2")
    assert out.returncode == 0, out.stderr
    assert "ws connected" in out.stderr
    events = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert events[-1]["data"]["prices"][0]["price"] == 5.0
    path.write_text("transprt: ws\n")
    bad = tickwire("tail", url, "--config", str(path), "--max-events", "1")
    assert bad.returncode == 2 and "unknown client setting(s): transprt" in bad.stderr
    port = tickwire(
        "tail", "http://127.0.0.1:9/api/stream/prices", "--connect-timeout", "1", "--backoff-initial", "0.1"
    )
    assert port.returncode == 1 and "no connection" in port.stderr
