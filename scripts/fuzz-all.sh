#!/usr/bin/env bash
# Runs every Fuzz* target in the module for $FUZZTIME each (default 60s).
# FUZZTIME may be a duration (60s) or an execution count (3000x). A count is what
# CI uses: a duration makes Go's fuzz coordinator race its own deadline, and on a
# loaded machine a target can fail with a bare "context deadline exceeded" that
# found nothing. FUZZMINIMIZETIME bounds the minimisation of each new input the
# same way (Go's default is 60s per input).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-60s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-60s}
status=0
while read -r file; do
  pkg=./$(dirname "$file")
  for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "fuzz $pkg $fn ($FUZZTIME)"
    if ! go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" >/tmp/fuzz-$$.log 2>&1; then
      cat /tmp/fuzz-$$.log
      status=1
    fi
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | grep -v node_modules | sort)
rm -f /tmp/fuzz-$$.log
exit $status
