"""Fixtures every test folder shares."""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest
import redis

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"  # the Redis CI starts; never FLUSHALL it


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    """A key prefix of this session on the shared Redis; its keys go at the end."""
    prefix = f"gmlrec-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(SHARED_REDIS_URL)
        for key in client.scan_iter(f"{prefix}*", count=1000):
            client.delete(key)


@pytest.fixture(scope="session", autouse=True)
def event_log_dir(tmp_path_factory) -> str:
    """In-process stores (and the servers tests start, which inherit the environment) append
    their event logs here, not to GMLREC_EVENTS_DIR's default under the checkout."""
    folder = str(tmp_path_factory.mktemp("event-log"))
    previous = os.environ.get("GMLREC_EVENTS_DIR")
    os.environ["GMLREC_EVENTS_DIR"] = folder
    yield folder
    if previous is None:
        os.environ.pop("GMLREC_EVENTS_DIR", None)
    else:
        os.environ["GMLREC_EVENTS_DIR"] = previous
