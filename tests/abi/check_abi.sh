#!/bin/bash
# ABI guard. The record docs/abi/lariat-abi-<N>.txt (N = the SONAME's ABI
# version) lists every exported function's prototype, struct offsets and
# enum values. Each line recorded must still hold: a function that
# disappears or changes its prototype, a field that moves or a value that
# changes fails this test unless the ABI version is bumped (and a new
# record written). Additions pass; record them with --write.
#   check_abi.sh LIB HEADER DUMP_PROGRAM RECORD_DIR [--write]
set -euo pipefail
lib=$1 header=$2 dump=$3 record_dir=$4 mode=${5:-check}

soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
abi=${soname##*.so.}
record=$record_dir/lariat-abi-$abi.txt

current=$(mktemp)
trap 'rm -f "$current"' EXIT
{
  # Prototypes, one per line, whitespace normalised.
  tr '\n' ' ' < "$header" | grep -o 'LARIAT_EXTERN [^;#]*;' \
    | sed -e 's/LARIAT_EXTERN //' -e 's/  */ /g' -e 's/( /(/g' \
          -e 's/ )/)/g' | sed 's/^/function /'
  # Exported symbols as the dynamic linker sees them.
  nm -D --defined-only "$lib" | awk '{print "symbol " $3}'
  "$dump"
} | sort -u > "$current"

if [ "$mode" = --write ]; then
  cp "$current" "$record"
  echo "wrote $record ($(wc -l < "$record") lines)"
  exit 0
fi
if [ ! -f "$record" ]; then
  echo "no ABI record for ABI version $abi: run with --write and commit $record"
  exit 1
fi
missing=$(comm -23 <(sort -u "$record") "$current")
if [ -n "$missing" ]; then
  echo "ABI $abi broken: these recorded lines no longer hold (bump"
  echo "LARIAT_ABI_VERSION in CMakeLists.txt and write a new record):"
  echo "$missing"
  exit 1
fi
added=$(comm -13 <(sort -u "$record") "$current" | wc -l)
echo "ABI $abi intact ($(wc -l < "$record") recorded lines; $added additions not yet recorded)"
