"""Running an end-to-end suite once per driver (TICKWIRE_DRIVER)."""

from __future__ import annotations

from typing import Any

import pytest

from support.servers import ServerProcess
from tickwire.config import DRIVERS

# A module's `pytestmark` when all its tests take the session's `server` fixture: each runs
# with each driver.
EVERY_DRIVER = pytest.mark.parametrize("server", DRIVERS, indirect=True)


@pytest.fixture(scope="module", params=DRIVERS, name="server")
def server_per_driver(request: pytest.FixtureRequest, driver_servers: Any) -> ServerProcess:
    """The same for a module where only some tests take `server`: imported there, it
    overrides the session's `server` with one per driver."""
    driver: str = request.param
    server: ServerProcess = driver_servers.get(driver)
    return server
