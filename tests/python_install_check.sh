#!/bin/bash
# Issue 14, item 1: installs lariat into a scratch prefix, then
# `pip install`s the Python binding from a copy of bindings/python into a
# fresh venv (--system-site-packages for Debian's cffi; offline, so
# --no-build-isolation), deletes the copy and pip's build directory, and
# runs an asyncio echo server and client from the installed package, from
# a directory where nothing of the source or build tree is importable.
# Then the same through the LARIAT_INSTALL_PYTHON install rule.
set -euo pipefail
build_dir=$1
source_dir=$2
python=${3:-/usr/bin/python3}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix
cmake --install "$build_dir" --prefix "$prefix" > /dev/null
libdir=$(dirname "$(find "$prefix" -name liblariat.so | head -n1)")
unset PYTHONPATH

"$python" -m venv --system-site-packages "$scratch/venv"
cp -r "$source_dir/bindings/python" "$scratch/src"
rm -rf "$scratch/src/build" "$scratch/src"/*.egg-info
PKG_CONFIG_PATH=$libdir/pkgconfig "$scratch/venv/bin/pip" install -q \
  --no-build-isolation --no-index --no-cache-dir "$scratch/src"
rm -rf "$scratch/src"

module=$(find "$scratch/venv" -name '_lariat*.so' | head -n1)
[ -n "$module" ] || { echo "pip installed no _lariat module"; exit 1; }
# The module finds liblariat through its RUNPATH, which names the prefix.
readelf -d "$module" | grep -E 'R(UN)?PATH' | grep -qF "$libdir" || {
  echo "$module has no RUNPATH to $libdir:"; readelf -d "$module"; exit 1; }
if readelf -d "$module" | grep -E 'R(UN)?PATH' | grep -qF "$build_dir"; then
  echo "$module still points into the build tree"; exit 1
fi

cat > "$scratch/smoke.py" <<'PY'
import asyncio
import sys

import lariat
from lariat.asyncio import connect, serve

assert "/venv/" in lariat.__file__, lariat.__file__


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    async with serve(echo, "127.0.0.1", 0) as server:
        url = "ws://127.0.0.1:%d/" % server.port
        async with connect(url) as ws:
            for m in ("hello", b"\x00bytes"):
                await ws.send(m)
                assert await ws.recv() == m
    print("lariat %s from %s: asyncio echo ok" % (lariat.version(),
                                                  lariat.__file__))

asyncio.run(asyncio.wait_for(main(), 20))
PY
(cd "$scratch" && "$scratch/venv/bin/python" smoke.py)

# cmake --install with -DLARIAT_INSTALL_PYTHON=ON puts the package next
# to the library, with a RUNPATH relative to its own place.
pydir=$(find "$prefix" -path '*/dist-packages/lariat/__init__.py' | head -n1)
if [ -n "$pydir" ]; then
  site=$(dirname "$(dirname "$pydir")")
  sed -i 's|assert "/venv/" in|assert "/prefix/" in|' "$scratch/smoke.py"
  (cd "$scratch" && PYTHONPATH=$site "$python" smoke.py)
fi
echo "pip install into a fresh venv, RUNPATH and asyncio echo: ok"
