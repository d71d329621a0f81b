"""The benchmark's servers, one code for both libraries (issue 14, item 3):
    apps.py LIB APP PORT    LIB: websockets | lariat, APP: echo | broadcast
                            | topic (lariat only: the broadcast on a topic)
Prints "ready" when it listens; runs until killed."""

import asyncio
import sys

lib_name, app, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if lib_name == "websockets":
    import websockets as ws_lib
else:
    import lariat.asyncio as ws_lib

CLIENTS = set()
SERVER = []


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def broadcast(ws):
    # websockets' broadcast idiom: every message to every client.
    CLIENTS.add(ws)
    try:
        async for message in ws:
            ws_lib.broadcast(CLIENTS, message)
    finally:
        CLIENTS.discard(ws)


async def topic(ws):
    # lariat's topics: the fan-out runs in C, no Python per subscriber.
    ws.subscribe("all")
    async for message in ws:
        SERVER[0].publish("all", message)


async def main():
    handler = {"echo": echo, "broadcast": broadcast, "topic": topic}[app]
    # Compression off on both: the loads send small text, and websockets
    # would otherwise compress every copy of a broadcast.
    async with ws_lib.serve(handler, "127.0.0.1", port, compression=None,
                            max_queue=64) as server:
        SERVER.append(server)
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
