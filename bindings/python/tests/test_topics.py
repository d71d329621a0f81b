"""Topics from Python: a chat room, publish from threads, defer, drops."""

import os
import queue
import re
import threading
import weakref

import pytest
import websockets

import _lariat
import lariat
from conftest import eventually, get, run, url

LOOP = {}  # "ident": the loop thread, recorded by the first connection


class Room:
    """The room is the path. "!leave", "!count", "!dropped" are commands;
    anything else goes to the others, and the sender hears how many."""

    def websocket_init(self, conn):
        LOOP.setdefault("ident", threading.get_ident())
        conn.subscribe(conn.path)

    def websocket_handle(self, conn, frame):
        if frame.opcode == lariat.Opcode.TEXT and frame.text.startswith("!"):
            command = frame.text
            if command == "!leave":
                conn.send_text("left" if conn.unsubscribe(conn.path)
                               else "not subscribed")
            elif command == "!count":
                conn.send_text(str(conn.server.subscribers(conn.path)))
            elif command == "!dropped":
                conn.send_text(str(conn.dropped))
            return
        data = frame.text if frame.opcode == lariat.Opcode.TEXT \
            else frame.data
        conn.send_text("sent to %d" % conn.publish(conn.path, data))


def test_chat_room_reaches_the_others_only(serve):
    server = serve({"*": Room})

    async def chat():
        room = url(server, "/room/1")
        async with websockets.connect(room) as a, \
                websockets.connect(room) as b, \
                websockets.connect(room) as c, \
                websockets.connect(url(server, "/room/2")) as d:
            # Every one has subscribed once its count says so.
            await d.send("!count")
            assert await d.recv() == "1"
            await c.send("!count")
            assert await c.recv() == "3"

            await a.send("hi")
            assert await a.recv() == "sent to 2"
            assert await b.recv() == "hi"
            assert await c.recv() == "hi"
            await b.send(b"\x00\xff")  # binary stays binary
            assert await b.recv() == "sent to 2"
            assert await a.recv() == b"\x00\xff"
            assert await c.recv() == b"\x00\xff"
            # Neither the sender's own line nor room 1's reached room 2:
            # the next thing d hears is its own answer.
            await d.send("!count")
            assert await d.recv() == "1"
            await a.send("!count")
            assert await a.recv() == "3"

            await c.send("!leave")
            assert await c.recv() == "left"
            await c.send("!leave")
            assert await c.recv() == "not subscribed"
            await a.send("after")
            assert await a.recv() == "sent to 1"
            assert await b.recv() == "after"
            await c.send("!count")
            assert await c.recv() == "2"

    run(chat())
    # Subscriptions end with their connections.
    assert eventually(lambda: _count(server, "/room/1") == 0)


def _count(server, topic):
    """server.subscribers(topic), asked on the loop thread via defer()."""
    q = queue.Queue()
    server.defer(lambda: q.put(server.subscribers(topic)))
    return get(q)


def test_topics_are_bytes_and_str_is_utf8(serve):
    class Subscriber:
        def websocket_init(self, conn):
            conn.subscribe("caf\u00e9")
            conn.send_text("ready")

    server = serve({"/": Subscriber})

    async def receive():
        async with websockets.connect(url(server)) as ws:
            assert await ws.recv() == "ready"
            # The same topic spelled as bytes.
            assert _count(server, "caf\u00e9".encode("utf-8")) == 1
            assert _count(server, b"cafe") == 0
            server.publish(b"caf\xc3\xa9", "by bytes")
            assert await ws.recv() == "by bytes"

    run(receive())
    with pytest.raises(TypeError):
        server.publish(42, "x")


def test_publish_from_threads_in_order_then_stopped(serve):
    class Listener:
        def websocket_init(self, conn):
            conn.subscribe("ticks")
            conn.send_text("ready")

    server = serve({"/": Listener})
    threads_n, per_thread = 2, 200

    def publisher(t, results):
        for seq in range(per_thread):
            results.append(server.publish("ticks", "%d:%d" % (t, seq)))
        # bytes: a binary message
        results.append(server.publish("ticks", b"end%d" % t))

    async def listen():
        clients = [await websockets.connect(url(server)) for _ in range(3)]
        try:
            for ws in clients:
                assert await ws.recv() == "ready"
            results = []
            threads = [threading.Thread(target=publisher, args=(t, results))
                       for t in range(threads_n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            # From another thread a publish is queued, not counted.
            assert results == [0] * (threads_n * (per_thread + 1))
            for ws in clients:
                got = [await ws.recv()
                       for _ in range(threads_n * (per_thread + 1))]
                for t in range(threads_n):
                    mine = [m for m in got
                            if isinstance(m, str) and m.startswith("%d:" % t)]
                    assert mine == ["%d:%d" % (t, s)
                                    for s in range(per_thread)]
                ends = [m for m in got if isinstance(m, bytes)]
                assert sorted(ends) == [b"end0", b"end1"]
                # Each thread's binary end came after its texts.
                for t in range(threads_n):
                    assert got.index(b"end%d" % t) > \
                        got.index("%d:%d" % (t, per_thread - 1))
        finally:
            for ws in clients:
                await ws.close()

    run(listen())
    server.close()
    with pytest.raises(lariat.Error) as e:
        server.publish("ticks", "late")
    assert e.value.code == lariat.ErrorCode.STOPPED


def test_defer_runs_on_the_loop_and_releases_the_callable(serve):
    class Quiet:
        def websocket_init(self, conn):
            LOOP["ident"] = threading.get_ident()
            conn.send_text("ready")

    server = serve({"/": Quiet})

    class Work:
        """A callable only lariat holds."""
        def __init__(self, q):
            self.q = q

        def __call__(self):
            self.q.put(threading.get_ident())

    async def connect():
        async with websockets.connect(url(server)) as ws:
            assert await ws.recv() == "ready"

    run(connect())
    ran = queue.Queue()
    refs = []

    def from_thread():
        work = Work(ran)
        refs.append(weakref.ref(work))
        server.defer(work)

    t = threading.Thread(target=from_thread)
    t.start()
    t.join()
    assert get(ran) == LOOP["ident"]
    assert eventually(lambda: refs[0]() is None)  # released once it ran

    # Off the loop, subscribers() is refused; an exception in a deferred
    # function is logged and the loop carries on.
    with pytest.raises(lariat.Error) as e:
        server.subscribers("x")
    assert e.value.code == lariat.ErrorCode.INVALID_STATE

    def boom():
        raise RuntimeError("deferred failure")
    server.defer(boom)
    server.defer(lambda: ran.put("after"))
    assert get(ran) == "after"

    server.close()
    late = Work(ran)
    late_ref = weakref.ref(late)
    with pytest.raises(lariat.Error) as e:
        server.defer(late)
    assert e.value.code == lariat.ErrorCode.STOPPED
    del late, e
    assert eventually(lambda: late_ref() is None)
    assert ran.empty()


def test_slow_subscriber_drops_are_counted(serve):
    class Capped(Room):
        def init(self, req, up):
            if req.query == "capped":
                up.set_max_queued(1000, lariat.lib.LARIAT_BACKPRESSURE_REFUSE)

    server = serve({"*": Capped})

    async def chat():
        room = url(server, "/r")
        async with websockets.connect(room + "?capped") as capped, \
                websockets.connect(room) as other, \
                websockets.connect(room) as sender:
            await sender.send("!count")
            assert await sender.recv() == "3"
            # Bigger than the cap: dropped for the capped one only.
            await sender.send("x" * 2000)
            assert await sender.recv() == "sent to 1"
            assert await other.recv() == "x" * 2000
            await sender.send("small")
            assert await sender.recv() == "sent to 2"
            assert await capped.recv() == "small"
            assert await other.recv() == "small"
            await capped.send("!dropped")
            assert await capped.recv() == "1"
            await other.send("!dropped")
            assert await other.recv() == "0"

    run(chat())


def test_publish_releases_the_gil():
    # cffi's API mode wraps each C call in Py_BEGIN/END_ALLOW_THREADS
    # unless told otherwise: check the generated wrapper of lariat_publish
    # (other Python threads run while lariat fans out on the loop).
    import os
    import re
    import _lariat
    source = os.path.join(os.path.dirname(_lariat.__file__), "_lariat.c")
    with open(source) as f:
        text = f.read()
    for name in ("lariat_publish", "lariat_conn_publish"):
        body = re.search(r"\n_cffi_f_%s\(PyObject \*self, PyObject \*args\)"
                         r"\n\{(.*?)\n\}\n" % name, text, re.S)
        assert body, name
        call = body.group(1)
        assert re.search(r"Py_BEGIN_ALLOW_THREADS.*\{ result = %s\(.*"
                         r"Py_END_ALLOW_THREADS" % name, call, re.S), name


def test_compressed_subscribers_of_both_kinds_decode(serve):
    # One shared compressed frame per publish for the no-context-takeover
    # subscribers, one per connection for the others: websockets decodes
    # both, message after message.
    class Listener:
        def websocket_init(self, conn):
            conn.subscribe("news")
            conn.send_text("ready")

    server = lariat.Server("127.0.0.1", 0, close_timeout=2)
    server.route("/shared", Listener,
                 compress={"server_no_context_takeover": 1})
    server.route("/own", Listener, compress={"level": 6})
    lines = ["%d %s" % (n, "all the news that fits " * 20) for n in range(5)]

    async def listen():
        shared = [await websockets.connect(url(server, "/shared"))
                  for _ in range(2)]
        own = [await websockets.connect(url(server, "/own"))
               for _ in range(2)]
        try:
            for ws in shared + own:
                assert await ws.recv() == "ready"
                assert [e.name for e in ws.extensions] == \
                    ["permessage-deflate"]
            for ws in shared:
                assert ws.extensions[0].remote_no_context_takeover
            for ws in own:
                assert not ws.extensions[0].remote_no_context_takeover
            for line in lines:
                server.publish("news", line)
            for ws in shared + own:
                assert [await ws.recv() for _ in lines] == lines
        finally:
            for ws in shared + own:
                await ws.close()

    with server:
        server.serve_in_thread()
        run(listen())
