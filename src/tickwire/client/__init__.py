"""tickwire.client: a resilient Python consumer of tickwire streams.

    from tickwire.client import Client

    async with Client("http://127.0.0.1:8080", ["orders", "prices?symbols=AAPL"], token=token) as client:
        async for event in client.events():
            print(event.stream, event.type, event.data)

Long-running consumers pass `get_token=` (a sync or async callable returning the token)
instead of `token=`: it is asked before every (re)connect and shortly before the token's
`exp` (a WebSocket re-authenticates in place), and a token that expires on the open
connection (`auth:expired`) or is refused (401, 4001) means a reconnect with a fresh one,
resuming every stream by id (credentials.py). `checkpoint=FileCheckpoint(path)` keeps each
stream's consumed position across restarts (checkpoint.py). Scripts and notebooks use the
synchronous facade: `with tickwire.client.connect(url, ["prices"]) as c: c.local.prices`.

One `Transport` interface (SSE, WebSocket, poll) under one `Client` with a visible state
machine, backoff with jitter, resume per stream, dedup, gap repair, fallback to polling and
return, bounded priority queues per consumer, local state and Prometheus metrics. Modules,
one concept each: client (the facade), runner (the connection loop), routing (what happens
to each event), delivery and outlet (consumers: queues, spilling, consumed positions),
consumers (subscriptions with handlers and iterators), readiness (`ready()`), checkpoint
(stores), status (the visible state), transports (interface, factory), sse, ws, poll,
composite (the user's streams on one `/me` connection), state_machine, backoff, queue,
dedup, gaps (cursors), subscriptions, local_state, metrics, config, credentials (tokens),
events, models (typed payloads), errors, sync (the synchronous facade), recording (the
format of `tickwire record`) and replay (a fixture server for users' tests).
"""

from tickwire.client.backoff import Backoff, BackoffPolicy, backoff
from tickwire.client.checkpoint import CheckpointStore, FileCheckpoint, MemoryCheckpoint, RedisCheckpoint
from tickwire.client.client import Client, HistoryPage
from tickwire.client.config import ClientConfig, load_client_config
from tickwire.client.consumers import Subscription
from tickwire.client.credentials import Credentials, TokenProvider
from tickwire.client.errors import (
    AuthExpired,
    ClientClosed,
    ClientError,
    ConnectTimeout,
    ProtocolVersionError,
    RetriesExhausted,
    StaleConnection,
    StreamRefused,
    TransportError,
)
from tickwire.client.events import ClientEvent, Priority, StreamSpec, WireEvent
from tickwire.client.local_state import LocalState
from tickwire.client.metrics import ClientMetrics, ClientStats
from tickwire.client.models import (
    AgentStatus,
    AiDecision,
    Alert,
    AlertAck,
    OrderFill,
    OrdersSnapshot,
    OrderUpdate,
    Payload,
    PositionsSnapshot,
    PositionUpdate,
    PricesSnapshot,
    PriceUpdate,
    StrategyUpdate,
    TradeNew,
)
from tickwire.client.queue import DeliveryQueue
from tickwire.client.state_machine import ConnectionState, StateChange
from tickwire.client.subscriptions import Handle, SubscriptionManager
from tickwire.client.sync import SyncClient, connect
from tickwire.client.transports import Endpoint, Session, Transport, create_transport

__all__ = [
    "AgentStatus",
    "AiDecision",
    "Alert",
    "AlertAck",
    "AuthExpired",
    "Backoff",
    "BackoffPolicy",
    "CheckpointStore",
    "Client",
    "ClientClosed",
    "ClientConfig",
    "ClientError",
    "ClientEvent",
    "ClientMetrics",
    "ClientStats",
    "ConnectTimeout",
    "ConnectionState",
    "Credentials",
    "DeliveryQueue",
    "Endpoint",
    "FileCheckpoint",
    "Handle",
    "HistoryPage",
    "LocalState",
    "MemoryCheckpoint",
    "OrderFill",
    "OrderUpdate",
    "OrdersSnapshot",
    "Payload",
    "PositionUpdate",
    "PositionsSnapshot",
    "PriceUpdate",
    "PricesSnapshot",
    "Priority",
    "ProtocolVersionError",
    "RedisCheckpoint",
    "RetriesExhausted",
    "Session",
    "StaleConnection",
    "StateChange",
    "StrategyUpdate",
    "StreamRefused",
    "StreamSpec",
    "Subscription",
    "SubscriptionManager",
    "SyncClient",
    "TokenProvider",
    "TradeNew",
    "Transport",
    "TransportError",
    "WireEvent",
    "backoff",
    "connect",
    "create_transport",
    "load_client_config",
]
