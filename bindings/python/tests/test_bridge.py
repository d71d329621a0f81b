"""The Redis bridge from Python: two Servers (two origins, as two
processes would be) on a redis-server of the test's own, the events and
counters, local=True, and the README's stdlib publisher writing into the
fleet from outside."""

import os
import queue
import shutil
import socket
import subprocess
import sys
import time

import pytest
import websockets

import lariat
from conftest import eventually, get, run, url

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "examples", "fleet"))
import publish as fleet_publish  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="needs redis-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url():
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield "redis://127.0.0.1:%d/0" % port
    finally:
        proc.terminate()
        proc.wait(10)


class Room:
    def websocket_init(self, conn):
        conn.subscribe("room")

    def websocket_handle(self, conn, frame):
        if frame.opcode == lariat.Opcode.TEXT:
            conn.server.publish("room", frame.text,
                                local=frame.text.startswith("local:"))


def start(redis, events):
    server = lariat.Server("127.0.0.1", 0, close_timeout=2,
                           bridge_timeouts=(1, 2), bridge_backoff=(0.05, 0.4),
                           bridge_linger=0)
    server.route("/", Room)
    server.join_redis(redis, prefix="py:")
    server.on_bridge(events.put)
    server.serve_in_thread()
    return server


def test_two_servers_share_a_room(redis_url):
    ea, eb = queue.Queue(), queue.Queue()
    a, b = start(redis_url, ea), start(redis_url, eb)
    try:
        for q in (ea, eb):
            kinds = {(e.kind, e.link) for e in (get(q), get(q))}
            assert kinds == {("up", "subscriber"), ("up", "publisher")}

        async def chat():
            async with websockets.connect(url(a)) as ca, \
                    websockets.connect(url(b)) as cb:
                assert eventually(lambda: a.bridge_stats()["channels"] == 1
                                  and b.bridge_stats()["channels"] == 1)
                await ca.send("hello")
                assert await ca.recv() == "hello"
                assert await cb.recv() == "hello"
                await ca.send("local:home")
                assert await ca.recv() == "local:home"
                # From outside the fleet, in the documented format.
                assert fleet_publish.publish(redis_url, "py:room",
                                             b"from python") == 2
                assert await ca.recv() == "from python"
                assert await cb.recv() == "from python"
        run(chat())
        stats = b.bridge_stats()
        assert stats["received"] == 2 and stats["connected"] == 1
        assert a.bridge_stats()["own_dropped"] == 1  # "hello"; not the local one
        assert stats["origin"] != a.bridge_stats()["origin"]
    finally:
        a.close()
        b.close()


def test_redis_down_is_an_event_and_local_topics_work():
    events = queue.Queue()
    server = start("redis://127.0.0.1:%d/" % free_port(), events)
    try:
        event = get(events)
        assert event.kind == "down" and event.error < 0
        assert "refused" in event.detail.lower()

        async def local():
            async with websockets.connect(url(server)) as c:
                await c.send("still here")
                assert await c.recv() == "still here"
        run(local())
        assert server.bridge_stats()["connected"] == 0
        with pytest.raises(lariat.Error):
            server.join_redis("redis://127.0.0.1:1/")  # joined already
    finally:
        server.close()


def test_bad_url():
    server = lariat.Server()
    try:
        with pytest.raises(lariat.Error) as info:
            server.join_redis("http://nope")
        assert info.value.name == "LARIAT_ERR_INVALID_ARGUMENT"
    finally:
        server.close()
