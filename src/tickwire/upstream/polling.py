"""REST fallback: while the stream is down, ask the provider's REST API every
`poll_interval_s` about the symbols held (SPEC 12, "Health").

The connection starts the poller when it enters `polling` and cancels it when the stream
is back (or the upstream failed or stops). Each round asks about everything `Demand.wanted`
holds, 100 symbols per request where the API takes several (the adapter builds the
requests and reads the answers); answers go through the same normalisation as streamed
messages, so a value the stream already delivered is dropped as a duplicate.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx

from tickwire.upstream.demand import batches
from tickwire.upstream.model import AuthFailed, HttpRequest, Malformed, UpstreamError

if TYPE_CHECKING:
    from tickwire.upstream.connection import UpstreamConnection

log = logging.getLogger("tickwire.upstream")

POLL_BATCH = 100


class Poller:
    def __init__(self, conn: UpstreamConnection) -> None:
        self.conn = conn
        self.last_error: str | None = None

    async def run(self) -> None:
        conn = self.conn
        timeout = min(10.0, max(1.0, conn.config.poll_interval_s))
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as http:
            while True:
                await self.poll_once(http)
                await conn.runtime.sleep(conn.config.poll_interval_s)

    async def poll_once(self, http: httpx.AsyncClient) -> int:
        """One round over every symbol held; the number of updates it brought."""
        conn = self.conn
        symbols = conn.demand.wanted()
        requests: list[HttpRequest] = []
        for batch in batches(symbols, POLL_BATCH) or [[]]:
            requests += conn.adapter.poll_requests(batch)
        total = 0
        for request in requests:
            total += await self._one(http, request)
        conn.stats.polls += 1
        return total

    async def _one(self, http: httpx.AsyncClient, request: HttpRequest) -> int:
        conn = self.conn
        try:
            response = await http.request(
                request.method, request.url, headers=request.headers, json=request.json
            )
        except httpx.HTTPError as exc:
            self._failed(f"poll failed: {type(exc).__name__}")
            return 0
        conn.stats.messages += 1
        conn.stats.bytes += len(response.content)
        now_ms = conn.runtime.clock.wall_ms()
        try:
            updates = conn.adapter.parse_poll(request, response.status_code, response.content, now_ms)
        except Malformed as exc:
            conn.malformed(f"poll answer: {exc}")
            return 0
        except (AuthFailed, UpstreamError) as exc:
            self._failed(str(exc))
            return 0
        self.last_error = None
        conn.stats.last_message_at = now_ms
        conn.deliver(updates, now_ms)
        return len(updates)

    def _failed(self, reason: str) -> None:
        reason = self.conn.scrub(reason)
        self.conn.stats.errors += 1
        if reason != self.last_error:
            log.warning("upstream poll failed", extra={"upstream": self.conn.name, "error": reason})
        self.last_error = reason
