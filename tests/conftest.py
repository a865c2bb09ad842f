"""Shared fixtures: one real server per session (per SSE driver) for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.servers import ServerProcess
from tickwire.config import Settings

DEFAULT_DRIVER = str(Settings.model_fields["driver"].default)


class DriverServers:
    """`tickwire serve` processes with rate limiting off and a short keepalive, one per SSE
    driver (TICKWIRE_DRIVER), started when a test first needs it."""

    def __init__(self) -> None:
        self.started: dict[str, ServerProcess] = {}

    def get(self, driver: str) -> ServerProcess:
        if driver not in self.started:
            env = {"TICKWIRE_KEEPALIVE_S": "1", "TICKWIRE_THROTTLE_MS": "0", "TICKWIRE_DRIVER": driver}
            self.started[driver] = ServerProcess(env).start()
        return self.started[driver]

    def stop(self) -> None:
        for proc in self.started.values():
            proc.stop()


@pytest.fixture(scope="session")
def driver_servers() -> Iterator[DriverServers]:
    servers = DriverServers()
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest, driver_servers: DriverServers) -> ServerProcess:
    """The server with the default driver; the suites every driver must pass take it with
    each driver in turn (`pytestmark = EVERY_DRIVER`)."""
    driver: str = getattr(request, "param", DEFAULT_DRIVER)
    return driver_servers.get(driver)
