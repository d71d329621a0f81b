#!/bin/bash
# Fails if the shared library exports a symbol without the lariat_ prefix,
# or if its exports and the functions the public header declares differ.
set -eu
lib=$1
header=$2
exports=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)
bad=$(printf '%s\n' "$exports" | grep -v '^lariat_' || true)
if [ -n "$bad" ]; then
  echo "exported without the lariat_ prefix:"; echo "$bad"; exit 1
fi
declared=$(tr '\n' ' ' < "$header" | grep -o 'LARIAT_EXTERN[^(;]*(' \
  | grep -o 'lariat_[a-z0-9_]*($' | tr -d '(' | sort -u)
if [ "$exports" != "$declared" ]; then
  echo "exports and header declarations differ:"
  diff <(printf '%s\n' "$declared") <(printf '%s\n' "$exports") || true
  exit 1
fi
echo "$(printf '%s\n' "$exports" | wc -l) symbols, all lariat_*, all declared"
