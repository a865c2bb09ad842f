"""The client's Prometheus metrics (names from seed 000) and plain counters.

Every metric carries a `client` label (the client's `name`) so several clients can share
one registry; clients that share a registry share its collectors.

| metric | labels | meaning |
|---|---|---|
| `wire_stream_connection_state` | client, transport | 0 disconnected, 1 connecting, 2 connected, 3 reconnecting, 4 fallback, 5 closed |
| `wire_stream_reconnects_total` | client, transport | connection attempts after the first |
| `wire_stream_messages_total` | client, transport, type | events accepted (delivered or queued) |
| `wire_stream_dupes_dropped_total` | client, transport, type | duplicates and stale keyed values dropped |
| `wire_stream_gaps_detected_total` | client, transport | gaps found (see gaps.py) |
| `wire_stream_gaps_repaired_total` | client, transport | gaps filled from the events endpoint |
| `wire_stream_gap_checks_total` | client, transport | requests to the events endpoint about holes |
| `wire_stream_resets_total` | client, transport, reason | `stream:reset` surfaced (history lost) |
| `wire_stream_dropped_total` | client, type, reason | ticks the delivery queue dropped: `conflated` (a newer value of the same symbol replaced it), `full` |
| `wire_stream_spilled_total` | client | log events a consumer was too far behind to queue: fetched from history when it catches up (outlet.py) |
| `wire_stream_caught_up_total` | client | events delivered from history to a consumer that fell behind |
| `wire_stream_handler_errors_total` | client | subscription handlers that raised |
| `wire_stream_backpressure_total` | client | times the client stopped reading for a consumer (ticks of a stream whose policy is `conflate="never"`) |
| `wire_stream_fallback_active` | client | 1 while polling instead of streaming |
| `wire_stream_fallbacks_total` | client | times the client fell back to polling |
| `wire_stream_queue_depth` | client | events waiting for the user |
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from tickwire.client.state_machine import ConnectionState


class _Collectors:
    """One registry's collectors, shared by every client that uses the registry: the module
    docstring's table, in its order (counters are named without the `_total` that
    prometheus_client adds; labels are space-separated)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: str) -> Gauge:
            return Gauge(name, doc, labels.split(), registry=registry)

        def counter(name: str, doc: str, labels: str) -> Counter:
            return Counter(name, doc, labels.split(), registry=registry)

        self.state = gauge(
            "wire_stream_connection_state",
            "Client connection state (0 disconnected .. 5 closed)",
            "client transport",
        )
        self.reconnects = counter(
            "wire_stream_reconnects", "Connection attempts after the first", "client transport"
        )
        self.messages = counter("wire_stream_messages", "Events accepted", "client transport type")
        self.dupes = counter(
            "wire_stream_dupes_dropped", "Duplicate or stale events dropped", "client transport type"
        )
        self.gaps = counter("wire_stream_gaps_detected", "Gaps detected", "client transport")
        self.repaired = counter(
            "wire_stream_gaps_repaired", "Gaps repaired from the events endpoint", "client transport"
        )
        self.gap_checks = counter(
            "wire_stream_gap_checks", "Requests to the events endpoint about holes", "client transport"
        )
        self.resets = counter("wire_stream_resets", "Stream resets surfaced", "client transport reason")
        self.dropped = counter(
            "wire_stream_dropped", "Events dropped by the delivery queue", "client type reason"
        )
        self.spilled = counter(
            "wire_stream_spilled",
            "Log events a consumer fell behind on (fetched from history later)",
            "client",
        )
        self.caught_up = counter(
            "wire_stream_caught_up", "Events delivered from history to a consumer that fell behind", "client"
        )
        self.handler_errors = counter(
            "wire_stream_handler_errors", "Subscription handlers that raised", "client"
        )
        self.backpressure = counter(
            "wire_stream_backpressure", "Times the client stopped reading for a consumer", "client"
        )
        self.fallback = gauge("wire_stream_fallback_active", "1 while polling instead of streaming", "client")
        self.fallbacks = counter("wire_stream_fallbacks", "Falls back to polling", "client")
        self.queue_depth = gauge("wire_stream_queue_depth", "Events waiting for the user", "client")


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Collectors] = weakref.WeakKeyDictionary()


def _collectors(registry: CollectorRegistry) -> _Collectors:
    found = _by_registry.get(registry)
    if found is None:
        found = _by_registry[registry] = _Collectors(registry)
    return found


@dataclass
class ClientStats:
    """The same counts as plain numbers, per client.

    `dropped` counts every tick a consumer's queue dropped; `conflated` the part of them that a
    newer value of the same symbol replaced (by design: latest value wins, see the
    `conflate` policy in config.py). `spilled` counts log events a consumer was too far
    behind to queue and `caught_up` those it then got from history (outlet.py)."""

    messages: int = 0
    dupes_dropped: int = 0
    gap_checks: int = 0
    gaps_detected: int = 0
    gaps_repaired: int = 0
    resets: int = 0
    reconnects: int = 0
    fallbacks: int = 0
    dropped: int = 0
    conflated: int = 0
    spilled: int = 0
    caught_up: int = 0
    handler_errors: int = 0
    backpressure: int = 0
    token_refreshes: int = 0


class ClientMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, client: str = "tickwire") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.client = client
        self.stats = ClientStats()
        self._c = _collectors(self.registry)
        self._transport = ""
        self._messages: dict[tuple[str, str], Any] = {}  # labelled children, made once
        self._dupes: dict[tuple[str, str], Any] = {}
        self._dropped: dict[tuple[str, str], Any] = {}

    def state(self, state: ConnectionState, transport: str) -> None:
        if self._transport and self._transport != transport:
            self._c.state.labels(self.client, self._transport).set(ConnectionState.DISCONNECTED.code)
        self._transport = transport
        self._c.state.labels(self.client, transport).set(state.code)
        self._c.fallback.labels(self.client).set(1 if state == ConnectionState.FALLBACK else 0)

    def reconnect(self, transport: str) -> None:
        self.stats.reconnects += 1
        self._c.reconnects.labels(self.client, transport).inc()

    def message(self, transport: str, type_: str, count: int = 1) -> None:
        self.stats.messages += count
        child = self._messages.get((transport, type_))
        if child is None:
            child = self._messages[(transport, type_)] = self._c.messages.labels(
                self.client, transport, type_
            )
        child.inc(count)

    def dupe(self, transport: str, type_: str) -> None:
        self.stats.dupes_dropped += 1
        child = self._dupes.get((transport, type_))
        if child is None:
            child = self._dupes[(transport, type_)] = self._c.dupes.labels(self.client, transport, type_)
        child.inc()

    def gap_check(self, transport: str) -> None:
        self.stats.gap_checks += 1
        self._c.gap_checks.labels(self.client, transport).inc()

    def gap(self, transport: str) -> None:
        self.stats.gaps_detected += 1
        self._c.gaps.labels(self.client, transport).inc()

    def repaired(self, transport: str) -> None:
        self.stats.gaps_repaired += 1
        self._c.repaired.labels(self.client, transport).inc()

    def reset(self, transport: str, reason: str) -> None:
        self.stats.resets += 1
        self._c.resets.labels(self.client, transport, reason).inc()

    def dropped(self, type_: str, reason: str) -> None:
        self.stats.dropped += 1
        if reason == "conflated":
            self.stats.conflated += 1
        child = self._dropped.get((type_, reason))
        if child is None:
            child = self._dropped[(type_, reason)] = self._c.dropped.labels(self.client, type_, reason)
        child.inc()

    def spilled(self) -> None:
        self.stats.spilled += 1
        self._c.spilled.labels(self.client).inc()

    def caught_up(self, count: int) -> None:
        self.stats.caught_up += count
        self._c.caught_up.labels(self.client).inc(count)

    def handler_error(self) -> None:
        self.stats.handler_errors += 1
        self._c.handler_errors.labels(self.client).inc()

    def token_refresh(self) -> None:
        self.stats.token_refreshes += 1

    def backpressure(self) -> None:
        self.stats.backpressure += 1
        self._c.backpressure.labels(self.client).inc()

    def fallback(self) -> None:
        self.stats.fallbacks += 1
        self._c.fallbacks.labels(self.client).inc()

    def queue_depth(self, depth: Callable[[], float]) -> None:
        """Read the depth from `depth()` when the registry is collected (not per event)."""
        self._c.queue_depth.labels(self.client).set_function(depth)
