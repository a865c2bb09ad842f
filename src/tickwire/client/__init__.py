"""tickwire.client: a resilient Python consumer of tickwire streams.

    from tickwire.client import Client

    async with Client("http://127.0.0.1:8080", ["orders", "prices?symbols=AAPL"], token=token) as client:
        async for event in client.events():
            print(event.stream, event.type, event.data)

Long-running consumers pass `token_provider=` (a sync or async callable returning the
token) instead of `token=`: it is asked before every (re)connect, and a token that expires
on the open connection (`auth:expired`) or is refused (401, 4001) means a reconnect with a
fresh one, resuming every stream by id (credentials.py).

One `Transport` interface (SSE, WebSocket, poll) under one `Client` with a visible state
machine, backoff with jitter, resume per stream, dedup, gap repair, fallback to polling and
return, a bounded priority queue, local state and Prometheus metrics. Modules, one concept
each: client (the facade), runner (the connection loop), routing (what happens to one
event), delivery (the queue to the user), status (the visible state), transports
(interface, factory), sse, ws, poll, state_machine, backoff, queue, dedup, gaps (cursors),
subscriptions, local_state, metrics, config, credentials (tokens and their provider),
events, errors, recording (the format of `tickwire record`) and replay (a fixture server
for users' tests).
"""

from tickwire.client.backoff import Backoff, BackoffPolicy, backoff
from tickwire.client.client import Client
from tickwire.client.config import ClientConfig
from tickwire.client.credentials import Credentials, TokenProvider
from tickwire.client.errors import (
    AuthExpired,
    ClientClosed,
    ClientError,
    RetriesExhausted,
    StaleConnection,
    StreamRefused,
    TransportError,
)
from tickwire.client.events import ClientEvent, Priority, StreamSpec, WireEvent
from tickwire.client.local_state import LocalState
from tickwire.client.metrics import ClientMetrics, ClientStats
from tickwire.client.queue import DeliveryQueue
from tickwire.client.state_machine import ConnectionState, StateChange
from tickwire.client.subscriptions import Handle, SubscriptionManager
from tickwire.client.transports import Endpoint, Session, Transport, create_transport

__all__ = [
    "AuthExpired",
    "Backoff",
    "BackoffPolicy",
    "Client",
    "ClientClosed",
    "ClientConfig",
    "ClientError",
    "ClientEvent",
    "ClientMetrics",
    "ClientStats",
    "ConnectionState",
    "Credentials",
    "DeliveryQueue",
    "Endpoint",
    "Handle",
    "LocalState",
    "Priority",
    "RetriesExhausted",
    "Session",
    "StaleConnection",
    "StateChange",
    "StreamRefused",
    "StreamSpec",
    "SubscriptionManager",
    "TokenProvider",
    "Transport",
    "TransportError",
    "WireEvent",
    "backoff",
    "create_transport",
]
