"""In CI the Redis tests must run: a missing redis-server is a failure there, not a skip."""

from __future__ import annotations

import os

import pytest

from support.redis_server import MISSING, redis_server_path


@pytest.mark.skipif(os.environ.get("CI", "").lower() not in ("1", "true", "yes"), reason="only checked in CI")
def test_ci_has_redis_server() -> None:
    assert redis_server_path() is not None, MISSING
