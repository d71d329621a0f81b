"""The GIL and threads: the loop waits without the GIL, callbacks take it,
run() serves until stopped from any thread, and KeyboardInterrupt or
SystemExit in a handler stops the server instead of crashing a
connection."""

import threading
import time

import pytest
import websockets

import lariat
from conftest import TIMEOUT, run, url


class Counter(threading.Thread):
    """Counts as fast as Python lets it, until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.count = 0
        self.done = False

    def run(self):
        while not self.done:
            self.count += 1


def test_other_threads_run_while_the_server_serves(serve):
    loop_threads = []

    class Busy:
        def websocket_handle(self, conn, frame):
            loop_threads.append(threading.get_ident())
            # Pure-Python work in the callback; the counter thread must
            # keep running meanwhile (the callback only holds the GIL as
            # any Python code does).
            start, deadline = counter.count, time.monotonic() + 0.2
            total = 0
            while time.monotonic() < deadline:
                total += sum(range(100))
            conn.send_text("%d %d" % (total > 0, counter.count - start))

    counter = Counter()
    counter.start()
    try:
        server = serve({"/": Busy})
        # The loop thread is now blocked in epoll inside lariat_server_run;
        # if it held the GIL, the counter would not move.
        before = counter.count
        time.sleep(0.2)
        idle_progress = counter.count - before

        async def talk():
            async with websockets.connect(url(server)) as ws:
                await ws.send("work")
                return await ws.recv()

        worked, busy_progress = map(int, run(talk()).split())
    finally:
        counter.done = True
        counter.join(TIMEOUT)
    assert idle_progress > 1000
    assert worked == 1 and busy_progress > 1000
    assert loop_threads[0] != threading.get_ident()  # the server's thread


def test_run_serves_until_stop_from_another_thread():
    threads = []

    class Echo:
        def websocket_handle(self, conn, frame):
            threads.append(threading.get_ident())
            conn.send_text(frame.text)

    results = []

    with lariat.Server("127.0.0.1", 0) as server:
        server.route("/", Echo)
        server.listen()

        def client():
            async def talk():
                async with websockets.connect(url(server)) as ws:
                    await ws.send("ping")
                    results.append(await ws.recv())
                    server.stop()  # from this client thread
                    await ws.wait_closed()
                    results.append(ws.close_code)
            run(talk())

        t = threading.Thread(target=client)
        t.start()
        server.run()  # returns once stop() has ended every connection
        t.join(TIMEOUT)
    assert results == ["ping", 1001]
    # On the main thread, run() serves from a helper thread, so that this
    # one stays free for signal handlers (Ctrl-C, test_sigint.py).
    assert threads and threads[0] != threading.get_ident()


def test_run_on_another_thread_serves_on_it():
    threads, served = [], []

    class Echo:
        def websocket_handle(self, conn, frame):
            threads.append(threading.get_ident())
            conn.send_text(frame.text)

    server = lariat.Server("127.0.0.1", 0)
    server.route("/", Echo)
    server.listen()

    def serve():
        served.append(threading.get_ident())
        server.run()

    t = threading.Thread(target=serve)
    t.start()

    async def talk():
        async with websockets.connect(url(server)) as ws:
            await ws.send("x")
            return await ws.recv()

    try:
        assert run(talk()) == "x"
    finally:
        server.stop()
        t.join(TIMEOUT)
        server.close()
    assert threads == served


def test_serving_twice_or_routing_from_outside_is_refused(serve):
    server = serve({"/": object()})
    for call in (server.run, server.serve_in_thread,
                 lambda: server.route("/other", object())):
        try:
            call()
        except lariat.Error as e:
            assert e.code == lariat.ErrorCode.INVALID_STATE
        else:
            raise AssertionError("%r was allowed while serving" % call)


def test_close_from_inside_a_callback_is_refused(serve):
    errors = []

    class Closer:
        def websocket_init(self, conn):
            try:
                conn.server.close()
            except lariat.Error as e:
                errors.append(e.code)
            conn.send_text("done")

    server = serve({"/": Closer})

    async def talk():
        async with websockets.connect(url(server)) as ws:
            return await ws.recv()

    assert run(talk()) == "done"
    assert errors == [lariat.ErrorCode.INVALID_STATE]


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
def test_system_exit_in_a_handler_stops_run(exc):
    class Exits:
        def websocket_handle(self, conn, frame):
            raise exc

    codes = []
    with lariat.Server("127.0.0.1", 0) as server:
        server.route("/", Exits)
        server.listen()

        def client():
            async def talk():
                async with websockets.connect(url(server)) as ws:
                    await ws.send("x")
                    await ws.wait_closed()
                    codes.append(ws.close_code)
            run(talk())

        t = threading.Thread(target=client)
        t.start()
        # Not a crash of this connection: the server stops (1001 to every
        # client) and run() re-raises.
        with pytest.raises(type(exc)) as e:
            server.run()
        t.join(TIMEOUT)
    assert e.value is exc
    assert codes == [1001]
