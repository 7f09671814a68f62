#!/usr/bin/env bash
# perf-local.sh: the original's k8s performance test on one machine.
# Starts a broker, `chronik gateway` and `chronik drain`, runs `chronik
# loadtest`, and writes a results folder like the original's run-all.sh:
# summary.txt, loadtest.json, gateway-metrics.json, drain-metrics.json,
# broker-metrics.txt (Prometheus), and every process's log. It then checks
# that what the load generator counts as produced equals what the drain
# consumed and what the broker stored.
#
# Usage: scripts/perf-local.sh [loadtest flags...]
#   e.g. scripts/perf-local.sh --profile stress --vu-scale 0.02 --time-scale 0.15
# Environment: ACKS (gateway acks, default all), WAL_PROFILE (high),
# PRODUCE_PROFILE (high-throughput), PARTITIONS (3), OUT (results folder).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ACKS=${ACKS:-all}
WAL_PROFILE=${WAL_PROFILE:-high}
PRODUCE_PROFILE=${PRODUCE_PROFILE:-high-throughput}
PARTITIONS=${PARTITIONS:-3}
OUT=${OUT:-$ROOT/bench-results/perf-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
BIN=$ROOT/.cache/perf/chronik
mkdir -p "$(dirname "$BIN")"
go build -o "$BIN" ./cmd/chronik
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "nothing answers at $1" >&2; return 1; }
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

KP=$(port) MP=$(port) GP=$(port) DP=$(port)
echo "== broker :$KP (metrics :$MP), WAL $WAL_PROFILE, produce profile $PRODUCE_PROFILE" >&2
"$BIN" server --data-dir "$OUT/data" --bind "127.0.0.1:$KP" --metrics-bind "127.0.0.1:$MP" --wal-profile "$WAL_PROFILE" \
	--produce-profile "$PRODUCE_PROFILE" --num-partitions "$PARTITIONS" >"$OUT/chronik-server.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$MP/readyz"
"$BIN" topic create perf-test -p "$PARTITIONS" -b "127.0.0.1:$KP" >/dev/null
echo "== gateway :$GP (acks=$ACKS), drain :$DP" >&2
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KP KAFKA_TOPIC=perf-test LISTEN_PORT=127.0.0.1:$GP KAFKA_ACKS=$ACKS \
	"$BIN" gateway >"$OUT/gateway.log" 2>&1 &
PIDS+=($!)
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KP KAFKA_TOPIC=perf-test LISTEN_PORT=127.0.0.1:$DP \
	"$BIN" drain >"$OUT/drain.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$GP/health"
wait_http "http://127.0.0.1:$DP/health"

echo "== loadtest $*" >&2
set +e
"$BIN" loadtest --url "http://127.0.0.1:$GP" --json-output "$OUT/loadtest.json" --report-interval-secs 10 "$@" 2> >(tee "$OUT/loadtest.log" >&2) | tee "$OUT/loadtest-summary.txt"
LT=$?
set -e

# Let fired records land and the drain catch up (at most 2 minutes).
PRODUCED=$(python3 -c "import json;print(json.load(open('$OUT/loadtest.json'))['messages'])" 2>/dev/null || echo 0)
for _ in $(seq 1200); do
	P=$(curl -s "http://127.0.0.1:$GP/metrics" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["fire_pending"])')
	C=$(curl -s "http://127.0.0.1:$DP/metrics" | python3 -c 'import json,sys; print(json.load(sys.stdin)["consumed"])')
	[ "$P" = 0 ] && [ "$C" -ge "$PRODUCED" ] && break
	sleep 0.1
done
curl -s "http://127.0.0.1:$GP/metrics" >"$OUT/gateway-metrics.json"
curl -s "http://127.0.0.1:$GP/metrics/prometheus" >"$OUT/gateway-metrics.prom"
curl -s "http://127.0.0.1:$DP/metrics" >"$OUT/drain-metrics.json"
curl -s "http://127.0.0.1:$DP/metrics/prometheus" >"$OUT/drain-metrics.prom"
curl -s "http://127.0.0.1:$MP/metrics" >"$OUT/broker-metrics.txt"
"$BIN" topic describe perf-test -b "127.0.0.1:$KP" -o json >"$OUT/topic.json"
STORED=$(python3 -c "import json;print(sum(p['end_offset'] for p in json.load(open('$OUT/topic.json'))[0]['partitions']))")

set +e
python3 - "$OUT" "$PRODUCED" "$STORED" "$(nproc)" <<'PY' | tee "$OUT/summary.txt"
import json, sys
out, produced, stored, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lt = json.load(open(f"{out}/loadtest.json"))
gw = json.load(open(f"{out}/gateway-metrics.json"))
dr = json.load(open(f"{out}/drain-metrics.json"))
l = lt["batch_latency"]
print(f"profile {lt['profile']} via {lt['route']}, up to {lt['max_vus']} VUs, {lt['duration_secs']:.0f} s")
print(f"load generator: {lt['requests']} requests, {lt['messages']} messages, {lt['errors']} errors, {lt['throttled']} throttled (retried)")
print(f"  {lt['msg_per_sec']:.0f} msg/s = {lt['msg_per_sec']/cores:.0f} msg/s per core ({cores} cores shared by broker, gateway, drain and load generator)")
print(f"  batch latency p50 {l['p50_us']/1000:.1f} ms, p90 {l['p90_us']/1000:.1f} ms, p95 {l['p95_us']/1000:.1f} ms, max {l['max_us']/1000:.1f} ms")
print(f"gateway: {gw['produced']} acknowledged, {gw['errors']} failed, {gw['rejected_batches']} batches refused (429)")
print(f"drain: {dr['consumed']} consumed, {dr['errors']} errors, end-to-end p50 {dr['e2e_p50_ms']:.1f} ms, p99 {dr['e2e_p99_ms']:.1f} ms")
print(f"broker: {stored} records stored")
ok = produced == stored == dr["consumed"] == gw["produced"] and lt["errors"] == 0 and gw["errors"] == 0
print("CHECK " + ("PASSED" if ok else "FAILED") + f": produced {produced}, gateway acknowledged {gw['produced']}, stored {stored}, consumed {dr['consumed']}")
sys.exit(0 if ok else 1)
PY
CHECK=${PIPESTATUS[0]}
set -e
echo "== results in $OUT" >&2
rm -rf "$OUT/data"
exit $(( LT != 0 ? LT : CHECK ))
