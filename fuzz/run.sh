#!/bin/bash
# Builds the libFuzzer targets in build-fuzz/ at the repo root and runs
# each one for N seconds (default 60), one after the other: the machine is
# shared. Each run starts from a copy of the committed corpus (the copy
# grows; fuzz/corpus/ is only read) and writes crashes to
# build-fuzz/artifacts/<target>/.
#
# Exits non-zero if any target crashed, leaked, tripped a sanitizer or a
# CHECK, or timed out. Prints per target: executions, exec/s, coverage
# (cov: and ft: of libFuzzer's final line) and corpus size.
#
#   fuzz/run.sh [seconds-per-target]
# Environment: FUZZ_TARGETS="fuzz_handshake ..." to run a subset;
# CC/CXX (default clang-14/clang++-14).
set -uo pipefail
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
targets=${FUZZ_TARGETS:-fuzz_handshake fuzz_extensions fuzz_connection fuzz_response}

cmake -S "$root/fuzz" -B "$build" -DCMAKE_C_COMPILER="${CC:-clang-14}" \
  -DCMAKE_CXX_COMPILER="${CXX:-clang++-14}" >/dev/null || exit 1
cmake --build "$build" -j"$(nproc)" >/dev/null || {
  cmake --build "$build" -j1  # again, for a readable error
  exit 1
}

# Symbolized sanitizer stacks: Debian's llvm-14 ships only the versioned
# llvm-symbolizer, which the sanitizers do not look for.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && ! command -v llvm-symbolizer >/dev/null &&
   [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
  export UBSAN_SYMBOLIZER_PATH=$ASAN_SYMBOLIZER_PATH
fi

failed=0
summary=()
for t in $targets; do
  seeds=$root/fuzz/corpus/$t
  work=$build/corpus/$t
  artifacts=$build/artifacts/$t
  log=$build/logs/$t.log
  rm -rf "$work" "$artifacts"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  cp "$seeds"/* "$work"/ 2>/dev/null
  dict=()
  [ -f "$root/fuzz/${t#fuzz_}.dict" ] && dict=(-dict="$root/fuzz/${t#fuzz_}.dict")
  echo "== $t: ${secs}s" >&2
  # UBSan already aborts (-fno-sanitize-recover); its stack helps triage.
  UBSAN_OPTIONS=print_stacktrace=1 "$build/$t" -max_total_time="$secs" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${dict[@]}" "$work" "$seeds" \
    >"$log" 2>&1
  rc=$?
  # Belt and braces: a report in the log fails the run whatever the exit.
  if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|CHECK failed|SUMMARY: ' "$log"; then
    failed=1
    echo "!! $t FAILED (exit $rc); log: $log" >&2
    grep -m20 -E 'ERROR|runtime error|CHECK failed|SUMMARY|^    #[0-9]+ ' "$log" >&2
    ls "$artifacts" >&2
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$done_line")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  files=$(find "$work" -type f | wc -l)
  kib=$(find "$work" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s / 1024}')
  summary+=("$(printf '%-16s %10s %7s %6s %7s %7s %9s %12s %6s  %s' "$t" \
    "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$files" "${kib}KiB" \
    "${corp:-?}" "${rss:-?}" "$([ $rc -eq 0 ] && echo ok || echo FAIL)")")
done

# corpus: files and bytes in the grown copy; corp: libFuzzer's own count
# of the inputs that add coverage.
printf '%-16s %10s %7s %6s %7s %7s %9s %12s %6s\n' target execs exec/s \
  cov ft files size corp: rss_mb
printf '%s\n' "${summary[@]}"
exit $failed
