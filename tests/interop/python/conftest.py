"""Fixtures for the Python interop suite. The machinery lives in kvs_harness.py."""
import uuid

import pytest

from kvs_harness import Server


@pytest.fixture(scope="module")
def server():
    """A memory-store server in open mode shared by a module (state does not matter there)."""
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kv(server):
    return server.client()


@pytest.fixture
def name():
    """A channel name no other test uses."""
    return "t-" + uuid.uuid4().hex[:16]


@pytest.fixture
def make_server():
    """Start extra servers inside a test; all are stopped (SIGTERM, then SIGKILL) at teardown."""
    started = []

    def start(*extra, **kw):
        s = Server(*extra, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        try:
            s.stop()
        except AssertionError:
            pass
