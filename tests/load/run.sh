#!/bin/bash
# Runs soak_server and soak_client together and checks both (issue #6).
#
#   run.sh --server PATH --client PATH [--short | --long] [--asan]
#          [--conns N] [--seconds S] [--close-timeout MS]
#          [--handshake-timeout MS] [--ping-ms MS] [--stop ctl|sigterm]
#          [--seed N]
#          [--keep DIR] [--server-arg ARG]... [-- extra soak_client arguments]
#
#   --short  5000 connections, 10 s of traffic (the CTest form, ~30 s)
#   --long   10000 connections, 60 s of traffic (by hand)
#   --asan   the binaries are AddressSanitizer builds: wider time margins
#
# Starts soak_server on port 0, reads "PORT n" from it, runs soak_client
# against it (the client asks the server to stop), waits for both with
# bounds, then matches the server's per-connection report against the
# client's: on every echo connection each message the server echoed
# (lariat_reply returned 0) must have reached the client, and no message
# may have been handled that the client did not send. Exit status 0 only
# when both programs exit 0 and the reports agree.
set -u

server= client= preset=short asan=0 conns= seconds= close_timeout=5000
handshake_timeout=3000 ping_ms=2000 stop=ctl seed= keep= extra=() server_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server=$2; shift 2 ;;
    --client) client=$2; shift 2 ;;
    --short) preset=short; shift ;;
    --long) preset=long; shift ;;
    --asan) asan=1; shift ;;
    --conns) conns=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --close-timeout) close_timeout=$2; shift 2 ;;
    --handshake-timeout) handshake_timeout=$2; shift 2 ;;
    --ping-ms) ping_ms=$2; shift 2 ;;
    --stop) stop=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --server-arg) server_args+=("$2"); shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$server" ] || [ -z "$client" ]; then
  echo "usage: run.sh --server PATH --client PATH [--short|--long] ..." >&2
  exit 2
fi
if [ "$preset" = long ]; then
  : "${conns:=10000}" "${seconds:=60}"
else
  : "${conns:=5000}" "${seconds:=10}"
fi
: "${seed:=$(( $(date +%s%N) % 1000000007 ))}"
margin=2000      # the server must be gone close timeout + this after stop
client_margin=4000
if [ "$asan" = 1 ]; then
  margin=4000
  client_margin=8000
fi

if [ -n "$keep" ]; then
  work=$keep
  mkdir -p "$work"
else
  work=$(mktemp -d /tmp/lariat-soak.XXXXXX)
fi
spid=
cleanup() {
  if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
    kill -KILL "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
  fi
  [ -z "$keep" ] && rm -rf "$work"
}
trap cleanup EXIT

echo "run.sh: $preset form, $conns connections, ${seconds} s, stop by $stop," \
     "close timeout $close_timeout ms, seed $seed, files in $work"

# glibc's tcache holds freed chunks that mallinfo2() counts as in use: off,
# so the server's heap accounting is exact (see soak_server.c).
GLIBC_TUNABLES=${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.tcache_count=0 \
"$server" --port 0 --close-timeout "$close_timeout" \
  --handshake-timeout "$handshake_timeout" --shutdown-margin "$margin" \
  --ping-ms "$ping_ms" \
  --slots $((conns + 64)) --report "$work/server.report" \
  --max-seconds $(( ${seconds%.*} + 300 )) "${server_args[@]}" \
  >"$work/server.out" 2>"$work/server.err" &
spid=$!

port=
for _ in $(seq 100); do
  port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$work/server.out")
  [ -n "$port" ] && break
  kill -0 "$spid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "run.sh: FAIL: soak_server did not print its port" >&2
  cat "$work/server.out" "$work/server.err" >&2
  exit 1
fi

# The client bounds itself; timeout(1) is the last resort.
client_bound=$(( ${seconds%.*} + 200 ))
timeout -k 5 "$client_bound" "$client" --port "$port" --conns "$conns" \
  --seconds "$seconds" --close-timeout "$close_timeout" \
  --handshake-timeout "$handshake_timeout" --margin-ms "$client_margin" \
  --stop "$stop" --server-pid "$spid" --seed "$seed" \
  --report "$work/client.report" "${extra[@]}" \
  >"$work/client.out" 2>"$work/client.err"
crc=$?
t_client_end=$(date +%s%N)

# The server stopped when the client asked; it must now be gone (the client
# already waited for the close timeout). Allow the margin, then a little.
src=
deadline=$(( t_client_end + (margin + 10000) * 1000000 ))
while kill -0 "$spid" 2>/dev/null && [ "$(date +%s%N)" -lt "$deadline" ]; do
  sleep 0.1
done
if kill -0 "$spid" 2>/dev/null; then
  echo "run.sh: FAIL: soak_server still runs $(( margin / 1000 + 10 )) s after the client ended" >&2
  kill -TERM "$spid"
  sleep 2
  kill -KILL "$spid" 2>/dev/null
fi
wait "$spid"
src=$?
spid=

echo "---- soak_client (exit $crc)"
cat "$work/client.out"
[ -s "$work/client.err" ] && sed 's/^/client stderr: /' "$work/client.err"
echo "---- soak_server (exit $src)"
grep -v '^PORT ' "$work/server.out"
[ -s "$work/server.err" ] && sed 's/^/server stderr: /' "$work/server.err"

# Per connection: the server's "slot role received replied kind" against the
# client's "slot role sent echoed".
check=ok
if [ ! -s "$work/server.report" ] || [ ! -s "$work/client.report" ]; then
  echo "run.sh: FAIL: a per-connection report is missing" >&2
  check=fail
else
  if ! awk '
    NR == FNR { role[$1] = $2; recv[$1] = $3; repl[$1] = $4; kind[$1] = $5 " " $6; next }
    {
      slot = $1; n++
      if (!(slot in role)) { bad++; if (bad <= 20) printf "slot %s (%s): no terminate on the server\n", slot, $2; next }
      if (role[slot] != $2) { bad++; if (bad <= 20) printf "slot %s: role %s on the client, %s on the server\n", slot, $2, role[slot]; next }
      sent = $3; echoed = $4
      if (recv[slot] > sent) { bad++; if (bad <= 20) printf "slot %s (%s): server handled %d messages, client sent %d\n", slot, $2, recv[slot], sent }
      if ($2 == "echo" && repl[slot] != echoed) { bad++; lost += repl[slot] - echoed; if (bad <= 20) printf "slot %s (echo): server echoed %d messages, client received %d\n", slot, repl[slot], echoed }
      if ($2 == "noread" && echoed > repl[slot]) { bad++; if (bad <= 20) printf "slot %s (noread): client received %d echoes, server sent %d\n", slot, echoed, repl[slot] }
      if ($2 == "echo") { tot_sent += sent; tot_handled += recv[slot]; tot_echoed += echoed }
      delete role[slot]
    }
    END {
      for (s in role) { bad++; if (bad <= 20) printf "slot %s (%s): on the server, not on the client\n", s, role[s] }
      printf "reports: %d persistent connections matched; echo connections: %d messages sent, %d handled and echoed by the server before the stop, all %d received; %d not handled (arrived after the stop); mismatches %d\n", n, tot_sent, tot_handled, tot_echoed, tot_sent - tot_handled, bad + 0
      exit bad > 0
    }' "$work/server.report" "$work/client.report"; then
    check=fail
  fi
fi

sline=$(grep '^SOAK_SERVER_RESULT' "$work/server.out" | tail -1)
cline=$(grep '^SOAK_CLIENT_RESULT' "$work/client.out" | tail -1)
get() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
s_ws_stop=$(get "$sline" ws_open_at_stop)
c_ws_stop=$(get "$cline" ws_open_at_stop)
if [ -n "$s_ws_stop" ] && [ "$s_ws_stop" != "$c_ws_stop" ]; then
  echo "run.sh: FAIL: WebSocket connections open at the stop: server $s_ws_stop, client $c_ws_stop" >&2
  check=fail
fi

echo "==== summary ($preset, seed $seed)"
echo "connections: $conns slots, held at peak $(get "$cline" held_peak) (server peak $(get "$sline" conns_peak) sockets), open at stop $c_ws_stop"
echo "messages: sent $(get "$cline" msgs_sent), echoed $(get "$cline" echoed) ($(get "$cline" echo_bytes) bytes), lost $(get "$cline" lost), corrupt $(get "$cline" corrupt), in flight at stop $(get "$cline" unechoed_at_stop)"
echo "terminates: $(grep -o 'term_[a-z_]*=[0-9]*' <<<"$sline" | tr '\n' ' ')"
echo "server heap: baseline $(get "$sline" heap_base) B, peak $(get "$sline" heap_peak) B, after all connections ended $(get "$sline" heap_end) B, after lariat_server_del $(get "$sline" heap_del) B (before lariat_server_new $(get "$sline" heap_pre) B)"
echo "server RSS: baseline $(get "$sline" rss_base_kb) KiB, peak $(get "$sline" rss_peak_kb) KiB, end $(get "$sline" rss_end_kb) KiB"
echo "shutdown: server loop ended $(get "$sline" shutdown_ms) ms after lariat_server_stop (close timeout $close_timeout ms); last socket ended $(get "$cline" shutdown_ms) ms after the stop request; close 1001 within $(get "$cline" close1001_max_ms) ms"

status=0
[ "$crc" = 0 ] || { echo "run.sh: FAIL: soak_client exited $crc" >&2; status=1; }
[ "$src" = 0 ] || { echo "run.sh: FAIL: soak_server exited $src" >&2; status=1; }
[ "$check" = ok ] || status=1
if [ "$status" = 0 ]; then
  echo "LOAD_SOAK ok"
else
  echo "LOAD_SOAK FAIL (seed $seed; rerun with --seed $seed --keep DIR)"
fi
exit $status
