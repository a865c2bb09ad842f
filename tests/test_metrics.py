"""metrics.Metrics: the node's own registry, its gauges read from callables, the process collector."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tickwire.metrics import Metrics


def _samples(metrics: Metrics) -> dict[str, float]:
    text = metrics.render().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def _families(metrics: Metrics) -> dict[str, tuple[str, str]]:
    text = metrics.render().decode()
    return {f.name: (f.type, f.documentation) for f in text_string_to_metric_families(text)}


def test_node_gauges_read_zero_until_the_node_sets_them() -> None:
    metrics = Metrics()
    samples = _samples(metrics)
    assert samples["tickwire_tracked_users"] == 0
    assert samples["tickwire_buffered_events"] == 0
    assert samples["tickwire_outbox_bytes"] == 0
    metrics.tracked_users = lambda: 7
    metrics.buffered_events = lambda: 1234
    samples = _samples(metrics)
    assert samples["tickwire_tracked_users"] == 7
    assert samples["tickwire_buffered_events"] == 1234
    families = _families(metrics)
    assert families["tickwire_tracked_users"] == (
        "gauge",
        "Users whose history, keyed state or portfolio this node holds",
    )
    assert families["tickwire_buffered_events"] == (
        "gauge",
        "Log events held in history by this node's broker",
    )


def test_uptime_grows_from_the_metrics_creation() -> None:
    metrics = Metrics()
    first = _samples(metrics)["tickwire_uptime_seconds"]
    metrics.started -= 100  # as if created 100 s earlier
    assert _samples(metrics)["tickwire_uptime_seconds"] >= first + 100
    assert _families(metrics)["tickwire_uptime_seconds"][0] == "gauge"


def test_process_metrics_are_on_the_node_registry() -> None:
    """Each Metrics has its own registry (several nodes in one process never clash), and the
    process collector is registered on it, not on prometheus-client's global registry."""
    one, two = Metrics(), Metrics()
    for metrics in (one, two):
        samples = _samples(metrics)
        assert samples["process_resident_memory_bytes"] > 0
        assert samples["process_cpu_seconds_total"] > 0
        assert samples["process_open_fds"] > 0
        assert re.search(r"^# TYPE process_cpu_seconds_total counter$", metrics.render().decode(), re.M)
