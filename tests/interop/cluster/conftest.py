"""Fixtures of the multi-node suite: one real Redis and three kvs-signaling nodes on it for the
whole session, plus helpers for tests that start (and kill) nodes or a Redis of their own.
The machinery lives in cluster_harness.py."""
import uuid

import pytest

from cluster_harness import RedisServer, start_node, stop_quietly


@pytest.fixture(scope="session")
def redis(tmp_path_factory):
    r = RedisServer(tmp_path_factory.mktemp("redis"))
    yield r
    r.stop()


@pytest.fixture(scope="session")
def nodes(redis):
    """Nodes A, B and C on the session's Redis (port 0 each)."""
    started = []
    try:
        for _ in range(3):
            started.append(start_node(redis))
        yield started
    finally:
        for n in started:
            stop_quietly(n)


@pytest.fixture
def make_node(redis):
    """Extra nodes on the session's Redis (for tests that kill or stop one); all are stopped
    at teardown."""
    started = []

    def start(*extra, **kw):
        n = start_node(redis, *extra, **kw)
        started.append(n)
        return n

    yield start
    for n in started:
        stop_quietly(n)


@pytest.fixture
def make_redis(tmp_path_factory):
    """A Redis of the test's own (for tests that stop or kill Redis)."""
    started = []

    def start():
        r = RedisServer(tmp_path_factory.mktemp("redis-own"))
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def name():
    """A channel name (or prefix) no other test uses."""
    return "c-" + uuid.uuid4().hex[:16]
