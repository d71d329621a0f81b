#!/usr/bin/env python3
"""Issue 14's benchmark: the same asyncio application code
(bench/python/apps.py) on websockets 10.4 and on lariat.asyncio, in the
same run, driven by bench/loadgen from another process:

  echo       loadgen small16: 100 connections, 16 messages of 32 B in
             flight each, every echo verified
  broadcast  loadgen fanout: 1,000 connections, one publishes 64 B text
             with 16 of its own copies in flight (the depth of bench/run's
             fanout figure), the server's Python handler broadcast()s each
             message to all 1,000 (websockets.broadcast /
             lariat.asyncio.broadcast); every delivery verified, in order
  topic      the broadcast through lariat's topics (ws.subscribe,
             server.publish): lariat only, for scale

Figures are loadgen's: messages per second (deliveries, for the
broadcast) and per CPU-second of the whole server process (utime + stime
of all its threads, from /proc). Prints one line per run, then the ratios.

  bench/python/run.py [--build-dir build] [--seconds 5] [--warmup 1]
                      [--only echo,broadcast,topic] [--json]
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PYTHON = "/usr/bin/python3"  # Debian's, with python3-websockets


def serve(lib, app, port, env):
    p = subprocess.Popen([PYTHON, os.path.join(HERE, "apps.py"), lib, app,
                          str(port)], stdout=subprocess.PIPE, env=env,
                         universal_newlines=True)
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        raise SystemExit("%s %s server did not start" % (lib, app))
    return p


def load(loadgen, pattern, port, pid, seconds, warmup):
    cmd = [loadgen, "--pattern", pattern, "--port", str(port), "--seconds",
           str(seconds), "--warmup", str(warmup), "--server-pid", str(pid),
           "--json"]
    if pattern == "fanout":
        cmd += ["--conns", "1000", "--publishers", "1", "--inflight", "16"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE,
                         universal_newlines=True)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit("loadgen failed (%d): %s" % (out.returncode,
                                                      out.stdout))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--only", default="echo,broadcast,topic")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    build = os.path.abspath(a.build_dir)
    loadgen = os.path.join(build, "bench", "loadgen")
    env = dict(os.environ)
    # The build tree's binding, unless lariat is installed (pip).
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(build, "bindings", "python"),
         os.path.join(ROOT, "bindings", "python")])
    runs = [("echo", "small16", "websockets"), ("echo", "small16", "lariat"),
            ("broadcast", "fanout", "websockets"),
            ("broadcast", "fanout", "lariat"),
            ("topic", "fanout", "lariat")]
    only = a.only.split(",")
    results = {}
    port = 18600
    for app, pattern, lib in runs:
        if app not in only:
            continue
        port += 1
        server = serve(lib, app, port, env)
        try:
            r = load(loadgen, pattern, port, server.pid, a.seconds,
                     a.warmup)
        finally:
            server.kill()
            server.wait()
        if r.get("status") != "ok":
            raise SystemExit("%s on %s: %s" % (app, lib, r))
        results[(app, lib)] = r
        print("%-9s %-10s %10.0f msgs/s %10.0f msgs/CPU-s  (server CPU "
              "%.2f s in %.1f s)" % (app, lib, r["msgs_per_s"],
                                     r["msgs_per_cpu_s"] or 0,
                                     r["server_cpu_s"] or 0,
                                     r["window_s"]), flush=True)
        time.sleep(0.5)
    ratios = {}
    for app in ("echo", "broadcast", "topic"):
        mine, theirs = results.get((app, "lariat")), \
            results.get(("echo" if app == "echo" else "broadcast",
                         "websockets"))
        if mine and theirs and mine is not theirs:
            ratios[app] = (mine["msgs_per_s"] / theirs["msgs_per_s"],
                           mine["msgs_per_cpu_s"] / theirs["msgs_per_cpu_s"])
            print("%-9s lariat.asyncio / websockets: %.2fx msgs/s, %.2fx "
                  "msgs/CPU-s%s" % (app, ratios[app][0], ratios[app][1],
                                    " (topic vs websockets' broadcast)"
                                    if app == "topic" else ""))
    if a.json:
        print(json.dumps({"%s/%s" % k: v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
