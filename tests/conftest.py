"""Shared fixtures: one real server per session for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.servers import ServerProcess


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """A `tickwire serve` process with rate limiting off and a short keepalive."""
    proc = ServerProcess({"TICKWIRE_KEEPALIVE_S": "1", "TICKWIRE_THROTTLE_MS": "0"}).start()
    yield proc
    proc.stop()
