"""Server.post from Python threads: order, delivery and release."""

import threading
import weakref

import pytest
import websockets

import lariat
from conftest import eventually, run, url

THREADS, PER_THREAD = 4, 250


class Msg:
    """A posted object; weakref-able to see when lariat releases it."""

    def __init__(self, thread, seq):
        self.thread, self.seq = thread, seq


class Relay:
    """Sends its id on open, then relays every posted Msg as text."""

    def websocket_init(self, conn):
        conn.send_text(str(conn.id))

    def websocket_info(self, conn, msg):
        if msg == "bye":
            return "shutdown"
        conn.send_text("%d:%d" % (msg.thread, msg.seq))
        return None


def post_error(server, conn_id, msg):
    """post()'s error; a caught exception's traceback would keep |msg|."""
    try:
        server.post(conn_id, msg)
    except lariat.Error as e:
        return e.code
    except OverflowError:
        return "OverflowError"
    return None


def test_posts_from_threads_arrive_in_order(serve):
    server = serve({"/": Relay})
    refs = []

    def poster(thread, conn_id, go):
        go.wait()
        for seq in range(PER_THREAD):
            msg = Msg(thread, seq)
            refs.append(weakref.ref(msg))
            server.post(conn_id, msg)

    async def receive():
        async with websockets.connect(url(server)) as ws:
            conn_id = int(await ws.recv())
            go = threading.Event()
            threads = [threading.Thread(target=poster, args=(t, conn_id, go))
                       for t in range(THREADS)]
            for t in threads:
                t.start()
            go.set()  # all threads post at once, interleaving
            got = [await ws.recv() for _ in range(THREADS * PER_THREAD)]
            for t in threads:
                t.join()
            return got

    got = [tuple(map(int, s.split(":"))) for s in run(receive())]
    for thread in range(THREADS):
        seqs = [seq for t, seq in got if t == thread]
        assert seqs == list(range(PER_THREAD)), "thread %d" % thread
    # Each object was kept alive until its free callback, then released.
    assert len(refs) == THREADS * PER_THREAD
    assert eventually(lambda: all(r() is None for r in refs))


def test_post_returning_shutdown_and_via_conn(serve):
    conns = []

    class Keep(Relay):
        def websocket_init(self, conn):
            conns.append(conn)
            conn.send_text("ready")

    server = serve({"/": Keep})

    async def talk():
        async with websockets.connect(url(server)) as ws:
            assert await ws.recv() == "ready"
            conns[0].post(Msg(7, 1))  # from this (non-loop) thread
            assert await ws.recv() == "7:1"
            server.post(conns[0].id, "bye")
            await ws.wait_closed()
            return ws.close_code

    assert run(talk()) == 1000


def test_post_to_an_ended_connection_is_released(serve):
    server = serve({"/": Relay})
    msg = Msg(0, 0)
    ref = weakref.ref(msg)
    server.post(12345, msg)  # no such connection: freed, not delivered
    del msg
    assert eventually(lambda: ref() is None)


def test_post_after_stop_raises_and_releases(serve):
    server = serve({"/": Relay})
    server.stop()
    assert server.wait(10)
    msg = Msg(0, 0)
    ref = weakref.ref(msg)
    # lariat_post fails and calls the free function on this thread.
    assert post_error(server, 1, msg) == lariat.ErrorCode.STOPPED
    del msg
    assert eventually(lambda: ref() is None)
    server.close()
    with pytest.raises(lariat.Error) as e:
        server.post(1, "after close")
    assert e.value.code == lariat.ErrorCode.STOPPED
    server.stop()  # harmless once closed


def test_post_with_a_bad_id_keeps_nothing(serve):
    server = serve({"/": Relay})
    msg = Msg(0, 0)
    ref = weakref.ref(msg)
    assert post_error(server, -1, msg) == "OverflowError"
    del msg
    assert eventually(lambda: ref() is None)
