"""Fixtures of the Redis tests: a private redis-server per module (never the machine's
own Redis), skipped loudly when the binary is absent (and failed in CI, see test_redis_ci)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.redis_server import RedisServer, require_redis_server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server()).start()
    yield server
    server.close()
