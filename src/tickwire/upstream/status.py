"""`provider:status` (SPEC 12): what every state change of an upstream publishes on the
public `providers` log (read on `GET /api/stream/providers`; its snapshot is the latest
status of every upstream, keyed by `instance`: the upstream's name, or name@node for an
upstream each node of a shared broker holds for itself). A change of the subscribed set
publishes one too (same state and reason), so `symbols` follows demand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tickwire.core.event import iso_timestamp
from tickwire.pipeline.validate import PublishRequest

if TYPE_CHECKING:
    from tickwire.upstream.connection import UpstreamConnection

STATUS_TYPE = "provider:status"
MAX_LISTED = 200  # symbols named in a status (all of them are counted)


def status_data(conn: UpstreamConnection, reason: str) -> dict[str, Any]:
    symbols = list(conn.demand.held) or conn.demand.wanted()
    last = conn.stats.last_message_at
    data: dict[str, Any] = {
        "name": conn.name,
        "kind": conn.config.kind,
        "state": conn.state.value,
        "symbols": symbols[:MAX_LISTED],
        "symbolCount": len(symbols),
        "reason": conn.scrub(reason)[:500],
        "messages": conn.stats.messages,
        "lastMessageAt": iso_timestamp(last) if last is not None else None,
        "instance": conn.instance,
    }
    if conn.node_id:
        data["node"] = conn.node_id
    return data


def status_request(conn: UpstreamConnection, reason: str) -> PublishRequest:
    return PublishRequest(STATUS_TYPE, status_data(conn, reason))
