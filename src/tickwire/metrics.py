"""Prometheus metrics of one node (SPEC section 8), on a registry of its own.

Hot-path numbers (deliveries, drops, queued bytes, connections) are plain integers
kept by the core and read when `/metrics` is scraped, so delivering an event costs
no metric call; rarer things (publishes, replays, resets) are ordinary counters.
Gauges the node knows better (connections, outbox bytes, tracked users, buffered
events) are callables the node sets; they read 0 until it does. The process itself
(resident memory, CPU seconds, open file descriptors) comes from prometheus-client's
`ProcessCollector`, on this registry too.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from tickwire.core.connection import Connection
from tickwire.core.outbox import DeliveryStats

TRANSPORTS = ("sse", "ws")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.delivery = {t: DeliveryStats() for t in TRANSPORTS}
        self.published = Counter(
            "tickwire_events_published", "Events stamped by this node", ["type"], registry=self.registry
        )
        self.replays = Counter(
            "tickwire_replays", "Successful resumes from an event id", registry=self.registry
        )
        self.resets = Counter(
            "tickwire_resets", "Resumes answered with stream:reset", ["reason"], registry=self.registry
        )
        self.delivery_failures = Counter(
            "tickwire_delivery_failures",
            "Events whose delivery on this node failed (a fault, logged); the publish and other events go on",
            registry=self.registry,
        )
        self.rejected = Counter(
            "tickwire_requests_rejected", "Requests refused", ["reason"], registry=self.registry
        )
        self.alert_actions = Counter(
            "tickwire_alert_actions",
            "Alert actions by outcome: ok, failed, dropped (over the pending bound)",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.latency = {t: FastHistogram(LATENCY_BUCKETS) for t in TRANSPORTS}
        self.throttled = 0
        self.connections: Callable[[], dict[str, int]] = dict
        self.outbox_bytes: Callable[[], int] = _zero
        self.tracked_users: Callable[[], int] = _zero
        """Users whose history, keyed state or portfolio this node holds (set by the node)."""
        self.buffered_events: Callable[[], int] = _zero
        """Log events held in history by this node's broker (set by the node)."""
        self.started = time.monotonic()
        self.upstreams: Callable[[], Sequence[UpstreamView]] = list
        """The node's upstream connections (SPEC 12), set by the node."""
        self.ws = WSMetrics(self.registry)
        self.registry.register(_CoreCollector(self))
        self.registry.register(_UpstreamCollector(self))
        ProcessCollector(registry=self.registry)  # process_* (Linux /proc; nothing elsewhere)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _zero() -> int:
    return 0


class UpstreamView(Protocol):
    """What `/metrics` reads of an upstream connection (tickwire/upstream/connection.py)."""

    name: str
    stats: Any  # upstream/stats.py ConnectionStats: plain counters and a FastHistogram

    @property
    def state_code(self) -> int: ...


class WSMetrics:
    """WebSocket health: ping round trips, missed pongs, closes and errors by kind."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rtt = Histogram(
            "tickwire_ws_rtt_seconds",
            "Round trip of server ping frames (ping sent to pong received)",
            buckets=RTT_BUCKETS,
            registry=registry,
        )
        self.missed_pongs = Counter(
            "tickwire_ws_missed_pongs", "Server pings not answered within one interval", registry=registry
        )
        self.closes = Counter(
            "tickwire_ws_closes", "WebSocket connections ended, by reason", ["reason"], registry=registry
        )
        self.errors = Counter(
            "tickwire_ws_errors", "`error` messages sent, by code", ["code"], registry=registry
        )
        self.sockets = Gauge(
            "tickwire_ws_sockets",
            "Open WebSocket connections, registered with the hub or not",
            registry=registry,
        )
        self.lagging = Gauge(
            "tickwire_ws_lagging", "WebSocket connections whose last ping is unanswered", registry=registry
        )


class FastHistogram:
    """A histogram of plain integers: `observe` is a bisect and two additions.

    Observed once per socket write, so it must cost far less than a write; it has no
    lock because the event loop is single-threaded. Exposed by the collector below.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return out


class _CoreCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterable[Metric]:
        conns = GaugeMetricFamily("tickwire_connections", "Open streaming connections", labels=["transport"])
        counts = self.m.connections()
        for transport in TRANSPORTS:
            conns.add_metric([transport], counts.get(transport, 0))
        yield conns
        delivered = CounterMetricFamily(
            "tickwire_events_delivered", "Events handed to the socket", labels=["transport"]
        )
        dropped = CounterMetricFamily("tickwire_events_dropped", "Events not delivered", labels=["reason"])
        conflated = slow = capped = 0
        for transport, stats in self.m.delivery.items():
            delivered.add_metric([transport], stats.delivered)
            conflated += stats.conflated
            slow += stats.dropped_slow
            capped += stats.capped
        dropped.add_metric(["conflated"], conflated + self.m.throttled)
        dropped.add_metric(["slow_consumer"], slow)
        dropped.add_metric(["client_cap"], capped)  # replaced while waiting for the tick cap
        yield delivered
        yield dropped
        closes = CounterMetricFamily(
            "tickwire_slow_consumer_closes", "Connections closed for not reading", labels=["transport"]
        )
        for transport, stats in self.m.delivery.items():
            closes.add_metric([transport], stats.slow_closes)
        yield closes
        yield GaugeMetricFamily(
            "tickwire_connection_objects",
            "Connection objects alive in the process (above tickwire_connections: a leak)",
            value=Connection.alive,
        )
        latency = HistogramMetricFamily(
            "tickwire_delivery_latency_seconds",
            "From publish to socket write (oldest event of each write)",
            labels=["transport"],
        )
        for transport, hist in self.m.latency.items():
            latency.add_metric([transport], hist.buckets(), hist.sum)
        yield latency
        yield GaugeMetricFamily(
            "tickwire_outbox_bytes", "Bytes queued in outboxes", value=self.m.outbox_bytes()
        )
        yield GaugeMetricFamily(
            "tickwire_uptime_seconds",
            "Seconds since this node's metrics were created (with the node)",
            value=time.monotonic() - self.m.started,
        )
        yield GaugeMetricFamily(
            "tickwire_tracked_users",
            "Users whose history, keyed state or portfolio this node holds",
            value=self.m.tracked_users(),
        )
        yield GaugeMetricFamily(
            "tickwire_buffered_events",
            "Log events held in history by this node's broker",
            value=self.m.buffered_events(),
        )


class _UpstreamCollector(Collector):
    """SPEC 12's `tickwire_upstream_*`, read from the connections' plain counters."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterable[Metric]:
        conns = self.m.upstreams()
        state = GaugeMetricFamily(
            "tickwire_upstream_state",
            "Upstream state: 0 standby, 1 connecting, 2 connected, 3 stale, 4 reconnecting, 5 polling, 6 failed",
            labels=["name"],
        )
        counters = {
            "messages": CounterMetricFamily(
                "tickwire_upstream_messages", "Provider messages received", labels=["name"]
            ),
            "bytes": CounterMetricFamily(
                "tickwire_upstream_bytes", "Provider bytes received", labels=["name"]
            ),
            "reconnects": CounterMetricFamily(
                "tickwire_upstream_reconnects", "Connection attempts after the first", labels=["name"]
            ),
            "published": CounterMetricFamily(
                "tickwire_upstream_published", "Events an upstream had published", labels=["name"]
            ),
            "errors": CounterMetricFamily(
                "tickwire_upstream_errors",
                "Errors the provider reported (error messages, failed polls)",
                labels=["name"],
            ),
        }
        dropped = CounterMetricFamily(
            "tickwire_upstream_dropped",
            "Provider messages or updates not published",
            labels=["name", "reason"],
        )
        latency = HistogramMetricFamily(
            "tickwire_upstream_latency_seconds",
            "From the provider's exchange time to receipt",
            labels=["name"],
        )
        for conn in conns:
            stats = conn.stats
            state.add_metric([conn.name], conn.state_code)
            for field, family in counters.items():
                family.add_metric([conn.name], getattr(stats, field))
            for reason, count in stats.dropped.items():
                dropped.add_metric([conn.name, reason], count)
            latency.add_metric([conn.name], stats.latency.buckets(), stats.latency.sum)
        yield state
        yield from counters.values()
        yield dropped
        yield latency
