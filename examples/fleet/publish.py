#!/usr/bin/env python3
"""Publishes into a lariat fleet from outside it, with nothing but the
standard library: one Redis PUBLISH of a message in lariat's bridge wire
format (include/lariat/lariat.h, "Bridge wire format").

    publish.py redis://127.0.0.1:6379/ lariat:room:42 "hello, fleet"

prints how many lariat processes (Redis subscribers) received it. The
channel is the fleet's prefix ("lariat:" unless the servers chose another)
followed by the topic. Text is sent as a text message; --binary sends the
bytes of the argument as a binary one.
"""

import os
import socket
import struct
import sys
import urllib.parse

VERSION, TEXT, BINARY = 1, 1, 2


def wire_message(payload, opcode=TEXT, origin=0, seq=0, flags=0):
    """The 24-byte header (big-endian: version, opcode, reserved, flags,
    origin, sequence) and the payload. origin 0 and seq 0: an anonymous,
    unsequenced publisher, so no lariat process checks it for gaps."""
    return struct.pack(">BBHIQQ", VERSION, opcode, 0, flags, origin, seq) \
        + payload


def resp_command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def publish(url, channel, payload, opcode=TEXT, origin=0, seq=0):
    """Sends one message; returns the number of receivers Redis reports."""
    u = urllib.parse.urlsplit(url)
    with socket.create_connection((u.hostname or "127.0.0.1",
                                   u.port or 6379), timeout=5) as s:
        commands = b""
        if u.password:
            commands += resp_command(b"AUTH",
                                     urllib.parse.unquote(u.password).encode())
        commands += resp_command(b"PUBLISH", channel.encode(),
                                 wire_message(payload, opcode, origin, seq))
        s.sendall(commands)
        replies = b""
        want = 2 if u.password else 1
        while replies.count(b"\r\n") < want:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            replies += chunk
        last = replies.split(b"\r\n")[want - 1]
        if not last.startswith(b":"):
            raise RuntimeError(last.decode(errors="replace"))
        return int(last[1:])


def main(argv):
    binary = "--binary" in argv
    args = [a for a in argv[1:] if a != "--binary"]
    if len(args) != 3:
        sys.stderr.write(__doc__)
        return 2
    url, channel, text = args
    payload = os.fsencode(text) if binary else text.encode("utf-8")
    print(publish(url, channel, payload, BINARY if binary else TEXT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
