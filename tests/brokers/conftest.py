"""A private redis-server for the broker contract suite (started only when a Redis
parameter runs; skipped loudly when the binary is absent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.redis_server import RedisServer, require_redis_server


@pytest.fixture(scope="session")
def contract_redis() -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server()).start()
    yield server
    server.close()
