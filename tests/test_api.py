"""The public API fits in one screen: `tickwire.__all__` is curated and importable."""

from __future__ import annotations

import tickwire

EXPECTED = {
    "Broker",
    "BrokerUnavailable",
    "Clock",
    "ConfigError",
    "Event",
    "FakeClock",
    "MemoryBroker",
    "Node",
    "Principal",
    "PublishError",
    "PublishRequest",
    "Settings",
    "StreamError",
    "SystemClock",
    "TickwireError",
    "create_app",
    "issue_token",
    "load_settings",
    "parse_publish_body",
    "verify_token",
}


def test_exports_are_exactly_the_public_api() -> None:
    assert set(tickwire.__all__) == EXPECTED
    for name in tickwire.__all__:
        assert getattr(tickwire, name) is not None


def test_errors_share_one_root() -> None:
    for error in (tickwire.ConfigError, tickwire.PublishError):
        assert issubclass(error, tickwire.TickwireError)
    assert issubclass(tickwire.StreamError, tickwire.TickwireError)
    assert issubclass(tickwire.BrokerUnavailable, tickwire.TickwireError)
