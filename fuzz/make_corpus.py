#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Each seed is named by the SHA-256 of its content (nghttp2's convention), so
running this again rewrites the same files. Files it did not write (seeds
libFuzzer found and someone committed) are left alone.

The input layouts are documented at the top of each fuzz_*.cc; the helpers
below build them.
"""
import base64
import hashlib
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 5.7's masking key


def write_seeds(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for s in seeds:
        with open(os.path.join(d, hashlib.sha256(s).hexdigest()), "wb") as f:
            f.write(s)
    print(f"{target}: {len(set(seeds))} seeds")


# ------------------------------------------------------------- requests

def key(n):
    return base64.b64encode(bytes((n * 7 + i) & 0xFF for i in range(16))).decode()


def head(lines, target="/chat", method="GET", version="HTTP/1.1"):
    text = f"{method} {target} {version}\r\n" + "".join(l + "\r\n" for l in lines)
    return (text + "\r\n").encode("latin-1")


RFC6455 = head([  # RFC 6455 1.2
    "Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Origin: http://example.com",
    "Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Version: 13"])
CHROME = head([
    "Host: localhost:8080", "Connection: Upgrade", "Pragma: no-cache",
    "Cache-Control: no-cache",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Upgrade: websocket", "Origin: http://localhost:8080",
    "Sec-WebSocket-Version: 13", "Accept-Encoding: gzip, deflate, br",
    "Accept-Language: en-US,en;q=0.9", f"Sec-WebSocket-Key: {key(1)}",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
FIREFOX = head([
    "Host: localhost:8080",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 "
    "Firefox/121.0",
    "Accept: */*", "Accept-Language: en-US,en;q=0.5",
    "Accept-Encoding: gzip, deflate, br", "Sec-WebSocket-Version: 13",
    "Origin: http://localhost:8080",
    "Sec-WebSocket-Extensions: permessage-deflate", f"Sec-WebSocket-Key: {key(2)}",
    "Connection: keep-alive, Upgrade", "Sec-Fetch-Dest: empty",
    "Sec-Fetch-Mode: websocket", "Sec-Fetch-Site: same-origin",
    "Pragma: no-cache", "Cache-Control: no-cache", "Upgrade: websocket"])
BASE = ["Host: h", "Upgrade: websocket", "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key(3)}", "Sec-WebSocket-Version: 13"]


def without(lines, prefix):
    return [l for l in lines if not l.startswith(prefix)]


GOOD_REQUESTS = [
    RFC6455, CHROME, FIREFOX,
    head(without(BASE, "Sec-WebSocket-Version") + ["Sec-WebSocket-Version: 8"]),
    head(without(BASE, "Sec-WebSocket-Version") + ["Sec-WebSocket-Version: 7",
                                                   "Sec-WebSocket-Origin: x"]),
    head(BASE, target="/chat?room=1&x=%20"),
    head(BASE + ["Sec-WebSocket-Protocol: a, , b", "Sec-WebSocket-Protocol: c",
                 "X-Empty:", "x-tab:\tv\t"]),
    head(["host: h", "upgrade: WebSocket", "connection: keep-alive , UPGRADE",
          f"sec-websocket-key: {key(4)}", "sec-websocket-version: 13"]),
    head(["Host: h"]),  # plain GET: not an upgrade attempt
]
BAD_REQUESTS = [
    RFC6455.replace(b"\r\n", b"\n"),                      # bare LF
    RFC6455.replace(b"Host: ", b"Host : "),               # space before colon
    RFC6455.replace(b"Origin:", b" Origin:"),             # obs-fold
    head(without(BASE, "Host")),                          # no Host
    head(BASE + ["Host: again"]),                         # two Hosts
    head(without(BASE, "Sec-WebSocket-Version") + ["Sec-WebSocket-Version: 12"]),
    head(BASE + ["Sec-WebSocket-Version: 13"]),           # two versions
    head(without(BASE, "Sec-WebSocket-Key") + ["Sec-WebSocket-Key: abc"]),
    head(without(BASE, "Sec-WebSocket-Key") +
         ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="]),  # non-canonical
    head(without(BASE, "Connection") + ["Connection: keep-alive"]),
    head(BASE, method="POST"),
    head(BASE, version="HTTP/1.0"),
    head(BASE, version="HTTP/2.0"),
    head(BASE, target="http://h/chat"),                   # absolute-form
    head(BASE, target="*", method="OPTIONS"),
    head(BASE + ["X-Nul: a\x00b"]),
    head(BASE + ["X-Del: a\x7fb"]),
    head(BASE + [f"X-{i}: {i}" for i in range(120)]),    # too many headers
    head(BASE + ["X-Big: " + "a" * 9000]),                # too large
    bytes.fromhex("16030100a5010000a10303") + bytes(32),  # a TLS ClientHello
    RFC6455[:-2],                                         # no blank line yet
    b"GET /chat HTTP/1.1\r\nHost: h\r\n\r",
    b"",
]


# Regression seeds: inputs that once failed, minimized.
# 400 vs 431 for the same head depending on how it is split: 100 headers,
# then a 101st line with a control byte; the prefix ends inside it.
HEADERS_101_BAD = b"GET / HTTP/1.1\r\n" + b"a:\r\n" * 100 + b"b\x01\r\n\r\n"


def handshake_seeds():
    seeds = [bytes([0xFF, 254]) + HEADERS_101_BAD]
    for i, r in enumerate(GOOD_REQUESTS + BAD_REQUESTS):
        # [limits][split]: default-ish small limits and a mid split; some
        # with the tightest limits and a split right at the end.
        seeds.append(bytes([0xFF, 0x80]) + r)
        if i % 3 == 0:
            seeds.append(bytes([0x00, 0xFF]) + r)
    # Frames pipelined behind the head.
    seeds.append(bytes([0x40, 0x10]) + RFC6455 + bytes.fromhex(
        "818537fa213d7f9f4d5158"))
    return seeds


# ----------------------------------------------------------- extensions

RFC7692_OFFERS = [  # RFC 7692 5, 7.1 and their invalid neighbours
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=10",
    "permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
    'permessage-deflate; client_max_window_bits="10"',
    'permessage-deflate; server_max_window_bits="1\\5"',
    "permessage-deflate;server_max_window_bits=15;client_max_window_bits=15",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; unknown_param",
    "permessage-deflate;",
    'permessage-deflate; client_max_window_bits="10',
    "x-webkit-deflate-frame, permessage-deflate",
    "foo; a=\"b,c\", permessage-deflate; client_max_window_bits",
    ",, ,permessage-deflate ,",
    "PerMessage-Deflate",
    "",
]


def extension_seeds():
    seeds = []
    cfgs = [(0x3F, 0x00), (0x00, 0xFF), (0xC9, 0x52)]
    for i, offer in enumerate(RFC7692_OFFERS):
        a, b = cfgs[i % len(cfgs)]
        seeds.append(bytes([a, b]) + offer.encode())
    # Several header values, one per line: the first acceptable one wins.
    multi = ["permessage-deflate; unknown", "foo",
             "permessage-deflate; server_max_window_bits=9",
             "permessage-deflate"]
    seeds.append(bytes([0x3F, 0x00]) + "\n".join(multi).encode())
    seeds.append(bytes([0xFF, 0x24]) + "\n".join(reversed(multi)).encode())
    return seeds


# ----------------------------------------------------------- connection

def opts(mode=0, offer=False, utf8_off=False, deferred=False, error=False,
         ticks=False, greet=False, o1=0, o2=0, o3=0, o4=0, o5=0,
         chunks=(0, 0, 0, 0)):
    """fuzz_connection.cc's 10 option bytes."""
    o0 = (mode | offer << 2 | utf8_off << 3 | deferred << 4 | error << 5 |
          ticks << 6 | greet << 7)
    return bytes([o0, o1, o2, o3, o4, o5]) + bytes(chunks)


def frame(b0, payload, masked=True, length_form=None):
    """A client frame; length_form 126/127 forces a (non-minimal) form."""
    n = len(payload)
    m = 0x80 if masked else 0
    if length_form is None:
        length_form = 0 if n < 126 else 126 if n < 65536 else 127
    if length_form == 0:
        h = bytes([b0, m | n])
    elif length_form == 126:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return h + payload
    return h + MASK + bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))


def close(code, reason=b""):
    return frame(0x88, struct.pack(">H", code) + reason)


def deflate_raw(data):
    """A message compressed as RFC 7692 7.2.1 says: sync flush, no tail."""
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def sframe(b0, ctl, payload=b""):
    """A structured frame description (fuzz_connection.cc's layout)."""
    assert len(payload) < 256
    return bytes([b0, ctl, len(payload)]) + payload


def spattern(b0, ctl, length, fill):
    ctl |= 0x08 | (0x40 if length >> 16 else 0)
    body = bytes([length & 0xFF, (length >> 8) & 0xFF])
    if length >> 16:
        body += bytes([(length >> 16) & 1])
    return bytes([b0, ctl]) + body + bytes([fill])


def sclose(code, reason=b""):
    return bytes([0x88, 0x10, code >> 8, code & 0xFF, len(reason)]) + reason


def harness_head(offer=None):
    """The head fuzz_connection.cc writes in modes 0, 1 and 3."""
    lines = ["Host: server.example.com", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: chat, superchat"]
    if offer:
        lines.append("Sec-WebSocket-Extensions: " + offer)
    return head(lines)


HEAD_LEN = len(harness_head())
assert HEAD_LEN < 256
HELLO = bytes.fromhex("818537fa213d7f9f4d5158")  # RFC 6455 5.7, masked
CLOSE_1000 = close(1000)


def connection_seeds():
    seeds = []
    raw = lambda stream, **kw: seeds.append(opts(mode=0, **kw) + stream)
    struct_ = lambda stream, **kw: seeds.append(opts(mode=1, **kw) + stream)
    full = lambda stream, **kw: seeds.append(opts(mode=2, **kw) + stream)

    # RFC 6455 5.7, client side.
    raw(HELLO + CLOSE_1000)
    raw(HELLO, chunks=(1, 0, 0, 0))
    raw(frame(0x01, b"Hel") + frame(0x80, b"lo") + CLOSE_1000, chunks=(3, 7, 1, 64))
    raw(frame(0x89, b"Hello") + frame(0x8A, b"Hello") + CLOSE_1000)
    raw(frame(0x01, b"Hel") + frame(0x89, b"ping!") + frame(0x80, b"lo"))
    raw(frame(0x82, bytes(range(256))) + CLOSE_1000)
    raw(frame(0x82, b"") + frame(0x81, b""))
    raw(bytes.fromhex("82ff0000000000010000") + MASK + b"\x00" * 64)  # 64 KiB header
    raw(bytes.fromhex("82ff0000000000010001") + MASK)                  # one over the limit
    raw(close(1000, b"bye") + HELLO)               # data after close
    raw(frame(0x88, b""))                          # close without a code
    raw(frame(0x88, b"\x03"))                      # 1-byte close payload
    for code in (0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999,
                 3000, 4999, 5000, 65535):
        raw(close(code))
    raw(close(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"))  # κόσμε
    raw(close(1000, b"\xf4\x90\x80\x80"))          # invalid UTF-8 reason
    raw(close(1000, b"\xf4\x90\x80\x80"), utf8_off=True)

    # Autobahn-style invalid frames.
    for b0 in (0xC1, 0xA1, 0x91, 0xF1, 0xC9):      # reserved bits
        raw(frame(b0, b"x"))
    for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):  # reserved opcodes
        raw(HELLO + frame(0x80 | op, b"x"))
    raw(frame(0x80, b"cont"))                      # continuation first
    raw(frame(0x01, b"a") + frame(0x81, b"b"))     # new text mid-message
    raw(frame(0x09, b"frag ping"))                 # fragmented control
    raw(frame(0x89, b"p" * 126))                   # control over 125
    raw(frame(0x81, b"Hello", masked=False))       # unmasked
    raw(frame(0x81, b"Hello", length_form=126))    # non-minimal length
    raw(frame(0x81, b"Hello", length_form=127))
    raw(bytes.fromhex("81ff8000000000000005") + MASK + b"Hello")  # top bit set
    # Invalid UTF-8 split across fragments: F4 | 90 80 80 (> U+10FFFF).
    raw(frame(0x01, b"a\xf4") + frame(0x80, b"\x90\x80\x80"), chunks=(1, 0, 0, 0))
    raw(frame(0x01, b"\xce\xba\xe1") + frame(0x00, b"\xbd\xb9") +
        frame(0x80, b"\xcf\x83"))                  # valid, split mid-character
    raw(frame(0x81, b"\xed\xa0\x80"))              # surrogate
    raw(frame(0x81, b"\xc0\xaf"))                  # overlong
    raw(frame(0x81, b"\xf0\x9f\x98"))              # truncated at the end
    raw(frame(0x81, b"\xf0\x9f\x98"), utf8_off=True)

    # RFC 7692 7.2.3, masked, with permessage-deflate offered.
    c = lambda b0, hexpayload: frame(b0, bytes.fromhex(hexpayload))
    raw(c(0xC1, "f248cdc9c90700") + CLOSE_1000, offer=True)           # 7.2.3.1
    raw(c(0x41, "f248cd") + c(0x80, "c9c90700"), offer=True)           # fragmented
    raw(c(0xC1, "f248cdc9c90700") + c(0xC1, "f2001100 00".replace(" ", "")),
        offer=True)                                                    # 7.2.3.2
    raw(c(0xC1, "f248cdc9c90700") + c(0xC1, "f2001100 00".replace(" ", "")),
        offer=True, o1=0x02 | 0x08)  # no context takeover: the 2nd is corrupt
    raw(c(0xC1, "000500faff48656c6c6f00"), offer=True)                 # 7.2.3.3
    raw(c(0xC1, "f348cdc9c9070000") + HELLO, offer=True)               # 7.2.3.4
    raw(c(0xC1, "f2480500 0000ffffcac9c90700".replace(" ", "")), offer=True)  # 7.2.3.5
    raw(c(0xC1, "00"), offer=True)                                     # empty message
    raw(c(0xC1, "ffffffff"), offer=True)                               # corrupt
    raw(c(0xC1, "f248cdc9c90700"))               # RSV1 without negotiation
    raw(c(0xC9, "00"), offer=True)               # RSV1 on a control frame
    raw(c(0x41, "f248cd") + c(0xC0, "c9c90700"), offer=True)  # RSV1 on a continuation
    for variant in range(4):
        raw(frame(0xC1, deflate_raw(b"hello deflate")), offer=True,
            o1=variant << 2, o2=variant)

    # The handler's commands, every one once, with and without deflate.
    for cmd in (b"hibernate", b"shutdown", b"crash!", b"c", b"x", b"ping me",
                b"timeout", b"!", b"errors", b"uncompressed", b"resume"):
        raw(frame(0x81, cmd) + HELLO + CLOSE_1000)
        raw(frame(0xC1, deflate_raw(cmd)) + HELLO, offer=True)
    raw(frame(0x81, b"hibernate") + frame(0x81, b"resume"), chunks=(1, 0, 0, 0))
    raw(frame(0x81, b"big") + HELLO)                 # 300 KiB reply, direct
    raw(frame(0xC1, deflate_raw(b"bu")) + HELLO, offer=True)
    raw(frame(0xC1, deflate_raw(b"big")) + HELLO, offer=True)
    raw(frame(0x81, b"active off") + HELLO + CLOSE_1000)
    raw(frame(0x81, b"active off") + frame(0x81, b"shutdown") + HELLO)

    # Greeting, deferred close, socket error, deadlines and the clock.
    raw(HELLO, greet=True, deferred=True)
    raw(HELLO, error=True)
    raw(HELLO, ticks=True, o3=0x00)                    # 408 before the head
    raw(HELLO, ticks=True, o3=0x00 | 3 << 5 | 0x80)    # via the server timer
    # The first chunk is the head; deadlines fire after every chunk.
    after_head = (HEAD_LEN, 11, 11, 11)
    raw(HELLO + HELLO, ticks=True, o3=0x01 | 1 << 5, o4=0x20,
        chunks=after_head)                                 # idle timeout
    raw(HELLO + HELLO, ticks=True, o3=0x01 | 1 << 5 | 0x80, o4=0x20,
        chunks=after_head)                                 # the same, by timer
    raw(HELLO + HELLO + HELLO, ticks=True, o3=0x01 | 1 << 5 | 0x80,
        o4=0x01, chunks=(HEAD_LEN, 11, 0, 0))              # keepalive: ping
    raw(HELLO, ticks=True, o3=0x01 | 1 << 5 | 0x80, o4=0x01,
        chunks=(HEAD_LEN, 0, 0, 0))                        # ping, no pong
    raw(frame(0x81, b"shutdown") + HELLO, ticks=True, o3=0x01 | 2 << 5,
        chunks=(HEAD_LEN, 14, 11, 11))                     # close timeout
    raw(frame(0x81, b"active off") + HELLO, ticks=True,
        o3=0x02 | 1 << 5 | 0x80, o4=0x20, chunks=(HEAD_LEN, 16, 11, 11))

    # Ticks without deadlines: posted messages (each websocket_info
    # result), host replies from outside callbacks, the server stopping.
    for result in range(4):
        raw(HELLO + HELLO, ticks=True, o3=0x01, o5=0x01 | 0x04 | result << 5,
            chunks=after_head)
    raw(HELLO + HELLO, ticks=True, o3=0x01, o5=0x08 | 0x04, chunks=after_head)
    raw(HELLO, ticks=True, o3=0x01, o5=0x08 | 0x10 | 0x04, chunks=after_head)
    raw(HELLO, ticks=True, o3=0x01, o5=0x08 | 0x10 | 0x04, offer=True,
        chunks=after_head)
    raw(HELLO + CLOSE_1000, ticks=True, o3=0x01, o5=0x02 | 0x04,
        chunks=after_head)                          # stop: close 1001
    raw(HELLO, ticks=True, o3=0x00, o5=0x02 | 0x04)  # stop while handshaking
    raw(HELLO, ticks=True, o3=0x01, o5=0x02 | 0x01 | 0x08,
        o4=0x02 | 1 << 2, chunks=after_head)        # all at once, slow peer

    # Flow control: a slow peer, small queue caps, refusing a full server,
    # a failing write.
    big = spattern(0x82, 0, 8000, ord("b"))
    for policy in (1, 2, 3):
        struct_(big + big + sframe(0x81, 0, b"Hello"), o4=0x02 | policy << 2,
                chunks=(250, 0, 0, 0))
    struct_(sframe(0x81, 0, b"Hello") * 8, o4=0x02 | 1 << 2, greet=True,
            chunks=(11, 0, 0, 0))
    raw(HELLO, o4=0x10)
    for n in (1, 2, 3):
        raw(HELLO + HELLO + CLOSE_1000, o4=n << 6, chunks=(11, 0, 0, 0))
        raw(HELLO + HELLO + CLOSE_1000, o4=n << 6, deferred=True,
            chunks=(11, 0, 0, 0))

    # Structured frames: the harness masks and compresses.
    struct_(sframe(0x81, 0, b"Hello") + sclose(1000))
    struct_(sframe(0x01, 0, b"Hel") + sframe(0x89, 0, b"ping") +
            sframe(0x80, 0, b"lo") + sclose(1001, b"going"))
    struct_(spattern(0x82, 0, 256, 0x5A) + spattern(0x82, 0x80, 65536, 0x11))
    struct_(spattern(0x82, 0, 65537, 0x00))               # one over the limit
    struct_(sframe(0xC1, 0x04, b"Hello") + sframe(0xC1, 0x04, b"Hello"),
            offer=True)
    struct_(sframe(0x41, 0x04, b"Hel") + sframe(0x80, 0x04, b"lo"), offer=True)
    struct_(sframe(0xC1, 0x24, b"final block") + sframe(0xC1, 0x04, b"next"),
            offer=True)                                   # BFINAL, then more
    struct_(spattern(0xC2, 0x04, 100000, 0x00), offer=True)  # deflate bomb
    struct_(spattern(0xC2, 0x84, 60000, 0x42), offer=True, o1=0x01,
            o2=0x07 << 3)
    struct_(spattern(0xC1, 0x04, 3000, ord("a")) + sframe(0xC1, 0x04, b"u"),
            offer=True, o1=0x03 | 0x10 | 3 << 2 | 1 << 5, o2=0x02 | 0x80)
    struct_(sframe(0x81, 0x01, b"unmasked") + sframe(0x81, 0x02, b"long"))
    struct_(sclose(1000, b"\xff") + sclose(3000))

    # The whole stream from the fuzzer, request included.
    full(RFC6455 + HELLO + CLOSE_1000)
    full(CHROME + frame(0xC1, deflate_raw(b"Hello")) + CLOSE_1000)
    full(FIREFOX + frame(0xC1, deflate_raw(b"x" * 300)))
    for target in ("/chat?crash", "/chat?reply", "/chat?bad", "/nowhere"):
        full(head(BASE, target=target) + HELLO)
    full(head(["Host: h"]))                         # plain GET on the route: 426
    for r in BAD_REQUESTS[:12]:
        full(r + HELLO, chunks=(5, 0, 0, 0))
    full(RFC6455[:40], ticks=True, o3=1)        # handshake timeout mid-head
    # Regression: 431 when read whole, 400 when read in pieces.
    full(HEADERS_101_BAD)
    full(HEADERS_101_BAD, chunks=(209, 209, 0, 0))
    return seeds


def main():
    write_seeds("fuzz_handshake", handshake_seeds())
    write_seeds("fuzz_extensions", extension_seeds())
    write_seeds("fuzz_connection", connection_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())
