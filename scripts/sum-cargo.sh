#!/usr/bin/env bash
# Sums cargo test's "test result" lines in a log: prints "<suite>: N passed, N failed"
# and fails if anything failed, nothing ran, or cargo reported an error.
set -euo pipefail
suite=$1 log=$2
read -r passed failed < <(awk '/^test result/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p+0, f+0 }' "$log")
echo "$suite: $passed passed, $failed failed"
if [ "$failed" != 0 ] || [ "$passed" = 0 ] || grep -qE '^error(\[|:)' "$log"; then
  grep -E -A20 '^(failures:|error)' "$log" | head -60
  exit 1
fi
