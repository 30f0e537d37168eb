"""Fixtures for the Python interop suite. The machinery lives in kvs_harness.py.

Every server a fixture starts is stopped with SIGTERM at teardown and must exit within
`kvs_harness.SHUTDOWN_BOUND` seconds with exit code 0; anything else is a test error
(`ShutdownError`), reported by pytest at teardown."""
import uuid

import pytest

from kvs_harness import Server, stop_all


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
    """Start extra servers inside a test; all are stopped at teardown, each one checked (a test
    may stop or kill one itself first: that one is not stopped again)."""
    started = []

    def start(*extra, **kw):
        s = Server(*extra, **kw)
        started.append(s)
        return s

    yield start
    stop_all(started)
