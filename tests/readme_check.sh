#!/bin/bash
# Each fenced code block in README.md preceded by a line
# "<!-- file: PATH -->" must equal PATH byte for byte, so the programs the
# README shows are the ones the tests build and run.
set -euo pipefail
cd "$1"
checked=0
while read -r path; do
  block=$(awk -v marker="<!-- file: $path -->" '
    $0 == marker { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    found && inside { print }' README.md)
  if [ "$block" != "$(cat "$path")" ]; then
    echo "README.md block for $path differs from the file:"
    diff <(printf '%s\n' "$block") "$path" || true
    exit 1
  fi
  checked=$((checked + 1))
done < <(sed -n 's/^<!-- file: \(.*\) -->$/\1/p' README.md)
[ "$checked" -ge 3 ] || { echo "expected at least 3 README programs, found $checked"; exit 1; }
echo "$checked README programs match their files"
