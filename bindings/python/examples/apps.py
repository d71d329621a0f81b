"""Three applications written against the `websockets` 10 API, run
unchanged on websockets and on lariat.asyncio (tests/test_asyncio_apps.py
runs each on both and compares). Each takes the module it runs on,
`websockets` or `lariat.asyncio`, for what it imports from it (broadcast,
serve, connect)."""

import json


def echo(ws_lib):
    """Echoes every message, text as text, bytes as bytes."""
    async def handler(ws):
        async for message in ws:
            await ws.send(message)
    return handler


def chat(ws_lib):
    """A chat with rooms: the path names the room (/room/NAME); the first
    message is the nickname; every later message goes to everyone in the
    room as "nick: text"; joins and leaves are announced."""
    rooms = {}

    async def handler(ws):
        room = ws.path.rsplit("/", 1)[-1]
        members = rooms.setdefault(room, set())
        nick = await ws.recv()
        members.add(ws)
        ws_lib.broadcast(members, "* %s joined %s" % (nick, room))
        try:
            async for message in ws:
                ws_lib.broadcast(members, "%s: %s" % (nick, message))
        finally:
            members.discard(ws)
            ws_lib.broadcast(members, "* %s left" % nick)
            if not members:
                del rooms[room]
    return handler


def jsonrpc(ws_lib):
    """JSON-RPC 2.0 over text messages: add, concat, divide (errors on
    zero), and notifications (no id: no answer); batches as the spec says."""
    methods = {
        "add": lambda a, b: a + b,
        "concat": lambda *parts: "".join(parts),
        "divide": lambda a, b: a / b,
    }

    def call(request):
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" \
                or not isinstance(request.get("method"), str):
            return {"jsonrpc": "2.0", "id": None,
                    "error": {"code": -32600, "message": "Invalid Request"}}
        rid = request.get("id")
        fn = methods.get(request["method"])
        if fn is None:
            answer = {"error": {"code": -32601,
                                "message": "Method not found"}}
        else:
            params = request.get("params", [])
            try:
                result = fn(**params) if isinstance(params, dict) \
                    else fn(*params)
                answer = {"result": result}
            except ZeroDivisionError:
                answer = {"error": {"code": -32000,
                                    "message": "division by zero"}}
            except TypeError as exc:
                answer = {"error": {"code": -32602, "message": str(exc)}}
        if "id" not in request:
            return None
        return dict(jsonrpc="2.0", id=rid, **answer)

    async def handler(ws):
        async for message in ws:
            try:
                request = json.loads(message)
            except ValueError:
                await ws.send(json.dumps({
                    "jsonrpc": "2.0", "id": None,
                    "error": {"code": -32700, "message": "Parse error"}}))
                continue
            if isinstance(request, list):
                answers = [a for a in map(call, request) if a is not None]
                if answers:
                    await ws.send(json.dumps(answers))
            else:
                answer = call(request)
                if answer is not None:
                    await ws.send(json.dumps(answer))
    return handler
