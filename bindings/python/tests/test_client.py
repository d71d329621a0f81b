"""Server.connect(): the lariat client against Python's websockets server
(subprotocol and permessage-deflate negotiated, 1,000 echoes each way),
against a lariat server in the same process, a failed handshake's status
and headers, and close_client()."""

import asyncio
import os
import queue
import subprocess
import threading

import websockets

import lariat
from conftest import TIMEOUT, eventually, get


class WebsocketsServer:
    """websockets.serve on a thread of its own: echoes what it gets, and
    on "!push" sends 1,000 numbered messages the client must echo back
    (checked in order, the result put on |self.pushed|)."""

    def __init__(self):
        self.pushed = queue.Queue()
        self.protocols = queue.Queue()
        self.extensions = queue.Queue()
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        async def handler(ws, path=None):
            self.protocols.put(ws.subprotocol)
            self.extensions.put([e.name for e in ws.extensions])
            async for msg in ws:
                if msg == "!push":
                    ok = True
                    for i in range(1000):
                        await ws.send("p%d" % i)
                        ok = ok and await ws.recv() == "p%d" % i
                    self.pushed.put(ok)
                else:
                    await ws.send(msg)

        async def main():
            self.server = await websockets.serve(
                handler, "127.0.0.1", 0, subprotocols=["chat"],
                compression="deflate")
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            await self.server.wait_closed()

        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(main()), daemon=True)
        self.thread.start()
        assert ready.wait(TIMEOUT)

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.thread.join(TIMEOUT)


class Echoer:
    """Sends 0..999, each after the echo of the one before, then "!push",
    echoes what the server pushes, and shuts down when told."""

    def __init__(self, events):
        self.events = events

    def websocket_init(self, conn):
        self.events.put(("open", conn.protocol, conn.compressed))
        self.next = 0
        conn.send_text("0")

    def websocket_handle(self, conn, frame):
        text = frame.text
        if text.startswith("hello"):  # the Node server's greeting
            self.events.put(("greeting", text))
            return None
        if text.startswith("pushed"):
            self.events.put(("pushed", text))
            return None
        if text.startswith("p"):
            conn.send_text(text)
            return None
        if text != str(self.next):
            self.events.put(("out of order", text))
            return "shutdown"
        self.next += 1
        if self.next < 1000:
            conn.send_text(str(self.next))
        elif self.next == 1000:
            self.events.put(("echoed", 1000))
            conn.send_text("!push")
        return None

    def websocket_info(self, conn, msg):
        if msg == "bye":
            return "shutdown"
        return None

    def terminate(self, conn, reason):
        self.events.put(("end", reason))


def test_client_with_a_websockets_server(serve):
    peer = WebsocketsServer()
    try:
        server = serve({})
        events = queue.Queue()
        cid = server.connect("ws://127.0.0.1:%d/" % peer.port, Echoer(events),
                             protocols=["other", "chat"], compress=True)
        assert get(events) == ("open", "chat", True)
        assert get(peer.protocols) == "chat"
        assert get(peer.extensions) == ["permessage-deflate"]
        assert get(events) == ("echoed", 1000)
        assert get(peer.pushed) is True
        server.post(cid, "bye")
        kind, reason = get(events)
        assert kind == "end"
        assert reason.kind == lariat.ReasonKind.SHUTDOWN
        assert not reason.retrying
    finally:
        peer.close()


NODE_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                           "..", "..", "tests", "browser", "ws_echo_server.mjs")


def test_client_with_a_node_ws_server(serve):
    node = subprocess.Popen(["node", NODE_SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, universal_newlines=True)
    try:
        port = int(node.stdout.readline())
        server = serve({})
        events = queue.Queue()
        cid = server.connect("ws://127.0.0.1:%d/" % port, Echoer(events),
                             protocols=["chat"], compress=True)
        assert get(events) == ("open", "chat", True)
        assert get(events) == ("greeting", "hello chat permessage-deflate")
        assert get(events) == ("echoed", 1000)
        assert get(events) == ("pushed", "pushed ok")
        server.post(cid, "bye")
        kind, reason = get(events)
        assert kind == "end" and reason.kind == lariat.ReasonKind.SHUTDOWN
    finally:
        node.stdin.close()
        node.wait(TIMEOUT)


def test_client_with_a_lariat_server_and_close_client(serve):
    class Echo:
        def websocket_handle(self, conn, frame):
            conn.send(frame.data if frame.opcode == lariat.Opcode.BINARY
                      else frame.text)

    server = serve({"/echo": Echo})
    events = queue.Queue()

    class Quiet:
        def websocket_init(self, conn):
            events.put("open")
            conn.send_binary(b"\x00\xff")

        def websocket_handle(self, conn, frame):
            events.put(frame.data)

        def terminate(self, conn, reason):
            events.put(reason)

    cid = server.connect("ws://127.0.0.1:%d/echo" % server.port, Quiet)
    assert get(events) == "open"
    assert get(events) == b"\x00\xff"
    server.close_client(cid)
    reason = get(events)
    assert reason.kind == lariat.ReasonKind.SHUTDOWN
    assert reason.attempt == 1


def test_failed_handshake(serve):
    server = serve({"/only": object})
    events = queue.Queue()

    class Watch:
        def terminate(self, conn, reason):
            events.put((conn, reason.kind, reason.http_status,
                        reason.header("content-length"), reason.failure))

    server.connect("ws://127.0.0.1:%d/missing" % server.port, Watch)
    conn, kind, status, length, failure = get(events)
    assert conn is None
    assert kind == lariat.ReasonKind.HANDSHAKE_FAILED
    assert status == 404
    assert length is not None
    assert "101" in failure


def test_bad_arguments(serve):
    server = serve({})
    for bad in ("http://x/", "ws://", "ws://h:99999/"):
        try:
            server.connect(bad, object)
        except lariat.Error as e:
            assert e.code == lariat.ErrorCode.INVALID_ARGUMENT
        else:
            raise AssertionError("connect(%r) did not fail" % bad)
