"""Flow control from Python: a cap that refuses sends, websocket_drain once
the client catches up, and pausing reads with set_active."""

import asyncio

import websockets

import lariat
from conftest import TIMEOUT, run, url


class Pusher:
    def init(self, req, upgrade):
        upgrade.set_max_queued(256 * 1024,
                               lariat.lib.LARIAT_BACKPRESSURE_REFUSE)
        upgrade.set_low_water(1024)

    def websocket_handle(self, conn, frame):
        if frame.text == "flood":
            sent = 0
            try:
                while sent < 1000:
                    conn.send_binary(b"x" * 65536)
                    sent += 1
            except lariat.Error as e:
                assert e.code == lariat.lib.LARIAT_ERR_BACKPRESSURE
            assert conn.buffered_amount <= 256 * 1024
            conn.send_text("sent=%d" % sent)
        elif frame.text == "pause":
            conn.send_text("paused")
            conn.set_active(False)
            conn.post("resume")
        else:
            conn.send_text(frame.text)

    def websocket_info(self, conn, msg):
        if msg == "resume":
            conn.set_active(True)

    def websocket_drain(self, conn):
        conn.send_text("drained")


def test_backpressure_drain_and_pause(serve):
    server = serve({"/p": Pusher})

    async def client():
        async with websockets.connect(url(server, "/p"),
                                      max_size=None) as ws:
            await ws.send("flood")
            binaries = 0
            while True:
                msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
                if isinstance(msg, bytes):
                    binaries += 1
                elif msg.startswith("sent="):
                    assert int(msg[5:]) == binaries
                    assert 0 < binaries < 1000
                else:
                    assert msg == "drained"
                    break
            await ws.send("pause")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "paused"
            await ws.send("after")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "after"

    run(client())
