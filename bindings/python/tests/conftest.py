"""Shared helpers: a lariat server on a thread, a websockets client."""

import asyncio
import gc
import queue
import time

import pytest

import lariat

TIMEOUT = 10  # seconds; every wait in these tests is bounded by it


def run(coro):
    """Runs a client coroutine, failing instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def url(server, path="/"):
    return "ws://127.0.0.1:%d%s" % (server.port, path)


def get(q):
    """The next item of a queue.Queue filled by the server thread."""
    return q.get(timeout=TIMEOUT)


def eventually(predicate):
    """Waits until predicate() holds (collecting garbage between tries)."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gc.collect()
        time.sleep(0.01)
    return True


class Recorder:
    """A handler base that reports terminate to a queue."""
    reasons = None  # a queue.Queue, set per test

    def terminate(self, conn, reason):
        self.reasons.put((conn, reason))


@pytest.fixture
def serve():
    """serve({path: handler}, **server_options) -> a running Server."""
    servers = []

    def start(routes, **options):
        options.setdefault("close_timeout", 2)
        server = lariat.Server("127.0.0.1", 0, **options)
        servers.append(server)
        for path, handler in routes.items():
            server.route(path, handler)
        server.serve_in_thread()
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def reasons():
    q = queue.Queue()
    Recorder.reasons = q
    yield q
    Recorder.reasons = None
