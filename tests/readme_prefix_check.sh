#!/bin/bash
# Issue 14, item 5: examples/readme/prefix.sh, which the README shows, run
# as written against a scratch prefix; then the programs it installed and
# built serve from there (no LD_LIBRARY_PATH, no PYTHONPATH), and the
# README's asyncio echo runs from its venv.
set -euo pipefail
build_dir=$1
source_dir=$2
scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT
unset PYTHONPATH LD_LIBRARY_PATH
# python3 in the script means Debian's (PATH may start with a pyenv shim).
mkdir "$scratch/path" && ln -s /usr/bin/python3 "$scratch/path/python3"
# pip builds in the tree it is given: a copy, so the checkout stays clean.
mkdir "$scratch/src"
cp -r "$source_dir/examples" "$source_dir/bindings" "$scratch/src/"
rm -rf "$scratch/src/bindings/python/build"
(cd "$scratch/src" && PATH=$scratch/path:$PATH PREFIX=$scratch/prefix \
  BUILD=$build_dir bash -e examples/readme/prefix.sh > "$scratch/log" 2>&1) ||
  { cat "$scratch/log"; exit 1; }
rm -rf "$scratch/src"
prefix=$scratch/prefix

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo_check() {  # PORT: text and binary come back
  /usr/bin/python3 - "$1" <<'PY'
import asyncio, sys, websockets
async def main():
    url = "ws://127.0.0.1:%s/" % sys.argv[1]
    for _ in range(100):
        try:
            ws = await websockets.connect(url)
            break
        except OSError:
            await asyncio.sleep(0.05)
    for m in ("hello", b"\x00\x01"):
        await ws.send(m)
        assert await ws.recv() == m
    await ws.close()
asyncio.run(asyncio.wait_for(main(), 20))
PY
}

for cmd in "$prefix/bin/readme-echo PORT" \
           "$prefix/bin/lariat-echo --host 127.0.0.1 --port PORT" \
           "$prefix/venv/bin/python $source_dir/examples/readme/echo.py PORT"; do
  port=$(free_port)
  ${cmd//PORT/$port} > /dev/null 2>&1 &
  pids+=($!)
  echo_check "$port"
  echo "ok: ${cmd//PORT/$port}"
done
for tool in lariat-cat lariat-chat; do
  [ -x "$prefix/bin/$tool" ] || { echo "$tool not installed"; exit 1; }
  if ldd "$prefix/bin/$tool" | grep -q 'liblariat.*not found'; then
    echo "$tool does not find liblariat.so"; exit 1
  fi
done
echo "README prefix install: tools, C, Python asyncio: ok"
