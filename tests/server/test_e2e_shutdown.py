"""End to end: SIGTERM hands every client over at once (README "Configuration",
docs/architecture.md "Shutdown").

The server stops accepting, then ends every SSE response (after what is queued) and closes
every WebSocket with 1001, all within TICKWIRE_SHUTDOWN_GRACE_S, so clients reconnect to
another node and resume by id instead of reading a dying one. What is still open after the
grace is cut off by uvicorn: such a response ends without its last chunk, which is what
`"broken"` detects; the node's log says whether every connection ended within the grace.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import orjson

from support.async_streams import SSEStream, WSStream, many_connections_http
from support.e2e import uid
from support.servers import ServerProcess

CLIENTS = 500  # of each transport


def log_records(output: str) -> list[dict[str, Any]]:
    records = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return records


async def publish(http: Any, server: ServerProcess, body: Any) -> None:
    token = server.token("test-publisher", "publisher")
    response = await http.post(
        server.url + "/api/publish", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text


def test_sigterm_ends_every_sse_response_and_closes_every_websocket_within_the_grace() -> None:
    server = ServerProcess(
        {"TICKWIRE_SHUTDOWN_GRACE_S": "2", "TICKWIRE_LOG_LEVEL": "info", "TICKWIRE_KEEPALIVE_S": "60"}
    ).start()
    agent = uid("agent")

    async def main() -> tuple[list[SSEStream], list[str], list[WSStream], list[int | None]]:
        async with many_connections_http(CLIENTS + 10) as http:
            sse = [SSEStream(http, server.url, "agents") for _ in range(CLIENTS)]
            ws = [WSStream(server.url) for _ in range(CLIENTS)]
            async with asyncio.timeout(60):
                await asyncio.gather(*(s.open() for s in sse), *(w.open([{"stream": "agents"}]) for w in ws))
                # Answered once the event is queued on every connection (memory broker): the
                # shutdown must flush it before ending each stream.
                await publish(
                    http, server, {"type": "agent:status", "data": {"agentId": agent, "status": "up"}}
                )
                sse_ends = [asyncio.create_task(s.read_to_end()) for s in sse]
                ws_ends = [asyncio.create_task(w.read_to_close()) for w in ws]
                assert server.proc is not None
                server.proc.send_signal(signal.SIGTERM)
                return sse, await asyncio.gather(*sse_ends), ws, await asyncio.gather(*ws_ends)

    try:
        sse, sse_ends, ws, ws_codes = asyncio.run(main())
        assert server.proc is not None
        server.proc.wait(20)
        output = server.output()
    finally:
        server.stop()
    assert sse_ends == ["clean"] * CLIENTS, {end: sse_ends.count(end) for end in set(sse_ends)}
    assert ws_codes == [1001] * CLIENTS, {code: ws_codes.count(code) for code in set(ws_codes)}
    for stream in sse:
        assert [a["agentId"] for a in stream.of_type("agent:status")][-1:] == [agent]
    for socket_ in ws:
        assert [e["data"]["agentId"] for e in socket_.events("agent:status")][-1:] == [agent]
    shutdown = [r for r in log_records(output) if str(r.get("msg", "")).startswith("shutdown:")]
    assert [(r["msg"], r.get("connections")) for r in shutdown] == [
        ("shutdown: every connection closed", 2 * CLIENTS)
    ], output[-3000:]
    assert "Exception in ASGI application" not in output
    assert "timeout graceful shutdown exceeded" not in output
