"""lariat.asyncio beyond the shared applications: requests, subprotocols,
compression, max_size, topics, backpressure, the client's failures."""

import asyncio

import pytest
import websockets

import lariat.asyncio as la

from conftest import run


def port_of(server):
    return server.sockets[0].getsockname()[1]


def test_request_and_subprotocol():
    seen = {}

    async def handler(ws):
        if "path" in seen:
            await ws.send(ws.subprotocol or "-")
            return
        seen["path"] = ws.request.path
        seen["query"] = ws.request.query
        seen["ua"] = ws.request.headers["x-test"]
        seen["proto"] = ws.subprotocol
        seen["legacy"] = (ws.path, ws.request_headers.get("X-Test"))
        await ws.send(ws.subprotocol or "-")

    async def main():
        async with la.serve(handler, "127.0.0.1", 0,
                            subprotocols=["json", "chat"]) as s:
            url = "ws://127.0.0.1:%d/p/q?a=1" % port_of(s)
            async with websockets.connect(
                    url, subprotocols=["chat", "json"],
                    extra_headers={"X-Test": "yes"}) as ws:
                assert ws.subprotocol == "chat"
                assert await ws.recv() == "chat"
            async with la.connect(url, subprotocols=["other"]) as ws:
                assert ws.subprotocol is None
                assert await ws.recv() == "-"
            async with la.connect(url, subprotocols=["json"]) as ws:
                assert ws.subprotocol == "json"
    run(main())
    assert seen["path"] == "/p/q" and seen["query"] == "a=1"
    assert seen["ua"] == "yes" and seen["legacy"] == ("/p/q?a=1", "yes")


@pytest.mark.parametrize("compression", ["deflate", None])
def test_compression(compression):
    async def echo(ws):
        async for m in ws:
            await ws.send(m)

    async def main():
        async with la.serve(echo, "127.0.0.1", 0,
                            compression=compression) as s:
            url = "ws://127.0.0.1:%d/" % port_of(s)
            async with websockets.connect(url) as ws:
                negotiated = [e.name for e in ws.extensions]
                await ws.send("a" * 10000)
                assert await ws.recv() == "a" * 10000
            async with la.connect(url, compression=compression) as ws:
                await ws.send("b" * 10000)
                assert await ws.recv() == "b" * 10000
            return negotiated
    negotiated = run(main())
    assert negotiated == (["permessage-deflate"] if compression else [])


@pytest.mark.parametrize("lib", [websockets, la], ids=["websockets", "lariat"])
def test_max_size(lib):
    async def echo(ws):
        async for m in ws:
            await ws.send(m)

    async def main():
        async with lib.serve(echo, "127.0.0.1", 0, max_size=1000) as s:
            url = "ws://127.0.0.1:%d/" % port_of(s)
            async with websockets.connect(url) as ws:
                await ws.send("x" * 1000)
                assert await ws.recv() == "x" * 1000
                await ws.send("x" * 1001)
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
                return ws.close_code
    assert run(main()) == 1009


def test_close_code_and_reason():
    async def handler(ws):
        await ws.recv()
        await ws.close(4001, "bye now")

    async def main():
        async with la.serve(handler, "127.0.0.1", 0) as s:
            url = "ws://127.0.0.1:%d/" % port_of(s)
            async with websockets.connect(url) as ws:
                await ws.send("x")
                with pytest.raises(websockets.ConnectionClosed) as e:
                    await ws.recv()
                assert (e.value.code, e.value.reason) == (4001, "bye now")
            async with la.connect(url) as ws:
                await ws.send("x")
                with pytest.raises(la.ConnectionClosedError) as e:
                    await ws.recv()
                assert (e.value.code, e.value.reason) == (4001, "bye now")
                assert ws.closed and ws.close_code == 4001
    run(main())


def test_handler_exception_closes_1011():
    async def handler(ws):
        await ws.recv()
        raise ValueError("boom")

    async def main():
        async with la.serve(handler, "127.0.0.1", 0) as s:
            async with websockets.connect(
                    "ws://127.0.0.1:%d/" % port_of(s)) as ws:
                await ws.send("x")
                await ws.wait_closed()
                return ws.close_code
    assert run(main()) == 1011


def test_topics():
    async def handler(ws):
        room = ws.request.path.strip("/")
        ws.subscribe(room)
        await ws.send("joined")
        async for message in ws:
            if message == "leave":
                ws.unsubscribe(room)
                await ws.send("left")
            else:
                ws.publish(room, message)  # everyone but ws

    async def main():
        async with la.serve(handler, "127.0.0.1", 0) as s:
            base = "ws://127.0.0.1:%d/" % port_of(s)
            clients = [await la.connect(base + "r1") for _ in range(5)]
            other = await la.connect(base + "r2")
            for ws in clients + [other]:
                assert await ws.recv() == "joined"
            s.publish("r1", "to everyone")
            s.publish("r1", b"\x01bytes")
            for ws in clients:
                assert await ws.recv() == "to everyone"
                assert await ws.recv() == b"\x01bytes"
            await clients[0].send("from 0")
            for ws in clients[1:]:
                assert await ws.recv() == "from 0"
            await clients[1].send("leave")
            assert await clients[1].recv() == "left"
            s.publish("r1", "after")
            s.publish("r2", "r2 only")
            for ws in clients[2:] + [clients[0]]:
                assert await ws.recv() == "after"
            assert await other.recv() == "r2 only"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(clients[1].recv(), 0.2)
            for ws in clients + [other]:
                await ws.close()
    run(main())


def test_backpressure_bounds_the_queue():
    """A handler that reads slowly: the server stops reading from the
    socket instead of queueing every message in Python."""
    peak = []
    N = 3000

    async def slow(ws):
        count = 0
        async for message in ws:
            count += 1
            peak.append(ws._received - ws._consumed)
            if count % 100 == 0:
                await asyncio.sleep(0.01)
        await ws.send(str(count))

    async def main():
        async with la.serve(slow, "127.0.0.1", 0, max_queue=16) as s:
            url = "ws://127.0.0.1:%d/" % port_of(s)
            async with websockets.connect(url) as ws:
                for i in range(N):
                    await ws.send("m" * 1000)
                await ws.close()
            await asyncio.sleep(0.3)
    run(main())
    assert len(peak) == N
    # max_queue plus what lariat had already read from the socket before
    # it stopped reading (one read's worth of frames at most).
    assert max(peak) <= 16 + 100, max(peak)


def test_send_waits_for_a_slow_reader():
    """send() waits (write_limit) while the peer does not read."""
    sent = []

    async def flood(ws):
        for i in range(2000):
            await ws.send("y" * 10000)
            sent.append(i)

    async def main():
        # Uncompressed: 2000 compressed copies of one letter would fit in
        # the socket buffers.
        async with la.serve(flood, "127.0.0.1", 0, compression=None) as s:
            url = "ws://127.0.0.1:%d/" % port_of(s)
            async with websockets.connect(url, max_queue=1,
                                          compression=None) as ws:
                await asyncio.sleep(0.5)
                stalled = len(sent)
                n = 0
                while n < 2000:
                    await ws.recv()
                    n += 1
                return stalled
    stalled = run(main())
    assert stalled < 2000, stalled


def test_connect_failures():
    async def forbid(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main():
        with pytest.raises(OSError):
            await la.connect("ws://127.0.0.1:1/")
        s = await asyncio.start_server(forbid, "127.0.0.1", 0)
        async with s:
            with pytest.raises(la.InvalidStatusCode) as e:
                await la.connect("ws://127.0.0.1:%d/" % port_of(s))
            assert e.value.status_code == 403
        with pytest.raises(la.InvalidURI):
            la.connect("http://x/")
    run(main())


def test_server_close_ends_handlers_with_1001():
    codes = []

    async def handler(ws):
        try:
            await ws.recv()
        except la.ConnectionClosed as e:
            codes.append(e.code)

    async def main():
        s = await la.serve(handler, "127.0.0.1", 0)
        ws = await websockets.connect("ws://127.0.0.1:%d/" % port_of(s))
        await asyncio.sleep(0.1)
        s.close()
        await s.wait_closed()
        await ws.wait_closed()
        return ws.close_code
    assert run(main()) == 1001
    assert codes == [1001]
