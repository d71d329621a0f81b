#!/bin/bash
# <lariat/lariat.hpp> under C++14 fails with one line saying why, not with
# a hundred errors from the C++17 code. Usage: check_cxx14.sh CXX -I...
set -uo pipefail
cxx=$1; shift
src=$(mktemp --suffix=.cc)
trap 'rm -f "$src"' EXIT
echo '#include <lariat/lariat.hpp>' > "$src"
if out=$("$cxx" -std=c++14 -fsyntax-only "$@" "$src" 2>&1); then
  echo "lariat.hpp compiled under -std=c++14"; exit 1
fi
# One diagnostic, the #error (GCC quotes "#error ...", clang only the text).
errors=$(printf '%s\n' "$out" | grep 'error:')
if [ "$(printf '%s\n' "$errors" | wc -l)" != 1 ] ||
   ! printf '%s\n' "$errors" | grep -q '"lariat.hpp needs C++17"$'; then
  echo "expected exactly one error, \"lariat.hpp needs C++17\"; got:"
  printf '%s\n' "$out"; exit 1
fi
echo "C++14: $errors"
