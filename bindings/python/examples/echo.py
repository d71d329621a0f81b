#!/usr/bin/python3
"""Echoes every WebSocket text and binary message back, on every path.

    PYTHONPATH=<build>/bindings/python:bindings/python \\
        /usr/bin/python3 bindings/python/examples/echo.py --port 8080

SIGINT or SIGTERM stops it cleanly: every client gets close 1001.
"""

import argparse
import signal
import sys

import lariat


class Echo:
    def init(self, req, upgrade):
        if not req.is_websocket:
            upgrade.reply(200, {"content-type": "text/plain"},
                          "lariat echo: connect with a WebSocket client\n")
        else:
            upgrade.set_max_frame_size(16 << 20)

    def websocket_handle(self, conn, frame):
        if frame.opcode == lariat.Opcode.TEXT:
            conn.send_text(frame.text)
        elif frame.opcode == lariat.Opcode.BINARY:
            conn.send_binary(frame.data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080,
                        help="0 picks a free port")
    parser.add_argument("--compress", action="store_true",
                        help="accept permessage-deflate")
    args = parser.parse_args(argv)

    with lariat.Server(args.host, args.port) as server:
        server.route("*", Echo, compress=args.compress)
        # Python runs signal handlers on the main thread only, so the loop
        # runs on another one and this thread waits, interruptibly.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: server.stop())
        try:
            server.serve_in_thread()
        except lariat.Error as e:
            print("listen %s:%d: %s" % (args.host, args.port, e),
                  file=sys.stderr)
            return 1
        print("lariat echo listening on ws://%s:%d/" % (args.host,
                                                        server.port),
              flush=True)
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
