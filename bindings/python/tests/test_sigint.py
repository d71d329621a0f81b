"""Ctrl-C stops a server cleanly: a real SIGINT to a real process, whose
client then gets close 1001 (not 1011, not HTTP 500), and whose every
terminate runs before it exits."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import websockets

from conftest import TIMEOUT, run

HERE = os.path.dirname(os.path.abspath(__file__))
README_ECHO = os.path.join(HERE, "..", "..", "..", "examples", "readme",
                           "echo.py")

# The program under test prints "ready PORT" once it serves, and "ended
# REASON" from terminate.
SERVER = textwrap.dedent('''
    import sys, time
    import lariat

    class Echo:
        def websocket_handle(self, conn, frame):
            conn.send_text(frame.text)

        def terminate(self, conn, reason):
            print("ended", reason.name, flush=True)

    mode = sys.argv[1]
    server = lariat.Server("127.0.0.1", 0, close_timeout=5)
    server.route("/", Echo)
    if mode == "run":
        with server:
            server.listen()
            print("ready", server.port, flush=True)
            server.run()
    elif mode == "thread":
        with server:
            server.serve_in_thread()
            print("ready", server.port, flush=True)
            server.wait()
    else:  # "thread-no-close": left to the interpreter's exit
        server.serve_in_thread()
        print("ready", server.port, flush=True)
        while True:
            time.sleep(1)
''')


def start(args):
    return subprocess.Popen(
        [sys.executable] + args, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True,
        # A child of a non-interactive shell may inherit SIGINT ignored;
        # Python only installs its handler when it is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt_while_connected(proc, port):
    """Connects, echoes once, sends SIGINT; the close code the client
    gets."""
    async def talk():
        async with websockets.connect("ws://127.0.0.1:%d/" % port) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            proc.send_signal(signal.SIGINT)
            await ws.wait_closed()
            return ws.close_code
    return run(talk())


def finish(proc):
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("the server did not exit after SIGINT:\n" + err)
    return proc.returncode, out, err


@pytest.mark.parametrize("mode", ["run", "thread", "thread-no-close"])
def test_sigint_stops_the_server_with_close_1001(mode):
    proc = start(["-c", SERVER, mode])
    ready = proc.stdout.readline().split()
    assert ready[:1] == ["ready"], proc.stderr.read()
    assert interrupt_while_connected(proc, int(ready[1])) == 1001
    status, out, err = finish(proc)
    # The KeyboardInterrupt went up to the interpreter, which exits
    # "killed by SIGINT" as a shell expects; no handler crashed on the way.
    assert status == -signal.SIGINT, err
    assert "KeyboardInterrupt" in err
    assert "ended shutdown" in out.splitlines()
    assert "crash" not in out and "Error" not in err


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigint_stops_the_readme_example():
    port = free_port()
    proc = start([README_ECHO, str(port)])

    async def talk():
        for _ in range(TIMEOUT * 20):  # until the program listens
            try:
                ws = await websockets.connect("ws://127.0.0.1:%d/" % port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the README example never listened")
        await ws.send("hello")
        assert await ws.recv() == "hello"
        proc.send_signal(signal.SIGINT)
        await ws.wait_closed()
        return ws.close_code

    assert run(talk()) == 1001
    status, _, err = finish(proc)
    assert status == -signal.SIGINT, err
