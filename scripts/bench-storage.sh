#!/usr/bin/env bash
# Storage benchmark report for docs/PERFORMANCE.md: raw disk (before and
# after) next to BenchmarkAppend, all in one run on one file system.
#   scripts/bench-storage.sh            # prints the report
#   BENCHTIME=3s ROUNDS=5 scripts/bench-storage.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-2s}
ROUNDS=${ROUNDS:-3}
out=$(mktemp)
paired=$(mktemp)
trap 'rm -f "$out" "$paired"' EXIT
echo "storage benchmarks in $(df -h "${TMPDIR:-/tmp}" | awk 'NR==2{print $1" ("$2")"}'), benchtime $BENCHTIME" >&2
go test -run '^$' -bench 'BenchmarkRawDisk' -benchtime "$BENCHTIME" ./internal/storage | tee -a "$out" >&2
go test -run '^$' -bench 'BenchmarkAppend/' -benchtime "$BENCHTIME" -timeout 60m ./internal/storage | tee -a "$out" >&2
go test -run '^$' -bench 'BenchmarkRawDisk' -benchtime "$BENCHTIME" ./internal/storage | tee -a "$out" >&2
# Goals (a) and (c) compare Chronik with the raw disk, and this kind of virtual
# disk's rate can change by 2x within minutes. So they are also measured
# bracketed: raw, Chronik, raw, Chronik, ... raw; each round's ratio is taken
# against the mean of the raw runs just before and just after it.
pbench() { go test -run '^$' -bench "$1" -benchtime "$BENCHTIME" ./internal/storage | tee -a "$paired" >&2; }
raw_pair() { pbench 'BenchmarkRawDisk/(seq-1MiB-fdatasync|append-300B-fdatasync)$'; }
for _ in $(seq "$ROUNDS"); do
  raw_pair
  pbench 'BenchmarkAppend/profile=high/writers=128/partitions=(1|16|256)$/size=16384$'
  pbench 'BenchmarkAppend/profile=low/writers=1$/partitions=(1|16)$/size=256$'
done
raw_pair
fs=$(df -T "${TMPDIR:-/tmp}" | awk 'NR==2{print $2}')
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r), $fs on $(df "${TMPDIR:-/tmp}" | awk 'NR==2{print $1}'), $(go version | awk '{print $3}'), $(date -u +%Y-%m-%d). Command: \`scripts/bench-storage.sh\` (benchtime $BENCHTIME, $ROUNDS bracketed rounds for (a) and (c))."
echo
go run ./scripts/benchreport -paired "$paired" < "$out"
