"""wss:// from Python: a server with a plain and a TLS listener, the
websockets client over ssl.create_default_context(cafile=...), SNI,
reload and the handshake failure count."""

import asyncio
import socket
import ssl
import subprocess

import pytest
import websockets

import lariat
from conftest import TIMEOUT, eventually, run


def make_cert(tmp_path, name, *alt_names, stem=None):
    """A P-256 self-signed certificate, made now (no key is committed)."""
    stem = stem or name
    cert, key = tmp_path / (stem + ".crt"), tmp_path / (stem + ".key")
    san = ",".join(["DNS:" + n for n in (name,) + alt_names] +
                   ["IP:127.0.0.1"])
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
         "/CN=" + name, "-addext", "subjectAltName=" + san,
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return str(cert), str(key)


class Echo:
    versions = []

    def websocket_init(self, conn):
        Echo.versions.append(conn.tls_version)

    def websocket_handle(self, conn, frame):
        conn.send(frame.data if frame.opcode == lariat.Opcode.BINARY
                  else frame.text)


async def echo(uri, **kw):
    async with websockets.connect(uri, **kw) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        payload = bytes(range(256)) * 300
        await ws.send(payload)
        assert await ws.recv() == payload
        return ws.transport.get_extra_info("ssl_object")


def test_wss_and_ws_on_one_server(tmp_path):
    cert, key = make_cert(tmp_path, "localhost")
    Echo.versions = []
    server = lariat.Server("127.0.0.1", 0)
    server.route("/", Echo)
    with server:
        tls_port = server.listen_tls("127.0.0.1", 0, lariat.Tls(cert, key))
        server.serve_in_thread()
        ctx = ssl.create_default_context(cafile=cert)
        sslobj = run(echo("wss://localhost:%d/" % tls_port, ssl=ctx))
        assert sslobj.version() == "TLSv1.3"
        assert sslobj.selected_alpn_protocol() is None  # not offered
        assert run(echo("ws://127.0.0.1:%d/" % server.port)) is None
    assert Echo.versions == ["TLSv1.3", None]


def test_sni_reload_and_failures(tmp_path):
    a_cert, a_key = make_cert(tmp_path, "a.test")
    b_cert, b_key = make_cert(tmp_path, "b.test", "*.b.test")
    c_cert, c_key = make_cert(tmp_path, "a.test", stem="renewed")
    tls = lariat.Tls(a_cert, a_key).add_cert_file(b_cert, b_key)
    server = lariat.Server(None)
    server.route("/", Echo)
    with server:
        port = server.listen_tls("127.0.0.1", 0, tls)
        server.serve_in_thread()

        def peer_cert(name, cafile):
            ctx = ssl.create_default_context(cafile=cafile)
            ctx.check_hostname = False
            with socket.create_connection(("127.0.0.1", port),
                                          timeout=TIMEOUT) as s:
                with ctx.wrap_socket(s, server_hostname=name) as t:
                    return t.getpeercert()["subject"]

        assert peer_cert("a.test", a_cert) == ((("commonName", "a.test"),),)
        assert peer_cert("x.b.test", b_cert) == ((("commonName", "b.test"),),)
        assert peer_cert("other", a_cert) == ((("commonName", "a.test"),),)
        # The renewed certificate serves new connections; the old CA no
        # longer verifies it.
        tls.reload(lariat.Tls(c_cert, c_key))
        assert peer_cert("a.test", c_cert) == ((("commonName", "a.test"),),)
        with pytest.raises(ssl.SSLError):
            peer_cert("a.test", a_cert)
        # Plain HTTP on the TLS port: refused, counted, reason kept.
        before = tls.failures[0]
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(100)
        assert eventually(lambda: tls.failures[0] > before)
        assert tls.failures[1] in ("http request", "wrong version number")
