"""The same application code (examples/apps.py: an echo, a chat with rooms,
a JSON-RPC service) on websockets 10.4 and on lariat.asyncio, with clients
of either library, must give the same results."""

import asyncio
import json
import os
import sys

import pytest
import websockets

import lariat.asyncio as lariat_asyncio

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import apps  # noqa: E402

from conftest import run  # noqa: E402

LIBS = {"websockets": websockets, "lariat": lariat_asyncio}


@pytest.fixture(params=sorted(LIBS))
def server_lib(request):
    return LIBS[request.param]


@pytest.fixture(params=sorted(LIBS))
def client_lib(request):
    return LIBS[request.param]


def port_of(server):
    return server.sockets[0].getsockname()[1]


async def echo_session(server_lib, client_lib):
    async with server_lib.serve(apps.echo(server_lib), "127.0.0.1", 0) as s:
        url = "ws://127.0.0.1:%d/" % port_of(s)
        async with client_lib.connect(url) as ws:
            out = []
            for i in range(200):
                await ws.send("text %d" % i)
                await ws.send(b"\x00\xff" * i)
            for i in range(400):
                out.append(await ws.recv())
            big = "x" * 100000
            await ws.send(big)
            out.append(await ws.recv() == big)
            await ws.close()
            return out, ws.close_code


def test_echo(server_lib, client_lib):
    got = run(echo_session(server_lib, client_lib))
    want = run(echo_session(websockets, websockets))
    assert got == want
    assert got[0][:2] == ["text 0", b""]


async def chat_session(server_lib, client_lib):
    log = []
    async with server_lib.serve(apps.chat(server_lib), "127.0.0.1", 0) as s:
        base = "ws://127.0.0.1:%d/room/" % port_of(s)
        a = await client_lib.connect(base + "red")
        await a.send("ann")
        log.append(("a", await a.recv()))
        b = await client_lib.connect(base + "red")
        await b.send("bob")
        log.append(("a", await a.recv()))
        log.append(("b", await b.recv()))
        c = await client_lib.connect(base + "blue")
        await c.send("cy")
        log.append(("c", await c.recv()))
        await a.send("hello red")
        log.append(("a", await a.recv()))
        log.append(("b", await b.recv()))
        await c.send("hello blue")
        log.append(("c", await c.recv()))
        await b.close()
        log.append(("a", await a.recv()))
        for ws in (a, c):
            await ws.close()
        await asyncio.sleep(0.05)
    return log


def test_chat_rooms(server_lib, client_lib):
    got = run(chat_session(server_lib, client_lib))
    assert got == run(chat_session(websockets, websockets))
    assert got == [
        ("a", "* ann joined red"), ("a", "* bob joined red"),
        ("b", "* bob joined red"), ("c", "* cy joined blue"),
        ("a", "ann: hello red"), ("b", "ann: hello red"),
        ("c", "cy: hello blue"), ("a", "* bob left")]


RPC = [
    {"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1},
    {"jsonrpc": "2.0", "method": "concat", "params": ["a", "b", "c"],
     "id": "x"},
    {"jsonrpc": "2.0", "method": "divide", "params": {"a": 1, "b": 0},
     "id": 3},
    {"jsonrpc": "2.0", "method": "nope", "id": 4},
    {"jsonrpc": "2.0", "method": "add", "params": [1, 1]},  # notification
    [{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 5},
     {"jsonrpc": "2.0", "method": "add", "params": [3]},
     {"jsonrpc": "2.0", "method": "add", "params": [3, 4], "id": 6}],
    {"method": "add", "id": 7},
]


async def rpc_session(server_lib, client_lib):
    async with server_lib.serve(apps.jsonrpc(server_lib), "127.0.0.1",
                                0) as s:
        url = "ws://127.0.0.1:%d/rpc" % port_of(s)
        async with client_lib.connect(url) as ws:
            answers = []
            for request in RPC:
                await ws.send(json.dumps(request))
            await ws.send("{not json")
            for _ in range(len(RPC)):  # one notification has no answer
                answers.append(json.loads(await ws.recv()))
            return answers


def test_jsonrpc(server_lib, client_lib):
    got = run(rpc_session(server_lib, client_lib))
    assert got == run(rpc_session(websockets, websockets))
    assert got[0] == {"jsonrpc": "2.0", "id": 1, "result": 5}
    assert got[-1]["error"]["code"] == -32700
