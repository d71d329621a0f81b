import asyncio
import sys

from lariat.asyncio import serve


async def echo(ws):
    async for message in ws:  # str for text, bytes for binary
        await ws.send(message)


async def main(port):
    async with serve(echo, "127.0.0.1", port):
        await asyncio.Future()  # until Ctrl-C: then every client gets 1001


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8080))
