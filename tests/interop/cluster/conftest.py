"""Fixtures of the multi-node suite: one real Redis and three kvs-signaling nodes on it for the
whole session, plus helpers for tests that start (and kill) nodes or a Redis of their own.
Every node's and every Redis's shutdown is checked at teardown (exit code 0 within a bound after
SIGTERM; a crash before teardown is reported): a failure is reported as an error of the test
(or of the session, for the shared nodes). The machinery lives in cluster_harness.py."""
import uuid

import pytest

from cluster_harness import RedisServer, start_node, stop_all
from kvs_harness import Server


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
        stop_all(started)


@pytest.fixture
def make_node(redis):
    """Extra nodes, on the session's Redis unless `redis=` names another (for tests that kill or
    stop one); all are stopped, and their shutdown checked, at teardown."""
    started = []

    def start(*extra, redis=redis, **kw):
        n = start_node(redis, *extra, **kw)
        started.append(n)
        return n

    yield start
    stop_all(started)


@pytest.fixture
def spawn():
    """Nodes started with arguments of the test's own (`Server(*args, **kw)`); all are stopped,
    and their shutdown checked, at teardown."""
    started = []

    def start(*args, **kw):
        n = Server(*args, **kw)
        started.append(n)
        return n

    yield start
    stop_all(started)


@pytest.fixture
def make_redis(tmp_path_factory):
    """A Redis of the test's own (for tests that stop or kill Redis)."""
    started = []

    def start():
        r = RedisServer(tmp_path_factory.mktemp("redis-own"))
        started.append(r)
        return r

    yield start
    errors = []
    for r in started:
        try:
            r.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n\n".join(errors)


@pytest.fixture
def name():
    """A channel name (or prefix) no other test uses."""
    return "c-" + uuid.uuid4().hex[:16]
