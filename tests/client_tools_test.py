"""lariat-cat and lariat-autobahn-client as a user runs them, across
processes: lariat-cat against lariat-echo (lines in, echoes out, exit 0),
over ws:// and over wss:// (a test CA made now signs lariat-echo's
certificate; without --ca the certificate is refused, exit 1), against
nothing (exit 1) and against a server closing with 4000 (exit 2);
lariat-autobahn-client against a small stand-in for Autobahn's
fuzzingserver that speaks its client protocol (getCaseCount, runCase with
echoes checked, permessage-deflate offered, updateReports).

usage: client_tools_test.py LARIAT_CAT AUTOBAHN_CLIENT LARIAT_ECHO"""

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import websockets

CAT, AUTOBAHN, ECHO = sys.argv[1:4]
TIMEOUT = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on %d" % port)


def cat(url, stdin, *args):
    return subprocess.run([CAT, *args, url], input=stdin, timeout=TIMEOUT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


class Background:
    """An asyncio websockets server on a thread (over TLS with an
    ssl.SSLContext)."""

    def __init__(self, handler, ssl=None):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def main():
            self.server = await websockets.serve(handler, "127.0.0.1", 0,
                                                 compression="deflate",
                                                 max_size=None, ssl=ssl)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            await self.server.wait_closed()

        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(main()), daemon=True)
        self.thread.start()
        assert ready.wait(TIMEOUT)

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.thread.join(TIMEOUT)


def test_cat_with_lariat_echo():
    port = free_port()
    echo = subprocess.Popen([ECHO, "--port", str(port)],
                            stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        lines = "".join("line %d\n" % i for i in range(200))
        r = cat("ws://127.0.0.1:%d/" % port, lines)
        assert r.returncode == 0, r.stderr
        assert r.stdout == lines, r.stdout[:200]
    finally:
        echo.terminate()
        echo.wait(TIMEOUT)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca_and_leaf(d):
    """A test CA and a certificate it signs for localhost and 127.0.0.1,
    as PEM files in |d| (made now: no key is committed)."""
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    leaf, key = os.path.join(d, "leaf.pem"), os.path.join(d, "leaf.key")
    csr, ext = os.path.join(d, "leaf.csr"), os.path.join(d, "ext.cnf")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=lariat test CA",
            "-keyout", ca_key, "-out", ca)
    openssl("req", "-new", *ec, "-subj", "/CN=localhost", "-keyout", key,
            "-out", csr)
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", leaf)
    return ca, leaf, key


def test_cat_with_lariat_echo_over_wss():
    with tempfile.TemporaryDirectory() as d:
        ca, leaf, key = make_ca_and_leaf(d)
        port = free_port()
        echo = subprocess.Popen([ECHO, "--port", str(port), "--tls-cert", leaf,
                                 "--tls-key", key], stdout=subprocess.DEVNULL)
        try:
            wait_port(port)
            lines = "".join("wss line %d\n" % i for i in range(200))
            for url in ("wss://127.0.0.1:%d/" % port,
                        "wss://localhost:%d/" % port):
                r = cat(url, lines, "--ca", ca)
                assert r.returncode == 0, r.stderr
                assert r.stdout == lines, r.stdout[:200]
            r = cat("wss://localhost:%d/" % port, "x\n")
            assert r.returncode == 1, r.stderr
            assert "certificate verify failed" in r.stderr, r.stderr
            r = cat("wss://localhost:%d/" % port, "x\n", "--ca", ca,
                    "--servername", "other.test")
            assert r.returncode == 1 and "hostname mismatch" in r.stderr, \
                r.stderr
            r = cat("wss://localhost:%d/" % port, "x\n", "--insecure")
            assert r.returncode == 0 and r.stdout == "x\n", r.stderr
        finally:
            echo.terminate()
            echo.wait(TIMEOUT)


def test_cat_exit_statuses():
    r = cat("ws://127.0.0.1:%d/" % free_port(), "x\n")
    assert r.returncode == 1 and "handshake failed" in r.stderr, r.stderr

    async def rude(ws, path=None):
        await ws.close(4000, "go away")

    server = Background(rude)
    try:
        # stdin stays open: the server's close is what ends it.
        p = subprocess.Popen([CAT, "ws://127.0.0.1:%d/" % server.port],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True)
        code = p.wait(TIMEOUT)
        err = p.stderr.read()
        p.stdin.close()
        assert code == 2 and "4000" in err, (code, err)
    finally:
        server.close()
    r = cat("not a url", "")
    assert r.returncode == 64


def test_autobahn_client_protocol():
    autobahn_client_protocol("ws", [])


def test_autobahn_client_protocol_over_wss():
    """The same over wss:// (Python's ssl module on the server side), the
    test CA given with --ca."""
    with tempfile.TemporaryDirectory() as d:
        ca, leaf, key = make_ca_and_leaf(d)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(leaf, key)
        autobahn_client_protocol("wss", ["--ca", ca], ctx)


def autobahn_client_protocol(scheme, args, ssl_context=None):
    seen = {"count": 0, "cases": [], "reports": [], "deflate": [], "ok": []}
    cases = 3

    async def fuzzingserver(ws, path=None):
        path = ws.path if path is None else path
        if path == "/getCaseCount":
            seen["count"] += 1
            await ws.send(str(cases))
            await ws.close()
        elif path.startswith("/runCase?"):
            query = dict(p.split("=") for p in path.split("?")[1].split("&"))
            n = int(query["case"])
            seen["cases"].append((n, query["agent"]))
            seen["deflate"].append([e.name for e in ws.extensions])
            messages = ["case %d" % n, bytes([0, n, 255]), "é" * 1000,
                        b"x" * 70000]
            ok = True
            for m in messages:
                await ws.send(m)
                ok = ok and await ws.recv() == m
            seen["ok"].append(ok)
            await ws.close()
        elif path.startswith("/updateReports?"):
            seen["reports"].append(path)
            await ws.close()

    server = Background(fuzzingserver, ssl_context)
    try:
        r = subprocess.run([AUTOBAHN, *args,
                            "%s://127.0.0.1:%d" % (scheme, server.port),
                            "agent7"], timeout=TIMEOUT,
                           stdout=subprocess.PIPE, universal_newlines=True)
        assert r.returncode == 0, r.stdout
    finally:
        server.close()
    assert seen["count"] == 1
    assert seen["cases"] == [(1, "agent7"), (2, "agent7"), (3, "agent7")]
    assert seen["ok"] == [True] * cases
    assert seen["deflate"] == [["permessage-deflate"]] * cases
    assert seen["reports"] == ["/updateReports?agent=agent7"]


if __name__ == "__main__":
    for name, fn in sorted(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print("ok", name)
