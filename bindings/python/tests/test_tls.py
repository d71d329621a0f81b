"""wss:// from Python: a server with a plain and a TLS listener, the
websockets client over ssl.create_default_context(cafile=...), SNI,
reload and the handshake failure count; the lariat client over wss://
(Server.connect with its TLS options, lariat.asyncio.connect with an
SSLContext against websockets' own TLS server)."""

import asyncio
import queue
import socket
import ssl
import subprocess

import pytest
import websockets

import lariat
import lariat.asyncio
from conftest import TIMEOUT, eventually, get, run


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
        if frame.opcode == lariat.Opcode.TEXT and frame.text == "!bye":
            return "shutdown"
        conn.send(frame.data if frame.opcode == lariat.Opcode.BINARY
                  else frame.text)
        return None


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


class Client:
    """A client handler: sends "héllo", reports the echo, the TLS version
    and how it ended."""

    def __init__(self, events):
        self.events = events

    def websocket_init(self, conn):
        self.events.put(("open", conn.tls_version))
        conn.send_text("héllo")

    def websocket_handle(self, conn, frame):
        self.events.put(("echo", frame.text))
        return "shutdown"

    def terminate(self, conn, reason):
        self.events.put(("end", reason.kind, reason.failure))


def test_client_wss_verifies_the_server(tmp_path):
    cert, key = make_cert(tmp_path, "localhost")
    other, _ = make_cert(tmp_path, "other.test")
    server = lariat.Server("127.0.0.1", 0)
    server.route("/", Echo)
    with server:
        tls_port = server.listen_tls("127.0.0.1", 0, lariat.Tls(cert, key))
        server.serve_in_thread()
        client_checks(server, "wss://localhost:%d/" % tls_port, cert, other,
                      tmp_path)


def client_checks(server, url, cert, other, tmp_path):
    events = queue.Queue()
    server.connect(url, Client(events), tls_ca_file=cert)
    assert get(events) == ("open", "TLSv1.3")
    assert get(events) == ("echo", "héllo")
    assert get(events)[1] == lariat.ReasonKind.SHUTDOWN
    # Refused: the system's CAs, another certificate, another name.
    for options in ({}, {"tls_ca_file": other},
                    {"tls_ca_file": cert, "tls_server_name": "other.test"}):
        server.connect(url, Client(events), **options)
        end, kind, failure = get(events)
        assert kind == lariat.ReasonKind.HANDSHAKE_FAILED, options
        assert "certificate verify failed" in failure, (options, failure)
    server.connect(url, Client(events), tls_insecure_no_verify=True)
    assert get(events) == ("open", "TLSv1.3")
    assert get(events) == ("echo", "héllo")
    assert get(events)[1] == lariat.ReasonKind.SHUTDOWN

    class Reconnecting:
        """The server closes the first connection; the second resumes
        its TLS session."""
        def websocket_init(self, conn):
            events.put(("resumed", conn.tls_resumed))
            conn.send_text("!bye")

    cid = server.connect(url, Reconnecting, tls_ca_file=cert,
                         reconnect={"base": 0.05, "max": 0.1})
    assert get(events) == ("resumed", False)
    assert get(events) == ("resumed", True)
    server.close_client(cid)
    with pytest.raises(lariat.Error):
        server.connect(url, Client(events), tls_ca_file=str(tmp_path / "no"))


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_asyncio_client_wss_to_a_websockets_server(tmp_path, version):
    """lariat.asyncio.connect() over wss:// to websockets' server on
    Python's ssl module (TLS 1.2 and 1.3): the SSLContext's CA is what is
    trusted."""
    cert, key = make_cert(tmp_path, "localhost")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.minimum_version = server_ctx.maximum_version = \
        getattr(ssl.TLSVersion, version)

    async def main():
        async def handler(ws, path=None):
            async for msg in ws:
                await ws.send(msg)

        async with websockets.serve(handler, "127.0.0.1", 0,
                                    ssl=server_ctx) as peer:
            port = peer.sockets[0].getsockname()[1]
            url = "wss://localhost:%d/" % port
            ctx = ssl.create_default_context(cafile=cert)
            async with lariat.asyncio.connect(url, ssl=ctx) as ws:
                for i in range(100):
                    await ws.send("m%d" % i)
                    assert await ws.recv() == "m%d" % i
            with pytest.raises(ssl.SSLCertVerificationError):
                await lariat.asyncio.connect(url)
            insecure = ssl.create_default_context()
            insecure.check_hostname = False
            insecure.verify_mode = ssl.CERT_NONE
            async with lariat.asyncio.connect(url, ssl=insecure) as ws:
                await ws.send(b"\x00")
                assert await ws.recv() == b"\x00"

    run(main())
