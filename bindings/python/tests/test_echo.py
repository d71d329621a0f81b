"""Echo over real sockets, with and without permessage-deflate, and the
examples/echo.py program run as a subprocess."""

import os
import re
import signal
import subprocess
import sys

import pytest
import websockets

import lariat
from conftest import TIMEOUT, run, url

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples",
                       "echo.py")


class Echo:
    def websocket_handle(self, conn, frame):
        if frame.opcode == lariat.Opcode.TEXT:
            conn.send_text(frame.text)
        elif frame.opcode == lariat.Opcode.BINARY:
            conn.send_binary(frame.data)


async def echo_roundtrips(uri, **client_options):
    async with websockets.connect(uri, **client_options) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        payload = bytes(range(256)) * 300  # 76800 bytes, all byte values
        await ws.send(payload)
        assert await ws.recv() == payload
        await ws.send(b"")
        assert await ws.recv() == b""
        return ws.extensions


def test_echo_text_and_binary(serve):
    server = serve({"/echo": Echo})
    extensions = run(echo_roundtrips(url(server, "/echo")))
    # The client offered permessage-deflate; lariat declines by default.
    assert extensions == []


def test_echo_compressed(serve):
    server = lariat.Server("127.0.0.1", 0)
    compressed = []

    class Deflating(Echo):
        def websocket_init(self, conn):
            compressed.append(conn.compressed)

    server.route("/", Deflating, compress={"level": 9, "threshold": 16})
    with server:
        server.serve_in_thread()
        extensions = run(echo_roundtrips(url(server)))
    assert compressed == [True]
    assert [e.name for e in extensions] == ["permessage-deflate"]


def test_unknown_deflate_option_is_rejected_at_route():
    with lariat.Server() as server:
        try:
            server.route("/", Echo, compress={"levle": 1})
        except TypeError as e:
            assert "levle" in str(e)
        else:
            raise AssertionError("a misspelt deflate option was accepted")


def test_echo_example_program():
    proc = subprocess.Popen(
        [sys.executable, EXAMPLE, "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, universal_newlines=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        assert m, "unexpected banner %r" % line

        async def talk():
            uri = "ws://127.0.0.1:%s/" % m.group(1)
            await echo_roundtrips(uri)
            async with websockets.connect(uri) as ws:
                await ws.send("still here")
                assert await ws.recv() == "still here"
                # SIGTERM stops the server: the client sees close 1001.
                proc.send_signal(signal.SIGTERM)
                await ws.wait_closed()
                return ws.close_code

        assert run(talk()) == 1001
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_echo_on_two_loops(serve):
    # Several event loops: connections spread over them, each echoes.
    server = serve({"/echo": Echo}, threads=2)

    async def many():
        for _ in range(8):
            await echo_roundtrips(url(server, "/echo"))
    run(many())
    with pytest.raises(lariat.Error):
        lariat.Server("127.0.0.1", 0, threads=256)
