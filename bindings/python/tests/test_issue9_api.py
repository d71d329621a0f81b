"""The issue 9 API through the binding: deferred init decided on another
thread, extra 101 headers, query and cookie helpers, per-connection
max_frame_size, peer and path after init, on_stopped, max_connections and
the deflate strategy."""

import http.client
import queue
import threading

import pytest
import websockets

import lariat
from conftest import Recorder, get, run, url


def status_of(server, path, headers=None):
    """The HTTP status an upgrade request to |path| gets."""
    async def connect():
        try:
            async with websockets.connect(url(server, path),
                                          extra_headers=headers):
                return 101
        except websockets.exceptions.InvalidStatusCode as e:
            return e.status_code
    return run(connect())


def test_deferred_init_decided_on_another_thread(serve, reasons):
    deciders = []

    class Deferring(Recorder):
        def init(self, req, up):
            query = req.query  # the Request is gone once init returns
            deferred = up.defer()
            with pytest.raises(lariat.Error):
                up.set_idle_timeout(1)  # the Deferred owns it now

            def decide():
                if query == "ok":
                    deferred.state = "decided " + query
                    deferred.add_header("X-Decided", "elsewhere")
                    deferred.accept()
                elif query == "no":
                    deferred.reply(403, body="not you")
                else:
                    deferred.crash(PermissionError("db says no"))
                with pytest.raises(lariat.Error):
                    deferred.accept()  # exactly one decision
            t = threading.Thread(target=decide)
            deciders.append(t)
            t.start()

        def websocket_init(self, conn):
            conn.send_text(conn.state)

    server = serve({"/": Deferring})

    async def accepted():
        async with websockets.connect(url(server, "/?ok")) as ws:
            return ws.response_headers.get("X-Decided"), await ws.recv()

    assert run(accepted()) == ("elsewhere", "decided ok")
    assert get(reasons)[1].kind == lariat.ReasonKind.REMOTE
    assert status_of(server, "/?no") == 403
    conn, reason = get(reasons)
    assert conn is None and reason.kind == lariat.ReasonKind.NORMAL
    assert status_of(server, "/?boom") == 500
    reason = get(reasons)[1]
    assert (reason.crash_class, reason.crash_reason) == \
        ("PermissionError", "db says no")
    for t in deciders:
        t.join()


def test_a_deferred_dropped_in_init_answers_500(serve, reasons):
    class Dropping(Recorder):
        def init(self, req, up):
            up.defer()  # and nobody keeps it

    server = serve({"/": Dropping})
    assert status_of(server, "/") == 500
    assert get(reasons)[1].crash_class == "lariat.Deferred"


def test_request_helpers_and_101_headers(serve):
    seen = queue.Queue()

    class Helpers:
        def init(self, req, up):
            seen.put((req.query_param("q"), req.query_param("flag"),
                      req.query_param("missing", "dflt"),
                      len(req.query_param("long")), req.cookie("sid"),
                      req.cookie("nope")))
            with pytest.raises(lariat.Error) as e:
                req.query_param("bad")
            assert e.value.code == lariat.ErrorCode.INVALID_ARGUMENT
            up.add_header("Set-Cookie", "seen=1")
            with pytest.raises(lariat.Error):
                up.add_header("Upgrade", "h2c")

    server = serve({"/": Helpers})

    async def talk():
        path = "/?q=a%20b+c&flag&bad=%zz&long=" + "L" * 300
        async with websockets.connect(
                url(server, path),
                extra_headers={"Cookie": 'a=1; sid="x%2Fy"'}) as ws:
            return ws.response_headers.get("Set-Cookie")

    assert run(talk()) == "seen=1"
    assert get(seen) == ("a b c", "", "dflt", 300, "x/y", None)


def test_connection_peer_path_and_max_frame_size(serve, reasons):
    class Accessors(Recorder):
        def websocket_handle(self, conn, frame):
            if frame.text == "where":
                address, port = conn.peer
                conn.send_text("%s %s %d" % (conn.path, address, port > 0))
            elif frame.text == "shrink":
                conn.set_max_frame_size(4)
                conn.send_text("shrunk")

        def terminate(self, conn, reason):
            # Still valid in terminate.
            self.reasons.put((conn.path, conn.peer[0], reason))

    server = serve({"/room/1": Accessors})

    async def talk():
        async with websockets.connect(url(server, "/room/1?x=1")) as ws:
            await ws.send("where")
            where = await ws.recv()
            await ws.send("shrink")
            assert await ws.recv() == "shrunk"
            await ws.send("12345")
            await ws.wait_closed()
            return where, ws.close_code

    assert run(talk()) == ("/room/1 127.0.0.1 1", 1009)
    path, address, reason = get(reasons)
    assert (path, address) == ("/room/1", "127.0.0.1")
    assert reason.kind == lariat.ReasonKind.ERROR_TOO_BIG


def test_on_stopped_runs_after_every_terminate(reasons):
    events = []

    class Tracked(Recorder):
        def terminate(self, conn, reason):
            events.append("terminate")

    with lariat.Server("127.0.0.1", 0, close_timeout=2) as server:
        server.route("/", Tracked)
        server.on_stopped(lambda: events.append("stopped"))
        server.serve_in_thread()

        async def talk():
            async with websockets.connect(url(server)) as ws:
                await ws.send("x")
                server.stop()
                await ws.wait_closed()
                return ws.close_code

        assert run(talk()) == 1001
        assert server.wait(10)
    assert events == ["terminate", "stopped"]


def test_max_connections(serve):
    server = serve({"/": object()}, max_connections=1)

    async def two():
        async with websockets.connect(url(server)):
            try:
                async with websockets.connect(url(server)):
                    return 101
            except websockets.exceptions.InvalidStatusCode as e:
                return e.status_code

    assert run(two()) == 503
    with pytest.raises(lariat.Error):
        lariat.Server("127.0.0.1", 0, max_connections=0)


def test_deflate_strategy(serve):
    class Compressing:
        def init(self, req, up):
            with pytest.raises(lariat.Error):
                up.compress(strategy=5)
            up.compress(strategy=2)  # Z_HUFFMAN_ONLY

        def websocket_handle(self, conn, frame):
            conn.send_text("compressed=%d %s" % (conn.compressed, frame.text))

    server = serve({"/": Compressing})

    async def talk():
        async with websockets.connect(url(server)) as ws:  # offers deflate
            await ws.send("aaaa" * 100)
            return await ws.recv()

    assert run(talk()) == "compressed=1 " + "aaaa" * 100
