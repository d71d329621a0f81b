"""lariat for Python: a WebSocket server with Cowboy's handler model.

    import lariat

    class Echo:
        def websocket_handle(self, conn, frame):
            if frame.opcode == lariat.Opcode.TEXT:
                conn.send_text(frame.text)

    with lariat.Server("127.0.0.1", 8080) as server:
        server.route("/echo", Echo)
        server.run()

A handler is a class (instantiated once per request, so its instance is the
connection's state) or an instance (shared by every request). Its methods
are all optional:

    init(req, upgrade)          the HTTP request; accept by returning None
    websocket_init(conn)        after the 101 response
    websocket_handle(conn, frame)
    websocket_info(conn, msg)   msg is an object given to Server.post()
    terminate(conn, reason)     last; conn is None if never upgraded

websocket_* return None (or "ok"), "hibernate" or "shutdown" (or a Result).
An exception ends the connection as a crash (close 1011, or HTTP 500 from
init) and terminate sees the exception's class name and message.

init may also leave its decision for later (a database lookup, say):
upgrade.defer() returns a Deferred, which any thread later ends with
accept(), reply(status, ...) or crash(exc); terminate still runs exactly
once. The Request is gone by then: copy what the decision needs first.

Lifetimes: a Request and an Upgrade are valid during the init call only.
A Connection is valid on the loop thread from websocket_init until
terminate returns (the rule lariat.h states next to lariat_conn): it may be
kept in the state between callbacks, but after terminate its methods raise
Error(NOT_FOUND); .id stays valid on any thread for post().

Topics: conn.subscribe("room:42") on the loop thread; then
server.publish("room:42", "text or bytes") from any thread reaches every
subscriber, conn.publish(topic, data) every one but conn.

Threads: callbacks run on lariat's loop thread (a helper thread of run()
when called on the main thread, the thread of serve_in_thread(), or
close()), which holds the GIL only while Python code runs. Connection and
Request methods are for that thread; stop(), post(), publish(), defer(),
Connection.post() and Deferred are for any thread.

Ctrl-C: run() on the main thread stops the server cleanly on SIGINT (every
client gets close 1001, every terminate runs) and then raises the
KeyboardInterrupt. A server started with serve_in_thread() is stopped the
same way by close(), by its `with` block, or at interpreter exit.
"""

import atexit
import collections
import enum
import logging
import math
import os
import sys
import threading
import weakref

from _lariat import ffi, lib

__all__ = [
    "BridgeEvent", "Connection", "Deferred", "Deflate", "Error", "ErrorCode",
    "Frame",
    "Opcode", "Reason", "ReasonKind", "Request", "Result", "Server",
    "Tls", "Upgrade", "version",
]

_log = logging.getLogger("lariat")

# The module was compiled against one header; refuse an older library.
if lib.lariat_version(lib.LARIAT_VERSION_NUM) == ffi.NULL:
    raise ImportError("liblariat is older than the lariat.h the binding "
                      "was built with")


def _enum(name, ctype, prefix):
    # From the compiled header's enum, so a new value needs no Python edit.
    values = ffi.typeof(ctype).relements
    return enum.IntEnum(name, sorted(
        ((k[len(prefix):], v) for k, v in values.items()
         if k.startswith(prefix)), key=lambda kv: kv[1]))


Opcode = _enum("Opcode", "lariat_opcode", "LARIAT_OP_")
ReasonKind = _enum("ReasonKind", "lariat_reason_kind", "LARIAT_REASON_")
Result = _enum("Result", "lariat_result", "LARIAT_")
Deflate = _enum("Deflate", "lariat_deflate_option", "LARIAT_DEFLATE_")
ErrorCode = _enum("ErrorCode", "lariat_error", "LARIAT_ERR_")

_RESULT_NAMES = {m.name.lower(): int(m) for m in Result}


def _as(enum_type, value):
    try:
        return enum_type(value)
    except ValueError:  # a value newer than this module's header
        return value


def _text(p):
    return ffi.string(p).decode("utf-8", "replace")


def version():
    """The version string of the liblariat that is loaded."""
    return _text(lib.lariat_version(0).version_str)


class Error(Exception):
    """A negative code from the C library: .code, .name, str() = message."""

    def __init__(self, code):
        self.code = code
        self.name = _text(lib.lariat_err_name(code))
        super().__init__(_text(lib.lariat_strerror(code)))

    @property
    def fatal(self):
        return bool(lib.lariat_is_fatal(self.code))

    def __reduce__(self):
        return (Error, (self.code,))

    def __repr__(self):
        return "lariat.Error(%d, %s: %s)" % (self.code, self.name, self)


def _check(rc):
    if rc < 0:
        raise Error(rc)
    return rc


def _path_or_null(path):
    """A filesystem path for the C API, or NULL for None."""
    return ffi.NULL if path is None else os.fsencode(path)


def _ms(seconds):
    """Seconds (None: never) to the C API's milliseconds (0: never)."""
    if seconds is None:
        return 0
    if seconds <= 0:
        raise ValueError("a timeout must be positive seconds, or None")
    return max(1, math.ceil(seconds * 1000))


def _bytes(data, what):
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    raise TypeError("%s must be str or bytes, not %s"
                    % (what, type(data).__name__))


def _frame(opcode, payload, compress=True, close_code=0):
    """(lariat_frame *, buffer): keep the buffer while the frame is used;
    lariat copies the payload."""
    frame = ffi.new("lariat_frame *")
    frame.opcode = opcode
    frame.flags = 0 if compress else lib.LARIAT_FRAME_NO_COMPRESS
    frame.close_code = close_code
    buf = ffi.from_buffer("uint8_t[]", payload)
    frame.data = buf
    frame.len = len(buf)
    return frame, buf


def _message(data, compress, local=False):
    """A publish's frame: text for str, binary for bytes; |local| keeps it
    off the Redis bridge (LARIAT_FRAME_LOCAL)."""
    if isinstance(data, str):
        frame, buf = _frame(lib.LARIAT_OP_TEXT, data.encode("utf-8"), compress)
    else:
        frame, buf = _frame(lib.LARIAT_OP_BINARY, _bytes(data, "data"),
                            compress)
    if local:
        frame.flags |= lib.LARIAT_FRAME_LOCAL
    return frame, buf


def _topic(topic):
    """A topic as (char[], length): str is UTF-8, bytes as they are."""
    raw = _bytes(topic, "topic")
    return ffi.from_buffer(raw), len(raw)


def _deflate_options(options):
    """Validates deflate keyword options early: [(Deflate, int)]."""
    out = []
    for name, value in options.items():
        try:
            option = Deflate[name.upper()]
        except KeyError:
            raise TypeError("unknown deflate option %r" % name) from None
        out.append((option, int(value)))
    return out


# ----------------------------------------------------------------- values

class Tls:
    """A TLS configuration for Server.listen_tls() (lariat.h, "TLS"):
    the first certificate is the default, others are chosen by SNI.
    Servers keep their own reference. Any thread."""

    def __init__(self, cert_file=None, key_file=None):
        out = ffi.new("lariat_tls **")
        _check(lib.lariat_tls_new(out))
        self._ptr = ffi.gc(out[0], lib.lariat_tls_del)
        if cert_file is not None:
            self.add_cert_file(cert_file, key_file)

    def add_cert_file(self, chain_file, key_file):
        _check(lib.lariat_tls_add_cert_file(
            self._ptr, os.fsencode(chain_file), os.fsencode(key_file)))
        return self

    def add_cert_pem(self, chain, key):
        """PEM text (str or bytes) of the chain and of its key."""
        chain = chain.encode("ascii") if isinstance(chain, str) else chain
        key = key.encode("ascii") if isinstance(key, str) else key
        _check(lib.lariat_tls_add_cert_pem(self._ptr, chain, len(chain),
                                           key, len(key)))
        return self

    def reload(self, other):
        """New connections use |other|'s certificates from now on."""
        _check(lib.lariat_tls_reload(self._ptr, other._ptr))

    @property
    def failures(self):
        """(failed handshakes, the latest one's reason)."""
        buf = ffi.new("char[256]")
        n = lib.lariat_tls_failures(self._ptr, buf, len(buf))
        return n, ffi.string(buf).decode("utf-8", "replace")


class Frame:
    """A received message or control frame; data is a bytes copy."""
    __slots__ = ("opcode", "data", "close_code")

    def __init__(self, opcode, data=b"", close_code=0):
        self.opcode = opcode
        self.data = data
        self.close_code = close_code

    @property
    def text(self):
        return self.data.decode("utf-8")

    def __repr__(self):
        return "Frame(%s, %r)" % (getattr(self.opcode, "name", self.opcode),
                                  self.data)


class Reason:
    """Why a connection ended, as given to terminate. Clients
    (Server.connect) also get retrying (another attempt follows, with the
    same state), attempt (1, 2...), posts_dropped, and for
    HANDSHAKE_FAILED http_status, failure and header(name), the latter
    only inside terminate."""
    __slots__ = ("kind", "name", "code", "data", "crash_class",
                 "crash_reason", "socket_error", "retrying", "attempt",
                 "posts_dropped", "http_status", "failure", "_ptr")

    def header(self, name):
        """A header of the server's response to a failed client handshake
        (str), or None. Only inside terminate."""
        if self._ptr is None:
            return None
        n = ffi.new("size_t *")
        v = lib.lariat_reason_header(self._ptr, name.encode("ascii"), n)
        return None if v == ffi.NULL else \
            ffi.unpack(v, n[0]).decode("latin-1")

    def __init__(self, r):
        self._ptr = r
        self.retrying = bool(r.retrying)
        self.attempt = r.attempt
        self.posts_dropped = r.posts_dropped
        self.http_status = r.http_status
        self.failure = _text(r.failure) if r.failure != ffi.NULL else None
        self.kind = _as(ReasonKind, r.kind)
        self.name = _text(lib.lariat_reason_name(r.kind))
        self.code = r.code
        self.data = ffi.unpack(ffi.cast("char *", r.data), r.len) \
            if r.len else b""
        self.crash_class = _text(r.crash_class) \
            if r.crash_class != ffi.NULL else None
        self.crash_reason = _text(r.crash_reason) \
            if r.crash_reason != ffi.NULL else None
        self.socket_error = r.socket_error

    def __repr__(self):
        extra = ""
        if self.kind == ReasonKind.REMOTE:
            extra = ", code=%d, data=%r" % (self.code, self.data)
        elif self.kind == ReasonKind.CRASH:
            extra = ", %s: %s" % (self.crash_class, self.crash_reason)
        elif self.kind == ReasonKind.ERROR_SOCKET:
            extra = ", %s" % Error(self.socket_error).name
        elif self.kind == ReasonKind.HANDSHAKE_FAILED:
            extra = ", %s, status=%d" % (self.failure, self.http_status)
        if self.retrying:
            extra += ", retrying"
        return "Reason(%r%s)" % (self.name, extra)


# --------------------------------------------------- request and upgrade

class Request:
    """The HTTP request seen by init; usable only during that call."""
    __slots__ = ("_ptr",)

    def __init__(self, ptr):
        self._ptr = ptr

    def _req(self):
        if self._ptr is None:  # borrowed for the init call only
            raise Error(lib.LARIAT_ERR_INVALID_STATE)
        return self._ptr

    @staticmethod
    def _str(p, n):
        # HTTP heads are bytes; latin-1 maps each to one character (WSGI).
        return ffi.unpack(p, n).decode("latin-1") if n else ""

    def _get(self, fn):
        n = ffi.new("size_t *")
        p = fn(self._req(), n)
        return self._str(p, n[0])

    @property
    def method(self):
        return self._get(lib.lariat_req_method)

    @property
    def path(self):
        return self._get(lib.lariat_req_path)

    @property
    def query(self):
        return self._get(lib.lariat_req_query)

    def header(self, name, default=None):
        """The first header called |name| (any case), or |default|."""
        n = ffi.new("size_t *")
        p = lib.lariat_req_header(self._req(), name.encode("latin-1"), n)
        return default if p == ffi.NULL else self._str(p, n[0])

    @property
    def headers(self):
        """[(name, value)] in the order received."""
        req = self._req()
        name, value = ffi.new("char **"), ffi.new("char **")
        name_len, value_len = ffi.new("size_t *"), ffi.new("size_t *")
        out = []
        for i in range(lib.lariat_req_header_count(req)):
            _check(lib.lariat_req_header_at(req, i, name, name_len, value,
                                            value_len))
            out.append((self._str(name[0], name_len[0]),
                        self._str(value[0], value_len[0])))
        return out

    @property
    def is_websocket(self):
        return bool(lib.lariat_req_is_websocket(self._req()))

    @property
    def peer(self):
        """(address, port) of the client."""
        buf, port = ffi.new("char[64]"), ffi.new("int *")
        _check(lib.lariat_req_peer(self._req(), buf, len(buf), port))
        return ffi.string(buf).decode("ascii"), port[0]

    @property
    def protocols(self):
        """The subprotocols offered in Sec-WebSocket-Protocol."""
        req, n = self._req(), ffi.new("size_t *")
        return [self._str(lib.lariat_req_protocol_at(req, i, n), n[0])
                for i in range(lib.lariat_req_protocol_count(req))]

    def _decoded(self, fn, name, default):
        # A first try in a stack-sized buffer; a longer value tells its
        # length, and the second try fits it.
        req, key = self._req(), name.encode("utf-8")
        n = ffi.new("size_t *")
        size = 256
        while True:
            buf = ffi.new("char[]", size)
            rc = fn(req, key, buf, size, n)
            if rc == lib.LARIAT_ERR_BUFFER_TOO_SMALL and n[0] >= size:
                size = n[0] + 1
                continue
            if rc == lib.LARIAT_ERR_NOT_FOUND:
                return default
            _check(rc)
            # Percent-decoded bytes; UTF-8 as urllib.parse reads them.
            return ffi.unpack(buf, n[0]).decode("utf-8", "replace")

    def query_param(self, name, default=None):
        """The percent-decoded value of query parameter |name| (the first
        one; '+' is a space; "" without '='), or |default|. Error
        (INVALID_ARGUMENT) for a malformed percent escape."""
        return self._decoded(lib.lariat_req_query_param, name, default)

    def cookie(self, name, default=None):
        """The value of cookie |name| from the Cookie headers (without
        quotes, percent-decoded), or |default|."""
        return self._decoded(lib.lariat_req_cookie, name, default)

    def __repr__(self):
        if self._ptr is None:
            return "<lariat.Request (done)>"
        return "<lariat.Request %s %s>" % (self.method, self.path)


class Upgrade:
    """How init accepts (or answers) the request; usable only during it."""
    __slots__ = ("_ptr", "_session")

    def __init__(self, ptr, session):
        self._ptr = ptr
        self._session = session

    def _up(self):
        if self._ptr is None:
            raise Error(lib.LARIAT_ERR_INVALID_STATE)
        return self._ptr

    @property
    def state(self):
        """The object that becomes Connection.state."""
        return self._session.state

    @state.setter
    def state(self, value):
        self._session.state = value

    def set_protocol(self, protocol):
        """Answers with |protocol|; it must be one the client offered."""
        _check(lib.lariat_upgrade_set_protocol(self._up(),
                                               protocol.encode("latin-1")))

    def set_idle_timeout(self, seconds):
        """Seconds without data before closing; None (default): never."""
        _check(lib.lariat_upgrade_set_idle_timeout(self._up(), _ms(seconds)))

    def set_max_frame_size(self, nbytes):
        _check(lib.lariat_upgrade_set_max_frame_size(self._up(), nbytes))

    def set_max_queued(self, nbytes, policy=None):
        """Caps output queued for a slow reader; policy is one of the
        LARIAT_BACKPRESSURE_* values (default: close 1008)."""
        if policy is None:
            policy = lib.LARIAT_BACKPRESSURE_CLOSE
        _check(lib.lariat_upgrade_set_max_queued(self._up(), nbytes,
                                                 int(policy)))

    def set_low_water(self, nbytes):
        """websocket_drain(conn) runs when queued output falls back here."""
        _check(lib.lariat_upgrade_set_low_water(self._up(), nbytes))

    def set_ping_interval(self, seconds, pong_timeout):
        """Keepalive: ping after |seconds| of silence; no answer within
        |pong_timeout| seconds ends the connection with reason timeout."""
        _check(lib.lariat_upgrade_set_ping_interval(
            self._up(), _ms(seconds), _ms(pong_timeout)))

    def set_validate_utf8(self, on):
        _check(lib.lariat_upgrade_set_validate_utf8(self._up(), bool(on)))

    def set_deflate(self, option, value):
        """One permessage-deflate knob: a Deflate member and an int."""
        _check(lib.lariat_upgrade_set_deflate(self._up(), int(option),
                                              int(value)))

    def compress(self, enable=True, **options):
        """Accepts permessage-deflate offers; options are Deflate names in
        lower case: level, mem_level, server_max_window_bits,
        client_max_window_bits, server_no_context_takeover,
        client_no_context_takeover, threshold, strategy (zlib's: 0
        default, 1 filtered, 2 huffman only, 3 rle, 4 fixed)."""
        self.set_deflate(Deflate.ENABLE, bool(enable))
        for option, value in _deflate_options(options):
            self.set_deflate(option, value)

    def reply(self, status, headers=(), body=b""):
        """Answers with a plain HTTP response instead of upgrading; init
        then returns None. |headers| is a dict or (name, value) pairs."""
        if isinstance(headers, dict):
            headers = headers.items()
        strings = [ffi.new("char[]", s.encode("latin-1"))
                   for pair in headers for s in pair]
        body = _bytes(body, "body")
        _check(lib.lariat_upgrade_reply(
            self._up(), status, ffi.new("char *[]", strings) if strings
            else ffi.NULL, len(strings) // 2, ffi.from_buffer(body),
            len(body)))

    def add_header(self, name, value):
        """Adds |name|: |value| to the 101 response (Set-Cookie...); may
        repeat. lariat's own headers (Upgrade, Connection,
        Sec-WebSocket-*, Content-Length) are refused."""
        _check(lib.lariat_upgrade_add_header(
            self._up(), name.encode("latin-1"), value.encode("latin-1")))

    def defer(self):
        """Leaves the decision for later: returns a Deferred, which any
        thread ends with accept(), reply() or crash(); init then returns
        None as usual. This Upgrade is not usable after it (the Deferred
        is), and the Request not after init: copy what the decision
        needs first. Keep a reference to the Deferred: one dropped before
        init returns answers 500 at once."""
        up = self._up()
        deferred = Deferred(up, self._session)
        self._session.deferred = deferred
        self._ptr = None  # the Deferred owns |up| from here on
        return deferred


class Deferred(Upgrade):
    """A decision init left for later (Upgrade.defer()).

    Any thread, one at a time: set options as on an Upgrade (state
    included), then end it with exactly one of accept(), reply(...) or
    crash(exc); after that every method raises Error(INVALID_STATE). The
    client waits meanwhile, up to the server's handshake_timeout (then it
    gets 408 and terminate reason timeout, once the decision arrives). A
    Deferred garbage-collected without a decision ends as a crash (500),
    so a forgotten one cannot hold a server's close() forever."""
    __slots__ = ("_lock", "_returned", "_early")

    def __init__(self, ptr, session):
        super().__init__(ptr, session)
        self._lock = threading.Lock()
        self._returned = False  # init has returned LARIAT_DEFER to lariat
        self._early = None      # a decision made before init returned

    def accept(self):
        """Accepts the upgrade with the options set."""
        self._resume(lib.LARIAT_OK)

    def reply(self, status, headers=(), body=b""):
        """Answers with a plain HTTP response (see Upgrade.reply())."""
        super().reply(status, headers, body)
        self._resume(lib.LARIAT_OK)

    def crash(self, exc):
        """Answers 500; terminate gets reason crash with |exc|'s class
        name and message."""
        _check(lib.lariat_upgrade_set_crash(self._up(),
                                            *_crash_strings(exc)))
        self._resume(lib.LARIAT_CRASH)

    def _resume(self, result):
        with self._lock:
            ptr = self._up()
            self._ptr = None
            if not self._returned:
                # lariat_upgrade_resume() is only valid once init has
                # returned: _on_init returns this result itself.
                self._early = result
                return
        _check(lib.lariat_upgrade_resume(ptr, result))

    def _init_returned(self, dropped):
        """What _on_init returns; |dropped|: nobody else holds us."""
        with self._lock:
            self._returned = True
            if self._early is not None:
                return self._early
            if dropped:
                ptr, self._ptr = self._ptr, None
                lib.lariat_upgrade_set_crash(
                    ptr, b"lariat.Deferred",
                    b"init deferred and dropped the Deferred")
                return lib.LARIAT_CRASH
            return lib.LARIAT_DEFER

    def defer(self):
        raise Error(lib.LARIAT_ERR_INVALID_STATE)  # deferred already

    def _cancel(self):
        # init raised after defer(): its crash is the decision.
        with self._lock:
            self._returned = True
            self._ptr = None

    def __del__(self):
        if getattr(self, "_ptr", None) is not None and self._returned:
            try:
                self.crash(RuntimeError(
                    "lariat.Deferred dropped without a decision"))
            except Exception:
                pass


# ------------------------------------------------------------ connection

class Connection:
    """An upgraded WebSocket connection, valid on the loop thread from
    websocket_init until terminate returns (then its methods raise
    Error(NOT_FOUND)); it may be kept in the state between callbacks.

    .id and post() work on any thread; everything else only on the loop
    thread. .state is the per-connection object (Upgrade.state), dropped
    after terminate."""
    __slots__ = ("_ptr", "_server", "id", "state", "_thread", "__weakref__")

    def __init__(self, ptr, server, state):
        self._ptr = ptr
        self._server = server
        self.id = lib.lariat_conn_get_id(ptr)
        self.state = state
        # Made in websocket_init, on the thread of the connection's loop
        # (with several loops, not necessarily the server's first).
        self._thread = threading.get_ident()

    def _conn(self):
        if self._ptr is None:
            raise Error(lib.LARIAT_ERR_NOT_FOUND)
        if threading.get_ident() != self._thread:
            raise Error(lib.LARIAT_ERR_INVALID_STATE)
        return self._ptr

    def _reply(self, opcode, payload, compress=True, close_code=0):
        frame, _buf = _frame(opcode, payload, compress, close_code)
        _check(lib.lariat_reply(self._conn(), frame))

    def send(self, data, *, compress=True):
        """A text message for str, a binary one for bytes."""
        if isinstance(data, str):
            self.send_text(data, compress=compress)
        else:
            self.send_binary(data, compress=compress)

    def send_text(self, text, *, compress=True):
        if not isinstance(text, str):
            raise TypeError("send_text() takes str")
        self._reply(lib.LARIAT_OP_TEXT, text.encode("utf-8"), compress)

    def send_binary(self, data, *, compress=True):
        self._reply(lib.LARIAT_OP_BINARY, _bytes(data, "data"), compress)

    def ping(self, data=b""):
        self._reply(lib.LARIAT_OP_PING, _bytes(data, "data"))

    def pong(self, data=b""):
        self._reply(lib.LARIAT_OP_PONG, _bytes(data, "data"))

    def close(self, code=1000, reason=""):
        """Starts the close handshake; code None sends no code."""
        self._reply(lib.LARIAT_OP_CLOSE, _bytes(reason, "reason"),
                    close_code=0 if code is None else code)

    def set_idle_timeout(self, seconds):
        _check(lib.lariat_conn_set_idle_timeout(self._conn(), _ms(seconds)))

    @property
    def buffered_amount(self):
        """Bytes queued for the peer and not yet handed to the kernel."""
        return lib.lariat_conn_buffered_amount(self._conn())

    @property
    def tls_version(self):
        """"TLSv1.3", "TLSv1.2", or None on a plain connection."""
        p = lib.lariat_conn_tls_version(self._conn())
        return None if p == ffi.NULL else ffi.string(p).decode("ascii")

    @property
    def tls_resumed(self):
        """True when the TLS handshake resumed a session (a ticket)."""
        return bool(lib.lariat_conn_tls_resumed(self._conn()))

    def set_active(self, active):
        """False stops reading from the peer (Cowboy's `active`)."""
        _check(lib.lariat_conn_set_active(self._conn(), bool(active)))

    def set_max_frame_size(self, nbytes):
        """Changes the largest frame/message accepted from now on
        (Cowboy's set_options)."""
        _check(lib.lariat_conn_set_max_frame_size(self._conn(), nbytes))

    @property
    def peer(self):
        """(address, port) the connection was accepted from; an IPv4
        client of a "::" listener shows as "::ffff:a.b.c.d"."""
        buf, port = ffi.new("char[64]"), ffi.new("int *")
        _check(lib.lariat_conn_peer(self._conn(), buf, len(buf), port))
        return ffi.string(buf).decode("ascii"), port[0]

    @property
    def path(self):
        """The path of the request that opened the connection."""
        n = ffi.new("size_t *")
        p = lib.lariat_conn_path(self._conn(), n)
        return Request._str(p, n[0]) if p != ffi.NULL else ""

    def post(self, obj):
        """Any thread: websocket_info(conn, obj) later on the loop."""
        self._server.post(self.id, obj)

    def subscribe(self, topic):
        """Subscribes to |topic| (str: its UTF-8; or bytes); again is no
        error. Subscriptions end by themselves before terminate."""
        buf, n = _topic(topic)
        _check(lib.lariat_subscribe(self._conn(), buf, n))

    def unsubscribe(self, topic):
        """False when the connection was not subscribed to |topic|."""
        buf, n = _topic(topic)
        rc = lib.lariat_unsubscribe(self._conn(), buf, n)
        if rc == lib.LARIAT_ERR_NOT_FOUND:
            return False
        _check(rc)
        return True

    def publish(self, topic, data, *, compress=True, local=False):
        """Sends |data| (str: a text message, bytes: binary) to every
        subscriber of |topic| but this connection; returns how many it
        was queued for. local=True: not to the other servers of a Redis
        bridge."""
        buf, n = _topic(topic)
        frame, _payload = _message(data, compress, local)
        return _check(lib.lariat_conn_publish(self._conn(), buf, n, frame))

    @property
    def dropped(self):
        """Published messages dropped for this connection because its
        queued output was at its cap (Upgrade.set_max_queued with
        LARIAT_BACKPRESSURE_REFUSE)."""
        return lib.lariat_conn_dropped(self._conn())

    @property
    def server(self):
        return self._server

    @property
    def version(self):
        return lib.lariat_conn_version(self._conn())

    @property
    def compressed(self):
        return bool(lib.lariat_conn_compressed(self._conn()))

    @property
    def protocol(self):
        p = lib.lariat_conn_protocol(self._conn())
        return None if p == ffi.NULL else ffi.string(p).decode("latin-1")

    @property
    def hibernating(self):
        return bool(lib.lariat_conn_hibernating(self._conn()))

    def __repr__(self):
        return "<lariat.Connection %d%s>" % (
            self.id, "" if self._ptr is not None else " (ended)")


# -------------------------------------------------------------- callbacks
#
# Every C callback of lariat_handler lands here. Handler exceptions become
# crash reasons; nothing propagates into C. An exception cffi would see
# (one raised before the first line of a callback runs: a KeyboardInterrupt
# pending on the thread) goes to _entry_error, never to cffi's default of
# printing it and returning `error`.

# The lariat_handler fields this binding implements, each as the
# extern "Python" function py_<field> that build_lariat.py declares from the
# header. terminate must be among them: it releases the session.
_CALLBACKS = ("init", "websocket_init", "websocket_handle", "websocket_info",
              "terminate", "websocket_drain")


class _Route:
    __slots__ = ("server", "handler", "deflate", "handle")


class _Session:
    """One request, from init to terminate; the C state pointer is its
    handle, kept alive by Server._sessions until terminate returns."""
    __slots__ = ("route", "handler", "conn", "state", "handle", "deferred")

    def __init__(self, route):
        self.route = route
        self.handler = self.conn = self.state = self.deferred = None
        self.handle = ffi.new_handle(self)


def _crash_strings(exc):
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable %s>" % type(exc).__name__
    return (type(exc).__qualname__.encode("utf-8", "backslashreplace"),
            message.encode("utf-8", "backslashreplace"))


def _interrupted(server, exc):
    """KeyboardInterrupt and SystemExit are not the connection's fault:
    the server stops (close 1001 to every client, not 1011 to this one)
    and run() re-raises the first of them. False for other exceptions."""
    if isinstance(exc, Exception):
        return False
    _log.info("lariat: %s in a handler; stopping the server",
              type(exc).__name__)
    if server is not None:
        if server._pending is None:
            server._pending = exc
        server.stop()
    return True


def _handler_failed(what, exc):
    _log.error("lariat handler %s raised", what, exc_info=exc)


def _to_result(value):
    if isinstance(value, Result):
        return int(value)
    if value is None:
        return lib.LARIAT_OK
    if isinstance(value, str) and value in _RESULT_NAMES:
        return _RESULT_NAMES[value]
    raise TypeError("a handler returned %r; expected None, 'hibernate', "
                    "'shutdown' or a lariat.Result" % (value,))


def _session_of(state):
    # The state is NULL until init set it (lariat.h): nothing to find.
    return None if state == ffi.NULL else ffi.from_handle(state)


def _answer_stopping(up_p):
    # init interrupted: no upgrade while the server stops; terminate then
    # gets reason normal.
    body = b"server stopping"
    lib.lariat_upgrade_reply(up_p, 503, ffi.NULL, 0, body, len(body))
    return lib.LARIAT_OK


def _entry_error(callback):
    """cffi's onerror for py_<callback>: its arguments are the locals of
    the frame the exception left."""
    def onerror(exc_type, exc, tb):
        args = tb.tb_frame.f_locals if tb is not None else {}
        server = session = None
        try:
            if "handler_data" in args:
                server = ffi.from_handle(args["handler_data"]).server
            elif "state" in args:
                session = _session_of(args["state"])
                server = session.route.server if session else None
        except Exception:
            pass
        interrupted = _interrupted(server, exc)
        if not interrupted:
            _log.error("lariat binding callback %s failed", callback,
                       exc_info=(exc_type, exc, tb))
        if callback == "terminate":
            if session is not None:
                _release(session)
            return None
        if callback == "free_fn":
            _on_free_body(args.get("msg"))
            return None
        if callback == "fn":
            if "data" in args:
                _on_deferred_body(args["data"])
            return None
        if callback == "init":
            return _answer_stopping(args["up_p"]) if interrupted else None
        if interrupted:
            return lib.LARIAT_OK
        if "conn_p" in args:
            lib.lariat_conn_set_crash(args["conn_p"], *_crash_strings(exc))
        return None  # error=LARIAT_CRASH
    return onerror


def _extern(callback, **kwargs):
    return ffi.def_extern(name="py_" + callback,
                          onerror=_entry_error(callback), **kwargs)


@_extern("init", error=lib.LARIAT_CRASH)
def _on_init(req_p, up_p, handler_data):
    route = ffi.from_handle(handler_data)
    server = route.server
    session = _Session(route)
    # First, so that terminate always finds this session.
    server._sessions.add(session)
    lib.lariat_upgrade_set_state(up_p, session.handle)
    req, up = Request(req_p), Upgrade(up_p, session)
    try:
        handler = route.handler
        session.handler = handler = \
            handler() if isinstance(handler, type) else handler
        if route.deflate is not None:
            up.compress(**route.deflate)
        init = getattr(handler, "init", None)
        if init is not None and _to_result(init(req, up)) != lib.LARIAT_OK:
            raise TypeError("init must return None to accept or reply")
        deferred, session.deferred = session.deferred, None
        if deferred is not None:
            # Only this frame and getrefcount's argument: nobody can end it.
            dropped = hasattr(sys, "getrefcount") and \
                sys.getrefcount(deferred) <= 2
            return deferred._init_returned(dropped)
        return lib.LARIAT_OK
    except BaseException as exc:
        deferred, session.deferred = session.deferred, None
        if deferred is not None:
            deferred._cancel()
        if _interrupted(server, exc):
            return _answer_stopping(up_p)
        _handler_failed("init", exc)
        lib.lariat_upgrade_set_crash(up_p, *_crash_strings(exc))
        return lib.LARIAT_CRASH
    finally:
        req._ptr = up._ptr = None


def _dispatch(conn_p, state, name, make_args):
    session = _session_of(state)
    if session is None:  # cannot happen: init always sets the state
        lib.lariat_conn_set_crash(conn_p, b"lariat", b"no session")
        return lib.LARIAT_CRASH
    try:
        method = getattr(session.handler, name, None)
        if method is None:
            return lib.LARIAT_OK
        return _to_result(method(session.conn, *make_args()))
    except BaseException as exc:
        if _interrupted(session.route.server, exc):
            return lib.LARIAT_OK
        _handler_failed(name, exc)
        lib.lariat_conn_set_crash(conn_p, *_crash_strings(exc))
        return lib.LARIAT_CRASH


@_extern("websocket_init", error=lib.LARIAT_CRASH)
def _on_websocket_init(conn_p, state):
    session = _session_of(state)
    if session is not None:
        session.conn = Connection(conn_p, session.route.server,
                                  session.state)
    return _dispatch(conn_p, state, "websocket_init", tuple)


@_extern("websocket_handle", error=lib.LARIAT_CRASH)
def _on_websocket_handle(conn_p, frame_p, state):
    def args():
        # The C buffer is borrowed for this call: copy it out.
        data = ffi.unpack(ffi.cast("char *", frame_p.data), frame_p.len) \
            if frame_p.len else b""
        return (Frame(_as(Opcode, frame_p.opcode), data,
                      frame_p.close_code),)
    return _dispatch(conn_p, state, "websocket_handle", args)


@_extern("websocket_info", error=lib.LARIAT_CRASH)
def _on_websocket_info(conn_p, msg, state):
    return _dispatch(conn_p, state, "websocket_info",
                     lambda: (ffi.from_handle(msg),))


@_extern("websocket_drain", error=lib.LARIAT_CRASH)
def _on_websocket_drain(conn_p, state):
    return _dispatch(conn_p, state, "websocket_drain", tuple)


def _release(session):
    # The connection's Python objects are released here.
    if session.conn is not None:
        session.conn._ptr = None
        session.conn.state = None
    session.route.server._sessions.discard(session)


@_extern("terminate")
def _on_terminate(conn_p, reason_p, state):
    session = _session_of(state)
    if session is None:
        return  # init never ran its Python code; nothing to release
    reason = Reason(reason_p)
    try:
        method = getattr(session.handler, "terminate", None)
        if method is not None:
            method(session.conn, reason)
    except BaseException as exc:
        if not _interrupted(session.route.server, exc):
            _handler_failed("terminate", exc)
    finally:
        reason._ptr = None
        if reason.retrying:
            # A client between attempts: its handler and state stay.
            if session.conn is not None:
                session.state = session.conn.state
                session.conn._ptr = None
                session.conn = None
        else:
            _release(session)


# Objects handed to lariat_post(), by handle address, until free_fn runs.
_posted = {}


def _on_free_body(msg):
    if msg is not None:
        _posted.pop(int(ffi.cast("uintptr_t", msg)), None)


@_extern("free_fn")
def _on_free(msg):
    # Runs on the loop thread, or on the posting thread when lariat_post
    # fails; the dict operation is atomic under the GIL.
    _on_free_body(msg)


# Callables handed to lariat_server_defer(), by handle address, until
# they run (lariat runs every call it accepted).
_deferred = {}


def _on_deferred_body(data):
    handle = _deferred.pop(int(ffi.cast("uintptr_t", data)), None)
    return None if handle is None else ffi.from_handle(handle)


@_extern("fn")
def _on_deferred(server_p, data):
    # lariat_server_defer's callback (the header names it |fn|).
    server, fn = _on_deferred_body(data)
    try:
        fn()
    except BaseException as exc:
        if not _interrupted(server, exc):
            _handler_failed("deferred %r" % (fn,), exc)


@_extern("cb")
def _on_stopped(server_p, data):
    # lariat_server_on_stopped's callback (the header names it |cb|).
    server = ffi.from_handle(data)
    callback = server._on_stopped
    if callback is not None:
        try:
            callback()
        except BaseException as exc:
            if not _interrupted(server, exc):
                _handler_failed("on_stopped", exc)


BridgeEvent = collections.namedtuple(
    "BridgeEvent", "kind link error detail topic origin missed seq reconnects")
_BRIDGE_KINDS = {}  # filled below from the header's values


@_extern("on_bridge")
def _on_bridge(server_p, ev, data):
    # lariat_server_on_bridge's callback (the header names it |on_bridge|).
    server = ffi.from_handle(data)
    callback = server._on_bridge
    if callback is None:
        return
    event = BridgeEvent(
        _BRIDGE_KINDS.get(ev.kind, ev.kind),
        "subscriber" if ev.link == lib.LARIAT_BRIDGE_SUBSCRIBER else "publisher",
        ev.error, ffi.string(ev.detail).decode("utf-8", "replace")
        if ev.detail != ffi.NULL else "",
        ffi.unpack(ffi.cast("char *", ev.topic), ev.topic_len)
        if ev.topic_len else b"",
        ev.origin, ev.missed, ev.seq, ev.reconnects)
    try:
        callback(event)
    except BaseException as exc:
        if not _interrupted(server, exc):
            _handler_failed("on_bridge", exc)


_BRIDGE_KINDS.update({lib.LARIAT_BRIDGE_UP: "up",
                      lib.LARIAT_BRIDGE_DOWN: "down",
                      lib.LARIAT_BRIDGE_GAP: "gap"})

# ----------------------------------------------------------------- server

class Server:
    """A lariat server on a loop of its own.

    Server(host, port, **options) listens on host:port (port 0 picks one;
    see .port) at the first listen(), run() or serve_in_thread(). Options
    (None keeps lariat's default): max_head_size, max_headers,
    handshake_timeout (s), max_frame_size, close_timeout (s),
    max_connections, ignore_sigpipe, threads (event loops; 0 one per
    core: handlers of different connections then run on different
    threads, one at a time under the GIL); for the Redis bridge
    (join_redis()): bridge_timeouts=(connect, command) and
    bridge_backoff=(min, max) in seconds, bridge_linger (s).
    """

    def __init__(self, host="127.0.0.1", port=0, *, max_head_size=None,
                 max_headers=None, handshake_timeout=None,
                 max_frame_size=None, close_timeout=None,
                 max_connections=None, ignore_sigpipe=None, threads=None,
                 bridge_timeouts=None, bridge_backoff=None,
                 bridge_linger=None):
        self._ptr = None
        self._host, self._port = host, port
        self._bound_port = None
        self._routes = []
        self._sessions = set()
        self._pending = None
        self._thread = None
        self._on_stopped = None
        self._on_bridge = None
        self._handle = ffi.new_handle(self)  # on_stopped's data
        # Guards _ptr against lariat_server_del() for the any-thread calls,
        # and _running. Reentrant: a signal handler calling stop() may
        # interrupt the main thread while it holds the lock.
        self._cond = threading.Condition(threading.RLock())
        self._running = False
        self._loop_ident = None
        out = ffi.new("lariat_options **")
        _check(lib.lariat_options_new(out))
        opts = out[0]
        try:
            for setter, value in (
                    (lib.lariat_options_set_max_head_size, max_head_size),
                    (lib.lariat_options_set_max_headers, max_headers),
                    (lib.lariat_options_set_max_frame_size, max_frame_size),
                    (lib.lariat_options_set_max_connections,
                     max_connections),
                    (lib.lariat_options_set_ignore_sigpipe, ignore_sigpipe),
                    (lib.lariat_options_set_threads, threads)):
                if value is not None:
                    _check(setter(opts, value))
            for setter, value in (
                    (lib.lariat_options_set_handshake_timeout,
                     handshake_timeout),
                    (lib.lariat_options_set_close_timeout, close_timeout)):
                if value is not None:
                    _check(setter(opts, _ms(value)))
            for setter, pair in (
                    (lib.lariat_options_set_bridge_timeouts, bridge_timeouts),
                    (lib.lariat_options_set_bridge_backoff, bridge_backoff)):
                if pair is not None:
                    _check(setter(opts, _ms(pair[0]), _ms(pair[1])))
            if bridge_linger is not None:  # 0 (at once) is allowed here
                _check(lib.lariat_options_set_bridge_linger(
                    opts, 0 if bridge_linger == 0 else _ms(bridge_linger)))
            server = ffi.new("lariat_server **")
            _check(lib.lariat_server_new(server, ffi.NULL, opts))
        finally:
            lib.lariat_options_del(opts)
        self._ptr = server[0]

    # Loop-thread calls: before the loop runs, or from its callbacks.
    def _setup_ptr(self):
        with self._cond:
            if self._ptr is None:
                raise Error(lib.LARIAT_ERR_STOPPED)
            if self._running and threading.get_ident() != self._loop_ident:
                raise Error(lib.LARIAT_ERR_INVALID_STATE)
            return self._ptr

    def route(self, path, handler=None, *, compress=None, _callbacks=None):
        """Routes |path| ("*": every other path) to a handler class or
        instance. compress: True, or a dict of Upgrade.compress() options,
        to accept permessage-deflate on this route. Without |handler|,
        returns a class decorator."""
        if handler is None:
            def decorate(cls):
                self.route(path, cls, compress=compress)
                return cls
            return decorate
        route = _Route()
        route.server, route.handler = self, handler
        route.deflate = None if not compress else \
            dict(compress) if isinstance(compress, dict) else {}
        if route.deflate:
            _deflate_options(route.deflate)  # reject typos now
        route.handle = ffi.new_handle(route)
        table = ffi.new("lariat_handler *")  # fields not set stay NULL
        table.size = ffi.sizeof("lariat_handler")
        for name in _CALLBACKS:
            setattr(table, name, getattr(lib, "py_" + name))
        for name, fn in (_callbacks or {}).items():  # lariat.asyncio's C
            setattr(table, name, ffi.cast(ffi.typeof(getattr(table, name)),
                                          ffi.addressof(lib, fn)))
        _check(lib.lariat_server_route(self._setup_ptr(),
                                       path.encode("utf-8"), table,
                                       route.handle))
        self._routes.append(route)  # handler_data must outlive the server
        return None

    def connect(self, url, handler, *, state=None, protocols=(), headers=(),
                compress=None, max_frame_size=None, connect_timeout=None,
                handshake_timeout=None, reconnect=None, offline_queue=None,
                tls_ca_file=None, tls_ca_dir=None, tls_server_name=None,
                tls_insecure_no_verify=False):
        """Any thread: a client connection to |url| ("ws://host:port/path"
        or "wss://...")
        run by one of the server's loops, with |handler| (a class or an
        instance; init is not used) and |state| (Connection.state, kept
        across reconnects). protocols: offered in order; headers: a dict
        or (name, value) pairs; compress: True or a dict of Upgrade.
        compress() options to offer permessage-deflate; timeouts in
        seconds; reconnect: a dict with base and max (seconds),
        multiplier, jitter (0..1) and max_attempts (0: no limit);
        offline_queue: messages post()ed while disconnected that wait for
        the next connection (default 256). wss:// verifies the server's
        certificate against the system's CAs, or tls_ca_file (PEM) and/or
        tls_ca_dir; tls_server_name: the name for SNI and the check
        instead of the URL's host; tls_insecure_no_verify=True accepts any
        certificate (tests only). Returns the connection id, stable across
        reconnects (for post()). terminate runs after every attempt;
        reason.retrying says whether another follows."""
        opts = ffi.new("lariat_client_options **")
        _check(lib.lariat_client_options_new(opts))
        o = ffi.gc(opts[0], lib.lariat_client_options_del)
        for p in protocols:
            _check(lib.lariat_client_options_add_protocol(o, p.encode("ascii")))
        pairs = headers.items() if isinstance(headers, dict) else headers
        for name, value in pairs:
            _check(lib.lariat_client_options_add_header(
                o, name.encode("ascii"), value.encode("latin-1")))
        if compress:
            _check(lib.lariat_client_options_set_deflate(o, Deflate.ENABLE, 1))
            extra = compress if isinstance(compress, dict) else {}
            for option, value in _deflate_options(extra):
                _check(lib.lariat_client_options_set_deflate(o, option, value))
        if max_frame_size is not None:
            _check(lib.lariat_client_options_set_max_frame_size(
                o, max_frame_size))
        if connect_timeout is not None or handshake_timeout is not None:
            _check(lib.lariat_client_options_set_timeouts(
                o, _ms(connect_timeout if connect_timeout is not None else 10),
                _ms(handshake_timeout if handshake_timeout is not None
                    else 10)))
        if reconnect:
            r = dict(reconnect)
            _check(lib.lariat_client_options_set_reconnect(
                o, _ms(r.pop("base", 0.5)), _ms(r.pop("max", 30)),
                float(r.pop("multiplier", 2.0)), float(r.pop("jitter", 0.2)),
                int(r.pop("max_attempts", 0))))
            if r:
                raise TypeError("unknown reconnect option(s) %s" % sorted(r))
        if offline_queue is not None:
            _check(lib.lariat_client_options_set_offline_queue(
                o, offline_queue))
        if tls_ca_file is not None or tls_ca_dir is not None:
            _check(lib.lariat_client_options_set_tls_ca(
                o, _path_or_null(tls_ca_file), _path_or_null(tls_ca_dir)))
        if tls_server_name is not None:
            _check(lib.lariat_client_options_set_tls_server_name(
                o, tls_server_name.encode("idna")))
        if tls_insecure_no_verify:
            _check(lib.lariat_client_options_set_tls_insecure_no_verify(o, 1))
        route = _Route()
        route.server, route.handler, route.deflate = self, handler, None
        route.handle = ffi.new_handle(route)
        session = _Session(route)
        session.handler = handler() if isinstance(handler, type) else handler
        session.state = state
        table = ffi.new("lariat_handler *")
        table.size = ffi.sizeof("lariat_handler")
        for name in _CALLBACKS:
            setattr(table, name, getattr(lib, "py_" + name))
        conn_id = ffi.new("lariat_conn_id *")
        with self._cond:
            if self._ptr is None:
                raise Error(lib.LARIAT_ERR_STOPPED)
            self._routes.append(route)
            self._sessions.add(session)
            rc = lib.lariat_connect(self._ptr, url.encode("utf-8"), table,
                                    route.handle, o, session.handle, conn_id)
            if rc < 0:
                self._sessions.discard(session)
        _check(rc)
        return conn_id[0]

    def close_client(self, conn_id):
        """Any thread: ends client |conn_id| for good (an open connection
        closes with 1000; no reconnect follows)."""
        with self._cond:
            if self._ptr is None:
                raise Error(lib.LARIAT_ERR_STOPPED)
            rc = lib.lariat_client_close(self._ptr, conn_id)
        _check(rc)

    def listen(self, host=None, port=None):
        """Listens (again) on host:port, by default the constructor's;
        returns the port."""
        host = self._host if host is None else host
        port = self._port if port is None else port
        if host is None:
            raise TypeError("listen() needs a host")
        _check(lib.lariat_server_listen(self._setup_ptr(),
                                        host.encode("ascii"), port))
        if self._bound_port is None:
            self._bound_port = _check(lib.lariat_server_port(self._ptr))
        return self._bound_port

    def listen_tls(self, host, port, tls):
        """Listens for wss:// on host:port with |tls| (a Tls); returns the
        port."""
        _check(lib.lariat_server_listen_tls(self._setup_ptr(),
                                            host.encode("ascii"), port,
                                            tls._ptr))
        return _check(lib.lariat_server_tls_port(self._ptr))

    @property
    def port(self):
        """The port of the first listener."""
        if self._bound_port is None:
            raise Error(lib.LARIAT_ERR_INVALID_STATE)
        return self._bound_port

    @property
    def connection_count(self):
        return lib.lariat_server_connection_count(self._setup_ptr())

    def on_stopped(self, callback):
        """callback() runs once on the loop thread when the server has
        stopped: every connection ended, every terminate ran. Before the
        loop runs or from a callback; a second call replaces the first.
        Returns |callback|, so it also works as a decorator."""
        ptr = self._setup_ptr()
        self._on_stopped = callback
        _check(lib.lariat_server_on_stopped(ptr, lib.py_cb, self._handle))
        return callback

    def join_redis(self, url, prefix="lariat:"):
        """Joins the fleet of servers on the Redis at |url|
        ("redis://[:password@]host:port/db"): topics are shared with every
        server joined with the same |prefix|. Before run() (or from a
        callback with one loop). Connecting is asynchronous: failures
        come to on_bridge()."""
        _check(lib.lariat_server_join_redis(
            self._setup_ptr(), url.encode("utf-8"), prefix.encode("utf-8")))

    def on_bridge(self, callback):
        """callback(BridgeEvent) runs on the (first) loop thread for every
        bridge event: kind "up", "down" (error, detail) or "gap" (topic,
        origin, missed). After join_redis(); returns |callback|, so it
        works as a decorator."""
        ptr = self._setup_ptr()
        self._on_bridge = callback
        _check(lib.lariat_server_on_bridge(ptr, lib.py_on_bridge,
                                           self._handle))
        return callback

    def bridge_stats(self):
        """The bridge's counters (lariat_bridge_stats) as a dict. Any
        thread."""
        stats = ffi.new("lariat_bridge_stats *")
        with self._cond:
            if self._ptr is None:
                raise Error(lib.LARIAT_ERR_STOPPED)
            _check(lib.lariat_server_bridge_stats(
                self._ptr, stats, ffi.sizeof("lariat_bridge_stats")))
        return {name: getattr(stats, name)
                for name, _ in ffi.typeof("lariat_bridge_stats").fields}

    def _start(self):
        if self._bound_port is None and self._host is not None:
            self.listen()
        with self._cond:
            if self._ptr is None:
                raise Error(lib.LARIAT_ERR_STOPPED)
            if self._running:
                raise Error(lib.LARIAT_ERR_INVALID_STATE)
            self._running = True
        _serving.add(self)

    def _loop(self):
        self._loop_ident = threading.get_ident()
        try:
            # cffi releases the GIL for the whole call; callbacks take it.
            _check(lib.lariat_server_run(self._ptr))
        finally:
            with self._cond:
                self._loop_ident = None
                self._running = False
                self._cond.notify_all()

    def run(self):
        """Serves until stop(). On the main thread, Ctrl-C (or any
        exception a signal handler raises) stops the server cleanly: every
        client gets close 1001 and every terminate runs (within
        close_timeout), then run() raises that KeyboardInterrupt. Callbacks
        run on a helper thread then; on other threads, on the calling
        one."""
        self._start()
        if threading.current_thread() is not threading.main_thread():
            self._loop()
        else:
            # Python runs signal handlers on the main thread only, between
            # bytecodes; with lariat's loop (GIL released) on this thread a
            # Ctrl-C would wait for the next callback and surface at its
            # entry. So the loop runs on a helper thread, and this thread
            # waits where a signal interrupts it.
            thread = threading.Thread(target=self._loop, name="lariat",
                                      daemon=True)
            thread.start()
            try:
                while True:
                    try:
                        self.wait()
                        break
                    except BaseException as exc:
                        if self._pending is None:
                            self._pending = exc
                        self.stop()  # and wait again, for the 1001s
            finally:
                thread.join()
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending

    def serve_in_thread(self, name="lariat"):
        """Starts serving on a daemon thread, which it returns. Errors of
        listen() are raised here."""
        self._start()
        self._thread = threading.Thread(target=self._loop, name=name,
                                        daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout=None):
        """Waits until the loop stopped running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    def stop(self):
        """Any thread: starts stopping (close 1001 to every client);
        run() returns once every connection has ended."""
        with self._cond:
            if self._ptr is None:
                return
            rc = lib.lariat_server_stop_async(self._ptr)
        if rc != lib.LARIAT_ERR_STOPPED:
            _check(rc)

    def post(self, conn_id, obj):
        """Any thread: websocket_info(conn, obj) runs on the loop, in the
        order each thread posted. Dropped silently when the connection
        has ended; Error(STOPPED) once the server stops."""
        handle = ffi.new_handle(obj)
        key = int(ffi.cast("uintptr_t", handle))
        _posted[key] = handle
        with self._cond:
            if self._ptr is None:
                del _posted[key]
                raise Error(lib.LARIAT_ERR_STOPPED)
            try:
                rc = lib.lariat_post(self._ptr, conn_id, handle,
                                     lib.py_free_fn)
            except BaseException:  # conn_id not a uint64: C never ran
                _posted.pop(key, None)
                raise
        _check(rc)  # on failure lariat has already called py_free_fn

    def publish(self, topic, data, *, compress=True, local=False):
        """Any thread: sends |data| (str: a text message, bytes: binary)
        to every subscriber of |topic| (str: its UTF-8; or bytes), in the
        order each thread published. Returns how many subscribers it was
        queued for on the loop thread, 0 from another thread (it goes
        through the same queue as post()); Error(STOPPED) once the server
        stops. The GIL is released while lariat fans out. With a Redis
        bridge it also goes to the other servers, unless local=True."""
        buf, n = _topic(topic)
        frame, _payload = _message(data, compress, local)
        with self._cond:
            if self._ptr is None:
                raise Error(lib.LARIAT_ERR_STOPPED)
            rc = lib.lariat_publish(self._ptr, buf, n, frame)
        return _check(rc)

    def subscribers(self, topic):
        """How many connections subscribe to |topic|. Loop thread (a
        callback, or a function given to defer())."""
        buf, n = _topic(topic)
        return lib.lariat_server_subscribers(self._setup_ptr(), buf, n)

    def defer(self, fn):
        """Any thread: fn() runs once on the loop thread, in order with
        this thread's post() calls (for work that touches connections).
        |fn| is kept alive until it has run. Error(STOPPED) once the
        server stops (fn then never runs). Its exceptions are logged."""
        handle = ffi.new_handle((self, fn))
        key = int(ffi.cast("uintptr_t", handle))
        _deferred[key] = handle
        with self._cond:
            rc = lib.LARIAT_ERR_STOPPED if self._ptr is None else \
                lib.lariat_server_defer(self._ptr, lib.py_fn, handle)
        if rc < 0:
            _deferred.pop(key, None)  # lariat never calls it
            raise Error(rc)

    def close(self):
        """Stops, waits for the loop to finish, frees the server. Not
        from inside a callback."""
        with self._cond:
            if self._ptr is None:
                return
            if threading.get_ident() == self._loop_ident:
                raise Error(lib.LARIAT_ERR_INVALID_STATE)
        self.stop()
        with self._cond:
            self._cond.wait_for(lambda: not self._running)
            ptr, self._ptr = self._ptr, None
            if ptr is None:
                return  # closed meanwhile by another thread
            # lariat_server_del runs the last callbacks on this thread.
            self._loop_ident = threading.get_ident()
        try:
            lib.lariat_server_del(ptr)
        finally:
            self._loop_ident = None
            self._routes.clear()
            if self._thread is not None:
                self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        # A forgotten server that is not running is still freed; one that
        # runs is kept alive by its thread.
        if getattr(self, "_ptr", None) is not None and not self._running:
            self.close()


# Servers that serve: a program that leaves with serve_in_thread()'s server
# still running (Ctrl-C in the main thread, say) stops it cleanly here,
# while its daemon loop thread still runs, instead of dropping every
# connection without a close frame.
_serving = weakref.WeakSet()


@atexit.register
def _close_serving_servers():
    for server in list(_serving):
        try:
            server.close()
        except BaseException:
            _log.exception("lariat: closing a server at exit failed")
