"""An asyncio API over lariat, shaped like the `websockets` library's.

    import asyncio
    from lariat.asyncio import serve

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def main():
        async with serve(echo, "127.0.0.1", 8765):
            await asyncio.Future()  # forever

    asyncio.run(main())

What `websockets` (10.x) code uses works unchanged: serve(handler, host,
port, subprotocols=, select_subprotocol=, compression=, max_size=,
max_queue=) as an async context manager (or awaitable), a connection with
`async for message in ws`, recv(), send(str | bytes), close(code, reason),
wait_closed(), ping(), path, request_headers, subprotocol, remote_address,
open/closed, close_code/close_reason, broadcast(connections, message), the
ConnectionClosed / ConnectionClosedOK / ConnectionClosedError exceptions
(also as lariat.asyncio.exceptions.*), and connect(url) as an async context
manager or an awaitable. lariat adds ws.request (path, query, headers),
topics (ws.subscribe(topic), ws.unsubscribe(topic), ws.publish(topic,
message) to every subscriber but ws, server.publish(topic, message)).

Threads: lariat's loop runs on a thread of its own and hands events to
the asyncio loop in batches. For server connections the crossing is C
(pyaq.c, in the cffi module): lariat's thread copies each message into a
list and, when the list was empty, wakes the asyncio loop through an
eventfd, so whatever arrived while asyncio was busy is one wakeup and one
pass, and lariat's thread never takes the GIL for a message; send(),
close(), subscribe() and publish() go into a list that one
lariat_server_defer() runs on lariat's loop, in the order they were made,
and whose output leaves in one write per connection. Client connections
(connect()) take the same path in Python: one call_soon_threadsafe() per
batch of events, one lariat_server_defer() per batch of operations.

Backpressure: a connection whose Python side has max_queue messages not
yet read stops reading from its socket (lariat_conn_set_active) until it
has read half of them: a slow handler holds the peer back through TCP
instead of growing memory. send() waits (like websockets' drain) while
more than write_limit bytes are queued for the peer.

The server runs one lariat loop (threads=1): the batch of operations runs
on it, and every connection must be on the loop that runs the batch.
"""

import asyncio as _asyncio
import collections
import ssl as _ssl
import tempfile
import threading
import types
import urllib.parse

import lariat as _lariat
from _lariat import ffi, lib

__all__ = [
    "ConnectionClosed", "ConnectionClosedError", "ConnectionClosedOK",
    "InvalidHandshake", "InvalidStatusCode", "InvalidURI", "WebSocketServer",
    "ServerConnection", "ClientConnection", "broadcast", "connect",
    "exceptions", "serve",
]


# ------------------------------------------------------------- exceptions

class WebSocketException(Exception):
    """Base of this module's exceptions."""


class ConnectionClosed(WebSocketException):
    """recv() or send() on a closed connection. .code and .reason are the
    close code and reason (1006 and "" when no close frame was seen)."""

    def __init__(self, code, reason):
        self.code = code
        self.reason = reason
        super().__init__("connection closed: %d %s" % (code, reason)
                         if reason else "connection closed: %d" % code)


class ConnectionClosedOK(ConnectionClosed):
    """Closed with 1000 or 1001."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with any other code, or without a close frame."""


class InvalidHandshake(WebSocketException):
    """connect() could not complete the opening handshake."""


class InvalidStatusCode(InvalidHandshake):
    """The server answered the upgrade with a status other than 101."""

    def __init__(self, status_code, headers=None):
        self.status_code = status_code
        self.headers = headers or {}
        super().__init__("server rejected WebSocket connection: HTTP %d"
                         % status_code)


class InvalidURI(WebSocketException):
    """connect() was given a URL that is not ws://host[:port]/path."""


# The names `websockets` code reaches through websockets.exceptions.
exceptions = types.SimpleNamespace(
    WebSocketException=WebSocketException, ConnectionClosed=ConnectionClosed,
    ConnectionClosedOK=ConnectionClosedOK,
    ConnectionClosedError=ConnectionClosedError,
    InvalidHandshake=InvalidHandshake, InvalidStatusCode=InvalidStatusCode,
    InvalidURI=InvalidURI)


def _closed_exception(code, reason):
    cls = ConnectionClosedOK if code in (1000, 1001) else \
        ConnectionClosedError
    return cls(code, reason)


# ---------------------------------------------------------------- request

class Request:
    """The HTTP request that opened a server connection: path (without the
    query), query, headers (a Headers mapping), protocols offered."""
    __slots__ = ("path", "query", "headers", "protocols", "peer")

    def __init__(self, path, query, headers, protocols, peer):
        self.path, self.query, self.headers = path, query, headers
        self.protocols, self.peer = protocols, peer

    def __repr__(self):
        return "<lariat.asyncio.Request %s>" % self.path


class Headers(collections.abc.Mapping):
    """HTTP headers: case-insensitive lookup of the first value, get_all()
    for every value, raw_items() in the order received."""

    def __init__(self, items=()):
        self._items = list(items)
        self._first = {}
        for name, value in self._items:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name):
        return self._first[name.lower()]

    def __iter__(self):
        return iter(self._first)

    def __len__(self):
        return len(self._first)

    def __contains__(self, name):
        return isinstance(name, str) and name.lower() in self._first

    def get_all(self, name):
        name = name.lower()
        return [v for k, v in self._items if k.lower() == name]

    def raw_items(self):
        return list(self._items)

    def __repr__(self):
        return "Headers(%r)" % (self._items,)


# ------------------------------------------------- the two threads' glue

_RESUME = object()       # websocket_info: read from the socket again
_OPEN, _MESSAGE, _CLOSED, _DRAINED, _FAILED = range(5)


class _Inbox:
    """Events from lariat's loop thread to one asyncio loop, in batches."""

    def __init__(self, loop):
        self.loop = loop
        self.events = []
        self.lock = threading.Lock()
        self.scheduled = False

    def push(self, event):  # lariat's loop thread
        with self.lock:
            self.events.append(event)
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.drain)
        except RuntimeError:  # the asyncio loop has closed
            pass

    def drain(self):  # the asyncio loop
        with self.lock:
            events, self.events = self.events, []
            self.scheduled = False
        for kind, ws, value in events:
            if kind == _MESSAGE:
                ws._deliver(value)
            elif kind == _OPEN:
                ws._opened(value)
            elif kind == _CLOSED:
                ws._ended(*value)
            elif kind == _DRAINED:
                ws._drained()
            else:
                ws._failed(value)


_inboxes = {}  # asyncio loop -> _Inbox; entries go with their loop
_inboxes_lock = threading.Lock()


def _inbox():
    loop = _asyncio.get_running_loop()
    with _inboxes_lock:
        box = _inboxes.get(loop)
        if box is None:
            for old in [k for k in _inboxes if k.is_closed()]:
                del _inboxes[old]
            box = _inboxes[loop] = _Inbox(loop)
    return box


class _Outbox:
    """Operations from asyncio to one lariat server's loop, in batches:
    one lariat_server_defer() runs everything queued meanwhile."""

    def __init__(self, server):
        self.server = server
        self.ops = []
        self.lock = threading.Lock()
        self.scheduled = False
        self.frame = ffi.new("lariat_frame *")

    def put(self, op):  # any thread
        with self.lock:
            self.ops.append(op)
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.server.defer(self.run)
        except _lariat.Error:  # stopping: nothing more is sent
            with self.lock:
                self.ops.clear()
                self.scheduled = False

    def run(self):  # lariat's loop thread
        with self.lock:
            ops, self.ops = self.ops, []
            self.scheduled = False
        frame = self.frame
        for op in ops:
            try:
                op[0](self, frame, *op[1:])
            except _lariat.Error:
                pass  # the connection ended meanwhile: dropped, as websockets
            except Exception:
                _lariat._log.exception("lariat.asyncio: operation failed")

    # The operations; each runs on lariat's loop thread.
    @staticmethod
    def send(box, frame, ws, opcode, payload):
        conn = ws._conn
        if conn is None or conn._ptr is None:
            ws._flushed_bytes += len(payload)
            return
        buf = ffi.from_buffer(payload)
        frame.opcode = opcode
        frame.flags = 0
        frame.close_code = 0
        frame.data = buf
        frame.len = len(payload)
        rc = lib.lariat_reply(conn._ptr, frame)
        ws._flushed_bytes += len(payload)
        if rc < 0:
            return
        if ws._can_drain and not ws._write_paused and ws._write_limit and \
                lib.lariat_conn_buffered_amount(conn._ptr) > ws._write_limit:
            ws._write_paused = True

    @staticmethod
    def send_many(box, frame, conns, opcode, payload):
        buf = ffi.from_buffer(payload)
        frame.opcode = opcode
        frame.flags = 0
        frame.close_code = 0
        frame.data = buf
        frame.len = len(payload)
        reply = lib.lariat_reply
        for ws in conns:
            conn = ws._conn
            if conn is not None and conn._ptr is not None:
                reply(conn._ptr, frame)

    @staticmethod
    def close(box, frame, ws, code, reason):
        conn = ws._conn
        if conn is not None and conn._ptr is not None:
            ws._sent_code = code
            conn.close(code, reason)

    @staticmethod
    def ping(box, frame, ws, data):
        conn = ws._conn
        if conn is not None and conn._ptr is not None:
            conn.ping(data)

    @staticmethod
    def subscribe(box, frame, ws, topic, on):
        conn = ws._conn
        if conn is not None and conn._ptr is not None:
            if on:
                conn.subscribe(topic)
            else:
                conn.unsubscribe(topic)

    @staticmethod
    def conn_publish(box, frame, ws, topic, message):
        conn = ws._conn
        if conn is not None and conn._ptr is not None:
            conn.publish(topic, message)

    @staticmethod
    def publish(box, frame, topic, message):
        box.server.publish(topic, message)

    @staticmethod
    def call(box, frame, fn):
        fn()


def _opcode_payload(message):
    if isinstance(message, str):
        return lib.LARIAT_OP_TEXT, message.encode("utf-8")
    if isinstance(message, (bytes, bytearray, memoryview)):
        return lib.LARIAT_OP_BINARY, bytes(message)
    raise TypeError("data must be str or bytes, not %s"
                    % type(message).__name__)


def _close_of(reason, sent_code):
    """(code, reason text) that websockets would report for |reason|;
    |sent_code|: the code of our close(), None when lariat closed (the
    server stopping: 1001)."""
    kind = reason.kind
    if kind == _lariat.ReasonKind.REMOTE:
        code = reason.code or 1005
        return code, reason.data.decode("utf-8", "replace")
    if kind == _lariat.ReasonKind.SHUTDOWN:
        return reason.code or sent_code or 1001, \
            reason.data.decode("utf-8", "replace") if reason.data else ""
    if kind == _lariat.ReasonKind.CRASH:
        return 1011, ""
    if kind == _lariat.ReasonKind.ERROR_BADENCODING:
        return 1007, ""
    if kind == _lariat.ReasonKind.ERROR_BADFRAME:
        return 1002, ""
    if kind == _lariat.ReasonKind.ERROR_TOO_BIG:
        return 1009, ""
    return 1006, ""


class _Handler:
    """The lariat handler behind every asyncio connection; one instance
    per request, on lariat's loop thread."""

    opened = False

    def __init__(self, ws):
        self.ws = ws

    def websocket_init(self, conn):
        self.opened = True
        ws = self.ws
        ws.id = conn.id
        ws._conn = conn
        ws._protocol = conn.protocol
        ws._inbox.push((_OPEN, ws, None))

    def websocket_handle(self, conn, frame):
        opcode = frame.opcode
        if opcode == 1:  # text
            message = frame.data.decode("utf-8")
        elif opcode == 2:
            message = frame.data
        else:
            return None
        ws = self.ws
        ws._received += 1
        ws._inbox.push((_MESSAGE, ws, message))
        if ws._received - ws._consumed >= ws._max_queue and \
                not ws._read_paused:
            ws._read_paused = True
            conn.set_active(False)
        return None

    def websocket_info(self, conn, msg):
        ws = self.ws
        if msg is _RESUME:
            ws._resuming = False
            if ws._read_paused:
                ws._read_paused = False
                conn.set_active(True)

    def websocket_drain(self, conn):
        ws = self.ws
        if ws._write_paused:
            ws._write_paused = False
            ws._inbox.push((_DRAINED, ws, None))

    def terminate(self, conn, reason):
        ws = self.ws
        ws._conn = None
        if not self.opened:
            ws._inbox.push((_FAILED, ws, reason))
        else:
            ws._inbox.push((_CLOSED, ws, _close_of(reason, ws._sent_code)))


_CONNECTING, _OPENED, _CLOSING, _DONE = range(4)


# ------------------------------------------------------------- connection

class _Connection:
    """What server handlers get and connect() returns."""

    def __init__(self, inbox, outbox, max_queue, write_limit):
        self._inbox, self._outbox = inbox, outbox
        self._loop = inbox.loop
        self._conn = None               # lariat.Connection, loop thread
        self._state = _CONNECTING
        self._protocol = None
        self._messages = collections.deque()
        self._waiter = None             # recv()'s future
        self._received = 0              # written by lariat's thread only
        self._consumed = 0              # written by asyncio only
        self._max_queue = max(1, max_queue or 1 << 30)
        self._read_paused = False       # lariat's thread
        self._resuming = False
        self._write_limit = write_limit or 0
        self._write_paused = False
        self._sent_bytes = 0            # asyncio
        self._flushed_bytes = 0         # lariat's thread
        self._can_drain = False
        self._sent_code = None          # lariat's thread: our close's code
        self._drain_waiters = []
        self._closed = self._loop.create_future()
        self._opened_future = self._loop.create_future()
        self.close_code = None
        self.close_reason = None
        self.id = None

    # -- events from lariat (asyncio thread)
    def _opened(self, _):
        self._state = _OPENED
        if not self._opened_future.done():
            self._opened_future.set_result(None)

    def _deliver(self, message):
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            self._consume()
            waiter.set_result(message)
        else:
            self._messages.append(message)

    def _ended(self, code, reason):
        self._state = _DONE
        self.close_code, self.close_reason = code, reason
        if not self._closed.done():
            self._closed.set_result(None)
        if not self._opened_future.done():
            self._opened_future.set_result(None)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(_closed_exception(code, reason))
        self._drained()

    def _failed(self, reason):
        self._state = _DONE
        self.close_code, self.close_reason = 1006, ""
        if not self._closed.done():
            self._closed.set_result(None)
        if not self._opened_future.done():
            if reason.kind == _lariat.ReasonKind.HANDSHAKE_FAILED and \
                    reason.http_status:
                exc = InvalidStatusCode(reason.http_status)
            elif reason.kind == _lariat.ReasonKind.HANDSHAKE_FAILED and \
                    reason.failure and reason.failure.startswith(
                        ("connect", "name resolution", "socket")):
                exc = OSError("could not connect to %s: %s"
                              % (getattr(self, "url", "?"), reason.failure))
            elif reason.kind == _lariat.ReasonKind.HANDSHAKE_FAILED and \
                    (reason.failure or "").startswith("TLS"):
                # As websockets raises them, from the ssl module.
                verify = "certificate verify failed" in reason.failure
                exc = (_ssl.SSLCertVerificationError if verify
                       else _ssl.SSLError)(reason.failure)
            elif reason.kind == _lariat.ReasonKind.HANDSHAKE_FAILED:
                exc = InvalidHandshake(reason.failure or "handshake failed")
            else:
                exc = OSError("could not connect: %s" % (reason,))
            self._opened_future.set_exception(exc)
        self._drained()

    def _drained(self):
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def _consume(self):
        self._consumed += 1
        if self._read_paused:
            self._maybe_resume()

    def _maybe_resume(self):
        if self._read_paused and not self._resuming and \
                self._received - self._consumed <= self._max_queue // 2 and \
                self.id is not None:
            self._resuming = True
            try:
                self._outbox.server.post(self.id, _RESUME)
            except _lariat.Error:
                pass

    # -- the websockets API
    @property
    def open(self):
        return self._state == _OPENED

    @property
    def closed(self):
        return self._state == _DONE

    @property
    def subprotocol(self):
        return self._protocol

    async def recv(self):
        """The next message: str for text, bytes for binary. Raises
        ConnectionClosed once the connection has ended and every message
        received before has been read."""
        if self._messages:
            self._consume()
            return self._messages.popleft()
        if self._state == _DONE:
            raise _closed_exception(self.close_code, self.close_reason)
        if self._waiter is not None:
            raise RuntimeError("cannot call recv while another coroutine "
                               "is already waiting for the next message")
        self._waiter = waiter = self._loop.create_future()
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def __aiter__(self):
        return self._iterate()

    async def _iterate(self):
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    async def send(self, message):
        """Sends a text (str) or binary (bytes) message; an iterable of
        them is sent as that many messages. Raises ConnectionClosed when
        the connection has ended."""
        if isinstance(message, (str, bytes, bytearray, memoryview)):
            opcode, payload = _opcode_payload(message)
            await self._send(opcode, payload)
        elif isinstance(message, dict):
            raise TypeError("data is a dict-like object")
        elif hasattr(message, "__aiter__"):
            async for m in message:
                await self.send(m)
        else:
            for m in message:
                await self.send(m)

    async def _send(self, opcode, payload):
        if self._state != _OPENED:
            if self._state == _CONNECTING:
                await self._opened_future
            if self._state != _OPENED:
                await self._wait_done()
                raise _closed_exception(self.close_code or 1006,
                                        self.close_reason or "")
        self._sent_bytes += len(payload)
        self._outbox.put((_Outbox.send, self, opcode, payload))
        if self._write_paused or (self._write_limit and self._sent_bytes -
                                  self._flushed_bytes > self._write_limit):
            await self._drain()

    async def _drain(self):
        if self._state == _DONE:
            return
        w = self._loop.create_future()
        self._drain_waiters.append(w)
        if not self._write_paused:
            # Queued here, not yet in lariat: the batch's run tells us.
            self._outbox.put((_Outbox.call, self._after_batch))
        await w

    def _after_batch(self):  # lariat's loop thread
        if not self._write_paused:
            self._inbox.push((_DRAINED, self, None))

    async def _wait_done(self):
        if not self._closed.done():
            await _asyncio.shield(self._closed)

    async def close(self, code=1000, reason=""):
        """Starts the close handshake and waits until it is done."""
        if self._state == _OPENED:
            self._state = _CLOSING
            self._outbox.put((_Outbox.close, self, code,
                              reason.encode("utf-8")))
        await self._wait_done()

    async def wait_closed(self):
        await self._wait_done()

    async def ping(self, data=b""):
        """Sends a ping; returns a future that is done at once (lariat
        answers and consumes pongs itself)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self._state == _OPENED:
            self._outbox.put((_Outbox.ping, self, bytes(data)))
        f = self._loop.create_future()
        f.set_result(None)
        return f

    # -- topics
    def subscribe(self, topic):
        """Subscribes to |topic| (str or bytes); server.publish(topic, m)
        then reaches this connection without any Python code per
        subscriber."""
        self._outbox.put((_Outbox.subscribe, self, topic, True))

    def unsubscribe(self, topic):
        self._outbox.put((_Outbox.subscribe, self, topic, False))

    def publish(self, topic, message):
        """Sends |message| to every subscriber of |topic| but this
        connection."""
        _opcode_payload(message)
        self._outbox.put((_Outbox.conn_publish, self, topic, message))


# pyaq.c's event and operation kinds.
_AQ_TEXT, _AQ_BINARY, _AQ_CLOSE, _AQ_PING = 1, 2, 8, 9
_AQ_OPEN, _AQ_CLOSED, _AQ_DRAINED = 10, 11, 12
_AQ_SUBSCRIBE, _AQ_UNSUBSCRIBE, _AQ_CONN_PUBLISH = 20, 21, 22
_AQ_PUBLISH, _AQ_MANY = 23, 24


def _topic_bytes(topic):
    if isinstance(topic, str):
        return topic.encode("utf-8")
    return bytes(topic)


class ServerConnection(_Connection):
    """A connection accepted by serve(); handler(ws) gets it. Its messages
    and operations go through pyaq.c's lists (see the module's doc)."""

    def __init__(self, owner, request):
        super().__init__(owner._inbox, None, owner._max_queue,
                         owner._write_limit)
        self.request = request
        self._owner = owner
        self._aq = owner._aq
        self._close_info = (1006, "")

    def _opened(self, value):
        super()._opened(value)
        self._owner._run_handler(self)

    def _consume(self):
        lib.pyaq_consumed(self._aq, self.id, 1)

    async def _send(self, opcode, payload):
        if self._state != _OPENED:
            await self._wait_done()
            raise _closed_exception(self.close_code or 1006,
                                    self.close_reason or "")
        rc = lib.pyaq_op(self._aq, self.id, opcode, 0, ffi.NULL, 0, payload,
                         len(payload), ffi.NULL)
        if rc == 1 and self._state == _OPENED:
            w = self._loop.create_future()
            self._drain_waiters.append(w)
            await w

    async def close(self, code=1000, reason=""):
        if self._state == _OPENED:
            self._state = _CLOSING
            self._sent_code = code
            data = reason.encode("utf-8")
            lib.pyaq_op(self._aq, self.id, _AQ_CLOSE, code, ffi.NULL, 0,
                        data, len(data), ffi.NULL)
        await self._wait_done()

    async def ping(self, data=b""):
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self._state == _OPENED:
            data = bytes(data)
            lib.pyaq_op(self._aq, self.id, _AQ_PING, 0, ffi.NULL, 0, data,
                        len(data), ffi.NULL)
        f = self._loop.create_future()
        f.set_result(None)
        return f

    def _topic_op(self, kind, topic, code=0, data=b""):
        t = _topic_bytes(topic)
        lib.pyaq_op(self._aq, self.id, kind, code, t, len(t), data,
                    len(data), ffi.NULL)

    def subscribe(self, topic):
        self._topic_op(_AQ_SUBSCRIBE, topic)

    def unsubscribe(self, topic):
        self._topic_op(_AQ_UNSUBSCRIBE, topic)

    def publish(self, topic, message):
        opcode, payload = _opcode_payload(message)
        self._topic_op(_AQ_CONN_PUBLISH, topic, opcode, payload)

    @property
    def path(self):
        q = self.request.query
        return self.request.path + ("?" + q if q else "")

    @property
    def request_headers(self):
        return self.request.headers

    @property
    def remote_address(self):
        return self.request.peer

    def __repr__(self):
        return "<lariat.asyncio.ServerConnection %s>" % self.request.path


class ClientConnection(_Connection):
    """A connection made by connect()."""

    _owner = None  # not a server's (broadcast() tells them apart by it)

    remote_address = None

    def __repr__(self):
        return "<lariat.asyncio.ClientConnection %s>" % getattr(
            self, "url", "")


# ----------------------------------------------------------------- server

def _select(offered, supported):
    # websockets 10's rule: the best sum of both sides' preference ranks.
    both = [p for p in offered if p in supported]
    if not both:
        return None
    return sorted(both, key=lambda p: offered.index(p) +
                  supported.index(p))[0]


class _ServerInit:
    """The route's handler (a subclass per server, with .server): makes
    the ServerConnection in init; pyaq.c's functions handle the messages,
    info and drain."""
    server = None
    opened = False
    ws = None

    def init(self, req, up):
        s = self.server
        offered = req.protocols
        request = Request(req.path, req.query, Headers(req.headers),
                          offered, req.peer)
        if s._subprotocols is not None or s._select_subprotocol:
            if s._select_subprotocol is not None:
                chosen = s._select_subprotocol(offered,
                                               list(s._subprotocols or ()))
            else:
                chosen = _select(offered, list(s._subprotocols))
            if chosen:
                up.set_protocol(chosen)
        if s._max_size is not None:
            up.set_max_frame_size(s._max_size)
        if s._compress:
            up.compress()
        if s._write_limit:
            up.set_low_water(s._write_limit)  # pyaq.c's drain signal
        self.ws = ServerConnection(s, request)

    def websocket_init(self, conn):
        self.opened = True
        ws, s = self.ws, self.server
        ws.id = conn.id
        ws._conn = conn
        ws._protocol = conn.protocol
        s._by_id[ws.id] = ws
        lib.pyaq_attach(s._aq, conn._ptr)
        lib.pyaq_mark(s._aq, ws.id, _AQ_OPEN)

    def terminate(self, conn, reason):
        if not self.opened:
            return
        ws, s = self.ws, self.server
        ws._conn = None
        lib.pyaq_detach(s._aq, ws.id)
        ws._close_info = _close_of(reason, ws._sent_code)
        lib.pyaq_mark(s._aq, ws.id, _AQ_CLOSED)


class WebSocketServer:
    """What serve() gives: close(), wait_closed(), publish(), sockets."""

    def __init__(self, handler, host, port, *, subprotocols=None,
                 select_subprotocol=None, compression="deflate",
                 max_size=2 ** 20, max_queue=32, write_limit=2 ** 16,
                 close_timeout=None, open_timeout=10, **_ignored):
        if compression not in ("deflate", None):
            raise ValueError("unsupported compression: %r" % (compression,))
        self._handler = handler
        self._host, self._port = host, port
        self._subprotocols = list(subprotocols) \
            if subprotocols is not None else None
        self._select_subprotocol = select_subprotocol
        self._compress = compression == "deflate"
        self._max_size = max_size if max_size is not None else 1 << 62
        self._max_queue = max_queue
        self._write_limit = write_limit
        self._close_timeout = close_timeout
        self._open_timeout = open_timeout
        self._server = None
        self._tasks = set()
        self._closing = None
        self._aq = None
        self.sockets = []

    async def _start(self):
        self._inbox = _inbox()
        kwargs = {"threads": 1}
        if self._close_timeout is not None:
            kwargs["close_timeout"] = self._close_timeout
        if self._open_timeout is not None:
            kwargs["handshake_timeout"] = self._open_timeout
        host = self._host if self._host is not None else "::"
        server = _lariat.Server(host, self._port or 0, **kwargs)
        self._by_id = {}
        self._aq = lib.pyaq_new(server._ptr, self._max_queue or (1 << 30),
                                self._write_limit or 0)
        if self._aq == ffi.NULL:
            server.close()
            raise MemoryError("lariat.asyncio: no event queue")
        self._fd = lib.pyaq_fd(self._aq)
        self._inbox.loop.add_reader(self._fd, self._events)
        try:
            server.route("*", type("_Route", (_ServerInit,),
                                   {"server": self}),
                         _callbacks={"websocket_handle": "pyaq_handle",
                                     "websocket_info": "pyaq_info",
                                     "websocket_drain": "pyaq_drain"})
            server.serve_in_thread(name="lariat.asyncio")
        except BaseException:
            self._inbox.loop.remove_reader(self._fd)
            server.close()
            lib.pyaq_del(self._aq)
            self._aq = None
            raise
        self._server = server
        self.sockets = [_Socket(host, server.port)]
        return self

    def _events(self):
        """The asyncio side of pyaq.c: every event since the last call."""
        aq = self._aq
        if aq is None:
            return
        head = e = lib.pyaq_take(aq)
        by_id = self._by_id
        buffer = ffi.buffer
        try:
            while e != ffi.NULL:
                kind = e.kind
                ws = by_id.get(e.conn)
                if ws is not None:
                    if kind == _AQ_TEXT:
                        ws._deliver(buffer(e.data, e.len)[:].decode("utf-8"))
                    elif kind == _AQ_BINARY:
                        ws._deliver(buffer(e.data, e.len)[:])
                    elif kind == _AQ_OPEN:
                        ws._opened(None)
                    elif kind == _AQ_CLOSED:
                        del by_id[e.conn]
                        ws._ended(*ws._close_info)
                    elif kind == _AQ_DRAINED:
                        ws._drained()
                e = e.next
        finally:
            lib.pyaq_free_events(head)

    def _run_handler(self, ws):
        task = self._inbox.loop.create_task(self._handle(ws))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, ws):
        try:
            await self._handler(ws)
        except Exception:
            _lariat._log.exception("lariat.asyncio: connection handler "
                                   "failed")
            if ws._state == _OPENED:
                await ws.close(1011)
        finally:
            await ws.close()

    @property
    def port(self):
        return self._server.port

    def publish(self, topic, message):
        """Any coroutine: |message| (str or bytes) to every subscriber of
        |topic|, encoded once in C; in order with this loop's send()s."""
        opcode, payload = _opcode_payload(message)
        t = _topic_bytes(topic)
        if self._aq is not None:
            lib.pyaq_op(self._aq, 0, _AQ_PUBLISH, opcode, t, len(t), payload,
                        len(payload), ffi.NULL)

    def close(self):
        """Stops accepting and closes every connection with 1001;
        wait_closed() waits for that and for the handlers."""
        if self._closing is None and self._server is not None:
            loop = _asyncio.get_event_loop()
            self._closing = loop.run_in_executor(None, self._server.close)

    async def wait_closed(self):
        if self._closing is None:
            self.close()
        if self._closing is not None:
            await self._closing
        # The terminate events the stop produced; then no callback can
        # come any more (the server is freed).
        if self._aq is not None:
            self._events()
            self._inbox.loop.remove_reader(self._fd)
            aq, self._aq = self._aq, None
            lib.pyaq_del(aq)
        if self._tasks:
            await _asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()


class _Socket:
    def __init__(self, host, port):
        self._addr = (host, port)

    def getsockname(self):
        return self._addr


class _Serve:
    """serve(...): `async with serve(...) as server` or
    `server = await serve(...)`."""

    def __init__(self, handler, host=None, port=None, **kwargs):
        self._server = WebSocketServer(handler, host, port, **kwargs)

    def __await__(self):
        return self._start().__await__()

    async def _start(self):
        server = await self._server._start()
        return server

    async def __aenter__(self):
        return await self._start()

    async def __aexit__(self, *exc):
        await self._server.__aexit__(*exc)


def serve(handler, host=None, port=None, **kwargs):
    """Serves WebSocket connections on host:port (port 0 picks one:
    server.port or server.sockets[0].getsockname()[1]), every path, each
    connection running `await handler(ws)` as an asyncio task on the
    calling loop; when it returns, the connection closes (1000; 1011 if
    it raised). Options as websockets': subprotocols (a list, preferred
    first), select_subprotocol(offered, supported), compression
    ("deflate" (default) or None), max_size (bytes per message, default
    1 MiB; None: no limit), max_queue (messages read from the socket and
    not yet recv()ed, default 32), write_limit (bytes queued for the peer
    before send() waits, default 64 KiB), open_timeout, close_timeout
    (seconds)."""
    return _Serve(handler, host, port, **kwargs)


def broadcast(connections, message):
    """Sends |message| to every open connection in |connections| without
    waiting (websockets.broadcast): one operation for all of them, the
    message encoded once and copied per connection in C."""
    opcode, payload = _opcode_payload(message)
    # The common case first: server connections of one server, gathered
    # by id in one pass.
    owner, ids, others = None, [], None
    for ws in connections:
        if ws._state != _OPENED:
            continue
        o = ws._owner
        if o is owner or (owner is None and o is not None):
            owner = o
            ids.append(ws.id)
        else:
            if others is None:
                others = []
            others.append(ws)
    if ids and owner._aq is not None:
        array = ffi.new("uint64_t[]", ids)
        lib.pyaq_op(owner._aq, 0, _AQ_MANY, opcode,
                    ffi.cast("char *", array), ffi.sizeof(array),
                    payload, len(payload), ffi.NULL)
    if others:
        by_box = {}
        for ws in others:
            if ws._owner is not None:  # another server's: its own batch
                broadcast([ws], message)
            else:
                by_box.setdefault(ws._outbox, []).append(ws)
        for box, conns in by_box.items():
            box.put((_Outbox.send_many, conns, opcode, payload))


# ----------------------------------------------------------------- client

_client_server = None
_client_lock = threading.Lock()


def _client_host():
    """The process's lariat loop for clients (no listener)."""
    global _client_server
    with _client_lock:
        if _client_server is None:
            s = _lariat.Server(None, threads=1)
            s.serve_in_thread(name="lariat.asyncio-client")
            _client_server = (s, _Outbox(s))
        return _client_server


def _tls_options(context, server_hostname):
    """Server.connect()'s TLS options from websockets' ssl and
    server_hostname. An ssl.SSLContext gives what lariat can take from
    it: the CA certificates loaded into it (none loaded: the system's),
    and no verification when it checks neither chain nor name. Client
    certificates, ciphers and protocol versions of the context are not
    carried over (lariat negotiates TLS 1.2 or 1.3 with its own)."""
    options = {}
    if server_hostname is not None:
        options["tls_server_name"] = server_hostname
    if context is None or context is True:
        return options
    if not isinstance(context, _ssl.SSLContext):
        raise TypeError("ssl must be an ssl.SSLContext or True")
    if context.verify_mode == _ssl.CERT_NONE and not context.check_hostname:
        options["tls_insecure_no_verify"] = True
        return options
    cas = context.get_ca_certs(binary_form=True)
    if cas:
        options["tls_ca_pem"] = "".join(
            _ssl.DER_cert_to_PEM_cert(c) for c in cas)
    return options


def _connect_with_tls(server, uri, handler, options):
    """server.connect(), the CAs of an SSLContext handed over as the PEM
    file lariat reads them from (read at once, so it goes right after)."""
    pem = options.pop("tls_ca_pem", None)
    if pem is None:
        return server.connect(uri, handler, **options)
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        f.write(pem)
        f.flush()
        return server.connect(uri, handler, tls_ca_file=f.name, **options)


class _Connect:
    """connect(url): `async with connect(url) as ws` or
    `ws = await connect(url)`."""

    def __init__(self, uri, *, subprotocols=None, compression="deflate",
                 max_size=2 ** 20, max_queue=32, write_limit=2 ** 16,
                 open_timeout=10, extra_headers=None, ssl=None,
                 server_hostname=None, **_ignored):
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise InvalidURI("%r is not a ws:// or wss:// URI" % (uri,))
        if ssl is not None and parts.scheme != "wss":
            raise ValueError("connect() received a ssl argument for a ws:// URI")
        self._tls = _tls_options(ssl, server_hostname)
        self._uri = uri
        self._subprotocols = list(subprotocols or ())
        self._compress = compression == "deflate"
        self._max_size = max_size
        self._max_queue = max_queue
        self._write_limit = write_limit
        self._open_timeout = open_timeout
        self._headers = extra_headers or ()
        self._ws = None

    async def _open(self):
        server, outbox = _client_host()
        ws = ClientConnection(_inbox(), outbox, self._max_queue,
                              self._write_limit)
        ws.url = self._uri
        options = {"protocols": self._subprotocols,
                   "headers": self._headers,
                   "compress": self._compress or None}
        options.update(self._tls)
        if self._max_size is not None:
            options["max_frame_size"] = self._max_size
        if self._open_timeout is not None:
            options["connect_timeout"] = self._open_timeout
            options["handshake_timeout"] = self._open_timeout
        ws.id = _connect_with_tls(server, self._uri, _Handler(ws), options)
        await ws._opened_future
        self._ws = ws
        return ws

    def __await__(self):
        return self._open().__await__()

    async def __aenter__(self):
        return await self._open()

    async def __aexit__(self, *exc):
        if self._ws is not None:
            await self._ws.close()


def connect(uri, **kwargs):
    """A client connection to |uri| (ws://host:port/path or wss://...),
    on a lariat loop shared by the process's clients. Options:
    subprotocols (offered in order), compression ("deflate" (default) or
    None), max_size, max_queue, write_limit, open_timeout, extra_headers,
    and for wss:// ssl (an ssl.SSLContext whose CA certificates are
    trusted, the system's when it has none loaded; verify_mode CERT_NONE
    with check_hostname False turns verification off) and
    server_hostname. Raises
    InvalidStatusCode when the server answers other than 101,
    ssl.SSLCertVerificationError for a certificate that does not verify
    (ssl.SSLError for another TLS failure), InvalidHandshake for another
    bad answer, OSError when it cannot
    connect."""
    return _Connect(uri, **kwargs)
