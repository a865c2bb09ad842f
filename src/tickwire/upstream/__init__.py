"""Market data in (SPEC 12): provider connections that feed public logs.

hub (core/hub.py) ──first/last reader of a (log, key), each poll──► manager.py UpstreamManager
    └─► demand.py Demand: reference counts per symbol, linger, batches
connection.py UpstreamConnection: one per upstream; state machine (state.py), backoff,
    attempts, command queue; session.py (WebSocket: auth, subscribe, ping, stale) or
    polling.py (REST fallback while the stream is down)
adapters/: one per provider kind (the protocol, sans I/O: messages in, updates out)
normalize.py: updates -> full state per symbol, stale and duplicate drops -> publish.py
    batches into the node's publish pipeline; status.py: `provider:status` on state changes
leader.py: `leader_only` upstreams held by one node at a time (a lease in the broker)
"""

from tickwire.upstream.config import KINDS, UpstreamConfig
from tickwire.upstream.state import UpstreamState

__all__ = ["KINDS", "UpstreamConfig", "UpstreamState"]
