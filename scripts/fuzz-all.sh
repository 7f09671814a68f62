#!/usr/bin/env bash
# Runs every Fuzz* target in the module for $FUZZTIME each (default 60s).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-60s}
status=0
while read -r file; do
  pkg=./$(dirname "$file")
  for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "fuzz $pkg $fn ($FUZZTIME)"
    if ! go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/fuzz-$$.log 2>&1; then
      cat /tmp/fuzz-$$.log
      status=1
    fi
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | grep -v node_modules | sort)
rm -f /tmp/fuzz-$$.log
exit $status
