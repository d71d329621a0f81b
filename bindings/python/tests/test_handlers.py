"""The handler model: init answers, crashes, subprotocols, terminate
reasons, per-connection state and errors from the C library."""

import http.client
import logging
import weakref

import pytest
import websockets

import lariat
from conftest import Recorder, eventually, get, run, url


async def closed_by_server(uri, send):
    """Sends |send|, then waits for the server's close; (code, reason)."""
    async with websockets.connect(uri) as ws:
        await ws.send(send)
        await ws.wait_closed()
        return ws.close_code, ws.close_reason


def test_exception_in_websocket_handle_is_a_crash(serve, reasons, caplog):
    class Boom(Exception):
        pass

    class Crashing(Recorder):
        def websocket_handle(self, conn, frame):
            if frame.text == "value":
                raise ValueError("bad value %d" % 42)
            raise Boom("ünïcode message")

    server = serve({"/": Crashing})
    assert run(closed_by_server(url(server), "value"))[0] == 1011
    conn, reason = get(reasons)
    assert reason.kind == lariat.ReasonKind.CRASH
    assert reason.name == "crash"
    assert (reason.crash_class, reason.crash_reason) == \
        ("ValueError", "bad value 42")
    assert isinstance(conn, lariat.Connection)

    assert run(closed_by_server(url(server), "boom"))[0] == 1011
    reason = get(reasons)[1]
    assert reason.crash_class == Boom.__qualname__
    assert reason.crash_reason == "ünïcode message"
    # The traceback is logged, not lost.
    assert any(r.levelno == logging.ERROR and r.exc_info
               and r.exc_info[0] is Boom for r in caplog.records)


def test_bad_return_value_is_a_crash(serve, reasons):
    class Returns(Recorder):
        def websocket_handle(self, conn, frame):
            return "explode"

    server = serve({"/": Returns})
    assert run(closed_by_server(url(server), "x"))[0] == 1011
    reason = get(reasons)[1]
    assert reason.crash_class == "TypeError"
    assert "'explode'" in reason.crash_reason


def test_exception_in_init_answers_500(serve, reasons):
    class Refusing(Recorder):
        def init(self, req, upgrade):
            raise PermissionError("no entry for " + req.path)

    server = serve({"/": Refusing})

    async def connect():
        try:
            async with websockets.connect(url(server)):
                pass
        except websockets.exceptions.InvalidStatusCode as e:
            return e.status_code

    assert run(connect()) == 500
    conn, reason = get(reasons)
    assert conn is None  # never upgraded
    assert (reason.kind, reason.crash_class, reason.crash_reason) == \
        (lariat.ReasonKind.CRASH, "PermissionError", "no entry for /")


def test_plain_http_answer_from_init(serve, reasons):
    seen = []

    class Page(Recorder):
        def init(self, req, upgrade):
            seen.append((req.method, req.path, req.query, req.is_websocket,
                         req.header("X-TEST"), req.header("absent"),
                         req.peer[0]))
            try:
                upgrade.reply(200, [("x-bad", "a\r\nb")])
            except lariat.Error as e:
                seen.append(e.code)
            upgrade.reply(201, {"content-type": "text/plain",
                                "x-lariat": "yes"},
                          "hello %s" % req.query)

    server = serve({"/page": Page})
    http_conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                           timeout=10)
    try:
        http_conn.request("GET", "/page?who=you", headers={"x-test": "1"})
        resp = http_conn.getresponse()
        assert (resp.status, resp.read()) == (201, b"hello who=you")
        assert resp.getheader("x-lariat") == "yes"
        assert resp.getheader("content-type") == "text/plain"
    finally:
        http_conn.close()
    assert seen == [("GET", "/page", "who=you", False, "1", None,
                     "127.0.0.1"), lariat.ErrorCode.INVALID_ARGUMENT]
    conn, reason = get(reasons)
    assert conn is None
    assert (reason.kind, reason.name) == (lariat.ReasonKind.NORMAL, "normal")


def test_subprotocol(serve):
    errors = []

    class Chat:
        def init(self, req, upgrade):
            try:
                upgrade.set_protocol("not-offered")
            except lariat.Error as e:
                errors.append(e)
            if "v2.chat" in req.protocols:
                upgrade.set_protocol("v2.chat")

        def websocket_init(self, conn):
            conn.send_text(str(conn.protocol))

    server = serve({"/": Chat})

    async def connect(protocols):
        async with websockets.connect(url(server),
                                      subprotocols=protocols) as ws:
            return ws.subprotocol, await ws.recv()

    assert run(connect(["v1.chat", "v2.chat"])) == ("v2.chat", "v2.chat")
    assert run(connect(["v1.chat"])) == (None, "None")
    e = errors[0]
    assert (e.code, e.name) == (lariat.ErrorCode.INVALID_ARGUMENT,
                                "LARIAT_ERR_INVALID_ARGUMENT")
    assert str(e) == "invalid argument"


def test_terminate_reasons(serve, reasons):
    class Closer(Recorder):
        def websocket_handle(self, conn, frame):
            if frame.text == "shutdown":
                return "shutdown"
            if frame.text == "close":
                conn.close(4001, "custom")
            return None

    server = serve({"/": Closer})

    # The peer closes: remote, with its code and reason.
    async def client_closes():
        async with websockets.connect(url(server)) as ws:
            await ws.close(4000, "bye")

    run(client_closes())
    reason = get(reasons)[1]
    assert (reason.kind, reason.name, reason.code, reason.data) == \
        (lariat.ReasonKind.REMOTE, "remote", 4000, b"bye")

    # The handler returns "shutdown", or closes itself: shutdown.
    assert run(closed_by_server(url(server), "shutdown")) == (1000, "")
    assert get(reasons)[1].kind == lariat.ReasonKind.SHUTDOWN
    assert run(closed_by_server(url(server), "close")) == (4001, "custom")
    assert get(reasons)[1].kind == lariat.ReasonKind.SHUTDOWN

    # The server stops: close 1001, shutdown.
    async def server_stops():
        async with websockets.connect(url(server)) as ws:
            await ws.send("hello")  # its handling proves the upgrade
            server.stop()
            await ws.wait_closed()
            return ws.close_code

    assert run(server_stops()) == 1001
    reason = get(reasons)[1]
    assert (reason.kind, reason.name) == (lariat.ReasonKind.SHUTDOWN,
                                          "shutdown")
    assert server.wait(10)


def test_per_connection_state_is_released_after_terminate(serve, reasons):
    instances = []

    class Counter(Recorder):
        def __init__(self):
            self.count = 0
            instances.append(weakref.ref(self))

        def init(self, req, upgrade):
            upgrade.state = {"path": req.path}

        def websocket_handle(self, conn, frame):
            self.count += 1
            conn.send_text("%s %d" % (conn.state["path"], self.count))

    server = serve({"*": Counter})

    async def two_clients():
        async with websockets.connect(url(server, "/a")) as a, \
                websockets.connect(url(server, "/b")) as b:
            out = []
            for ws in (a, b, a, a, b):
                await ws.send("x")
                out.append(await ws.recv())
            return out

    assert run(two_clients()) == ["/a 1", "/b 1", "/a 2", "/a 3", "/b 2"]
    ended = [get(reasons)[0], get(reasons)[0]]
    assert all(conn.state is None for conn in ended)
    with pytest.raises(lariat.Error) as e:
        ended[0].send_text("too late")
    assert e.value.code == lariat.ErrorCode.NOT_FOUND
    del ended
    assert len(instances) == 2
    assert eventually(lambda: all(ref() is None for ref in instances))


def test_conn_methods_refuse_other_threads(serve):
    kept = []

    class Keep:
        def websocket_init(self, conn):
            kept.append(conn)
            conn.send_text("ready")

    server = serve({"/": Keep})

    async def hold():
        async with websockets.connect(url(server)) as ws:
            assert await ws.recv() == "ready"
            with pytest.raises(lariat.Error) as e:
                kept[0].send_text("from the test thread")
            assert e.value.code == lariat.ErrorCode.INVALID_STATE
            # ...but the id and post() work from any thread.
            assert kept[0].id > 0

    run(hold())


def test_c_errors_raise_lariat_error():
    with lariat.Server("127.0.0.1", 0) as first:
        first.listen()
        with lariat.Server("127.0.0.1", first.port) as second:
            with pytest.raises(lariat.Error) as e:
                second.listen()
            assert e.value.name == "EADDRINUSE"
            assert e.value.code < 0
            assert not e.value.fatal
        first.route("/", object())
        with pytest.raises(lariat.Error) as e:
            first.route("/", object())
        assert e.value.code == lariat.ErrorCode.EXISTS
        assert str(e.value) == "route already exists"
    with pytest.raises(lariat.Error) as e:
        lariat.Server(max_head_size=0)
    assert e.value.code == lariat.ErrorCode.INVALID_ARGUMENT


def test_close_code_errors_reach_the_handler(serve):
    class BadClose:
        def websocket_handle(self, conn, frame):
            try:
                conn.close(1005)
            except lariat.Error as e:
                conn.send_text(e.name)

    server = serve({"/": BadClose})

    async def talk():
        async with websockets.connect(url(server)) as ws:
            await ws.send("x")
            return await ws.recv()

    assert run(talk()) == "LARIAT_ERR_BAD_CLOSE_CODE"


def test_hibernate(serve):
    conns = []

    class Sleepy:
        def websocket_init(self, conn):
            conns.append(conn)

        def websocket_handle(self, conn, frame):
            conn.send_text("awake=%s" % (not conn.hibernating))
            return "hibernate"

        def websocket_info(self, conn, msg):
            conn.send_text("hibernating=%s" % conn.hibernating)
            return lariat.Result.HIBERNATE

    server = serve({"/": Sleepy})

    async def talk():
        async with websockets.connect(url(server)) as ws:
            out = []
            for _ in range(2):
                await ws.send("x")
                out.append(await ws.recv())
                # The reply arrived, so the write is done and the
                # connection has given its buffers back.
                conns[0].post(None)
                out.append(await ws.recv())
            return out

    assert run(talk()) == ["awake=True", "hibernating=True"] * 2
