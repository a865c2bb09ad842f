"""The Redis broker: many tickwire nodes on one Redis.

What lives where (the full key layout, for services that read or publish with a plain
Redis client, is in docs/redis.md):

- Every log has a meta hash (epoch, offset, tick), a stream of its log events (entry id
  `{offset}-{tick}`, bounded by MAXLEN = the user / public buffer) and keyed state in
  hashes (orders, positions, prices, strategies), bounded per kind like the memory broker.
  All of it changes in ONE Lua script per published batch (`lua/publish.lua`): two nodes
  publishing to one log can never produce duplicate or out-of-order offsets.
- The script publishes the stamped batch on one pub/sub channel. Each node holds ONE
  subscription (not one per client) and delivers to its hub in (log, tick) order: a node
  that sees a hole in a log's tick sequence (it was disconnected, or Redis dropped a slow
  subscriber) reads the missing log events from the stream and the changed keyed values
  from state before it delivers anything later. When the hole cannot be filled (history
  trimmed, or the log has a new epoch because Redis lost its data) the node's sink is told
  (`on_reset`) and its clients get `stream:reset` and a fresh snapshot.
- Epochs live in Redis: nodes restart without changing them. A log gets a new epoch only
  when its meta hash is gone (Redis restarted without persistence, or the log sat untouched
  for `state_ttl_s`), i.e. when its history really is lost.
- Presence (which node holds which user's connections) is a sorted set per user: the
  per-user connection cap holds across nodes (the node holding the oldest connection closes
  it), and a user's history starts to expire (TICKWIRE_BUFFER_TTL_S) only when no node
  holds a connection of theirs. Nodes heartbeat; a node silent for `dead_after_s` is
  buried by the others (its connections stop counting).
- The per-IP connect rate is a sorted set per address, shared by every node.
- Services publish from outside Python by XADD to the ingest stream; one node at a time
  (a lease) validates and publishes each entry exactly once, in order.

While Redis cannot be reached, `healthy()` is False (/readyz answers 503), publishing raises
`BrokerUnavailable` (HTTP 503), connections stay open, and the node reconnects by itself:
it resubscribes, repairs every log its clients read (or resets them), and re-registers its
connections.

The modules: `broker` (the `RedisBroker` facade), `publishing`, `subscription`, `delivery`,
`reading`, `presence`, `ingest`, `scripts` (URL, keys, Lua) and `tasks`; see broker.py.
"""

from tickwire.brokers.redis.broker import RedisBroker
from tickwire.brokers.redis.scripts import split_url
from tickwire.errors import IngestDuplicate, PublishOutcomeUnknown

__all__ = ["IngestDuplicate", "PublishOutcomeUnknown", "RedisBroker", "split_url"]
