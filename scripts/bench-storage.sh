#!/usr/bin/env bash
# Storage benchmark report for docs/PERFORMANCE.md: raw disk (before and
# after) next to BenchmarkAppend, all in one run on one file system.
#   scripts/bench-storage.sh            # prints the report
#   BENCHTIME=3s scripts/bench-storage.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-2s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "storage benchmarks in $(df -h "${TMPDIR:-/tmp}" | awk 'NR==2{print $1" ("$2")"}'), benchtime $BENCHTIME" >&2
go test -run '^$' -bench 'BenchmarkRawDisk' -benchtime "$BENCHTIME" ./internal/storage | tee -a "$out" >&2
go test -run '^$' -bench 'BenchmarkAppend/' -benchtime "$BENCHTIME" -timeout 60m ./internal/storage | tee -a "$out" >&2
go test -run '^$' -bench 'BenchmarkRawDisk' -benchtime "$BENCHTIME" ./internal/storage | tee -a "$out" >&2
fs=$(df -T "${TMPDIR:-/tmp}" | awk 'NR==2{print $2}')
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r), $fs on $(df "${TMPDIR:-/tmp}" | awk 'NR==2{print $1}'), $(go version | awk '{print $3}'), $(date -u +%Y-%m-%d). Command: \`scripts/bench-storage.sh\` (benchtime $BENCHTIME)."
echo
go run ./scripts/benchreport < "$out"
