#!/bin/bash
# Every function lariat.h declares is reachable from the C++ wrapper: named
# in cpp/lariat.hpp outside comments, or listed in not_wrapped.txt with the
# reason. Listed names must be declared and unused, so the list stays true.
# Usage: check_wrapped.sh CXX lariat.h lariat.hpp not_wrapped.txt
set -euo pipefail
cxx=$1 header=$2 hpp=$3 list=$4
declared=$(tr '\n' ' ' < "$header" | grep -o 'LARIAT_EXTERN[^(;]*(' \
  | grep -o 'lariat_[a-z0-9_]*($' | tr -d '(' | sort -u)
# -fpreprocessed strips comments without expanding anything.
used=$("$cxx" -x c++ -fpreprocessed -dD -E -P "$hpp" \
  | grep -o '\blariat_[a-z0-9_]*\b' | sort -u)
listed=$(grep -v '^#' "$list" | awk 'NF { print $1 }' | sort -u)
missing=$(comm -23 <(printf '%s\n' "$declared") \
  <(printf '%s\n' "$used" "$listed" | sort -u))
stale_used=$(comm -12 <(printf '%s\n' "$listed") <(printf '%s\n' "$used"))
stale_gone=$(comm -23 <(printf '%s\n' "$listed") <(printf '%s\n' "$declared"))
no_reason=$(grep -v '^#' "$list" | awk 'NF == 1 { print $1 }')
status=0
report() { if [ -n "$2" ]; then echo "$1:"; echo "$2"; status=1; fi; }
report "declared in lariat.h, not wrapped by lariat.hpp nor listed" "$missing"
report "listed as not wrapped, but lariat.hpp uses it" "$stale_used"
report "listed as not wrapped, but not declared" "$stale_gone"
report "listed without a reason" "$no_reason"
[ "$status" = 0 ] && echo "$(printf '%s\n' "$declared" | wc -l) functions: all wrapped or listed"
exit "$status"
