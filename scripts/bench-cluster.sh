#!/usr/bin/env bash
# bench-cluster.sh: a 3-node cluster (RF 3, min.insync.replicas 2) against
# a standalone broker, side by side in one run on one machine, and the
# cluster's idle cost with many partitions.
#
#   1. acks=all, 256 B, closed loop with 128 messages in flight, then a
#      pipelining client (2,048 in flight): standalone and cluster
#      alternate ROUNDS times (fresh data each time), so drift on this
#      shared machine hits both alike; the report gives each pair's ratio.
#   1b. the same against a 3-node NATS JetStream cluster, R3 file stream,
#      default (lazy) sync, with `nats bench js pub async`, 128 clients:
#      --batch 1 (each client waits for each ack: 128 in flight, the closed
#      loop) and the default --batch 500 (pipelined); once per round, after
#      Chronik's pairs (NATS_R3=0 skips it).
#   2. idle: a cluster with IDLE_PARTITIONS partitions × RF 3: CPU each node
#      uses over 30 s of no traffic, and the time a node takes to serve
#      again after a restart with them.
#
# Usage: scripts/bench-cluster.sh   (DURATION=20 ROUNDS=2 IDLE_PARTITIONS=1000; IDLE_ONLY=1: part 2 only; NATS_R3=0)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-2}
IDLE_PARTITIONS=${IDLE_PARTITIONS:-1000}
OUT=${OUT:-$ROOT/bench-results/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
log() { echo "== $*" >&2; }
go build -o "$OUT/chronik" ./cmd/chronik
CHRONIK=$OUT/chronik
NATS_R3=${NATS_R3:-1}
[ "${IDLE_ONLY:-0}" = 1 ] && NATS_R3=0
TOOLS=$ROOT/.cache/peer-tools
if [ "$NATS_R3" = 1 ]; then
	mkdir -p "$TOOLS"
	# The same versions as scripts/bench-peers.sh, from the Go module proxy.
	[ -x "$TOOLS/nats-server" ] || { log "installing nats-server v2.15.2"; GOBIN=$TOOLS go install github.com/nats-io/nats-server/v2@v2.15.2; }
	[ -x "$TOOLS/nats" ] || { log "installing natscli v0.5.0"; GOBIN=$TOOLS go install github.com/nats-io/natscli/nats@v0.5.0; }
fi
{ echo "date: $(date -u +%FT%TZ)"; echo "cpus: $(nproc)"; grep -m1 'model name' /proc/cpuinfo || true; } >"$OUT/machine.txt"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }
stopall() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }

standalone() { # dir -> sets BROKERS
	local kp mp; kp=$(port); mp=$(port)
	"$CHRONIK" server --data-dir "$1" --bind "127.0.0.1:$kp" --metrics-bind "127.0.0.1:$mp" --wal-profile high --log-level warn >"$1.log" 2>&1 &
	PIDS+=("$!"); wait_port "$kp"; BROKERS=127.0.0.1:$kp
}

cluster() { # dir [extra...] -> sets BROKERS, NODE_PIDS, NODE_ARGS
	local dir=$1; shift
	local k r m peers="" i
	K=(); R=(); M=()
	for i in 1 2 3; do K+=("$(port)"); R+=("$(port)"); M+=("$(port)"); done
	for i in 0 1 2; do peers+="${peers:+,}127.0.0.1:${K[$i]}:${R[$i]}"; done
	NODE_PIDS=(); NODE_ARGS=()
	for i in 0 1 2; do
		local args=(server --data-dir "$dir/node-$((i + 1))" --node-id $((i + 1)) --peers "$peers" --bind "127.0.0.1:${K[$i]}"
			--advertise "127.0.0.1:${K[$i]}" --raft-bind "127.0.0.1:${R[$i]}" --metrics-bind "127.0.0.1:${M[$i]}"
			--wal-profile high --min-insync-replicas 2 --log-level warn "$@")
		"$CHRONIK" "${args[@]}" >"$dir-node-$((i + 1)).log" 2>&1 &
		PIDS+=("$!"); NODE_PIDS+=("$!"); NODE_ARGS+=("${args[*]}")
	done
	for i in 0 1 2; do wait_port "${K[$i]}"; done
	BROKERS=127.0.0.1:${K[0]},127.0.0.1:${K[1]},127.0.0.1:${K[2]}
}

nats_cluster() { # dir -> sets NATS_URL; three JetStream servers in one cluster
	local dir=$1 i j routes
	NP=(); NC=()
	for i in 1 2 3; do NP+=("$(port)"); NC+=("$(port)"); done
	for i in 0 1 2; do
		routes=""
		for j in 0 1 2; do [ "$j" != "$i" ] && routes+="${routes:+, }nats-route://127.0.0.1:${NC[$j]}"; done
		mkdir -p "$dir/n$((i + 1))"
		cat >"$dir/n$((i + 1)).conf" <<CONF
server_name: n$((i + 1))
listen: 127.0.0.1:${NP[$i]}
jetstream { store_dir: "$dir/n$((i + 1))" }
cluster { name: bench, listen: 127.0.0.1:${NC[$i]}, routes: [$routes] }
CONF
		"$TOOLS/nats-server" -c "$dir/n$((i + 1)).conf" >"$dir/n$((i + 1)).log" 2>&1 &
		PIDS+=("$!")
	done
	for i in 0 1 2; do wait_port "${NP[$i]}"; done
	NATS_URL=nats://127.0.0.1:${NP[0]},nats://127.0.0.1:${NP[1]},nats://127.0.0.1:${NP[2]}
	# JetStream serves once the cluster elected its meta leader.
	for _ in $(seq 300); do "$TOOLS/nats" -s "$NATS_URL" stream ls >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "NATS JetStream cluster did not become available" >&2; return 1
}

nats_bench() { # label batch: R3 file stream, 128 clients, 256 B, about DURATION s
	local label=$1 batch=$2 rate n
	# nats bench runs a message count: calibrate on a short run, then size
	# the real one to last about DURATION seconds.
	"$TOOLS/nats" -s "$NATS_URL" --timeout 120s bench js pub async bench.calib --create --storage file --replicas 3 --stream calib \
		--clients 128 --size 256 --msgs 50000 --batch "$batch" --no-progress >"$OUT/$label-calib.txt" 2>&1 || true
	rate=$(grep -o 'aggregated stats: [0-9,]* msgs/sec' "$OUT/$label-calib.txt" | tr -dc 0-9 || true)
	if [ -z "$rate" ]; then echo "$label: calibration failed: $(tail -1 "$OUT/$label-calib.txt")" | tee -a "$OUT/summary.txt" >&2; return 0; fi
	n=$((rate * DURATION))
	"$TOOLS/nats" -s "$NATS_URL" --timeout 120s bench js pub async bench.run --create --storage file --replicas 3 --stream run \
		--clients 128 --size 256 --msgs "$n" --batch "$batch" --maxbytes 8GB --no-progress >"$OUT/$label.txt" 2>&1 || true
	rate=$(grep -o 'aggregated stats: [0-9,]* msgs/sec' "$OUT/$label.txt" | tr -dc 0-9 || true)
	echo "$label: ${rate:-failed} msg/s ($n messages)" | tee -a "$OUT/summary.txt" >&2
	echo "${rate:-0}" >"$OUT/$label.rate"
}

bench() { # label brokers rf extra...
	local label=$1 brokers=$2 rf=$3; shift 3
	"$CHRONIK" bench -b "$brokers" -t bench --create-topic -p 1 -r "$rf" -s 256 -d "${DURATION}s" -w 3s --acks all \
		--label "$label" --json-output "$OUT/$label.json" "$@" >"$OUT/$label.txt"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); l=d["latency"]; print("%s: %.0f msg/s, p50 %.2f ms p99 %.2f ms, failed %d" % (sys.argv[2], d["msg_per_sec"], l["p50_us"]/1000, l["p99_us"]/1000, d["failed"]))' "$OUT/$label.json" "$label" | tee -a "$OUT/summary.txt" >&2
}

[ "${IDLE_ONLY:-0}" = 1 ] && ROUNDS=0
for round in $(seq "$ROUNDS"); do
	for mode in closed pipelined; do
		extra=(-c 128)
		[ "$mode" = pipelined ] && extra=(-c 2048 --batch-size 1048576 --max-inflight-requests 20)
		log "round $round $mode: standalone"
		rm -rf "$OUT/data-s"; standalone "$OUT/data-s"
		bench "standalone-$mode-$round" "$BROKERS" 1 "${extra[@]}"
		stopall
		log "round $round $mode: 3-node cluster RF 3"
		rm -rf "$OUT/data-c" "$OUT"/data-c-node-*.log; cluster "$OUT/data-c"
		sleep 2
		bench "cluster-$mode-$round" "$BROKERS" 3 "${extra[@]}"
		stopall
	done
	if [ "$NATS_R3" = 1 ]; then
		log "round $round: NATS JetStream 3-node cluster, R3 file stream"
		rm -rf "$OUT/data-n"; nats_cluster "$OUT/data-n"
		nats_bench "nats-r3-closed-$round" 1
		stopall
		rm -rf "$OUT/data-n"; nats_cluster "$OUT/data-n"
		nats_bench "nats-r3-pipelined-$round" 500
		stopall
		rm -rf "$OUT/data-n"
	fi
done

[ "$ROUNDS" -gt 0 ] && python3 - "$OUT" "$ROUNDS" <<'PY' | tee -a "$OUT/summary.txt" >&2
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
for mode in ("closed", "pipelined"):
    for r in range(1, rounds + 1):
        s = json.load(open(f"{out}/standalone-{mode}-{r}.json"))["msg_per_sec"]
        c = json.load(open(f"{out}/cluster-{mode}-{r}.json"))["msg_per_sec"]
        print(f"{mode} round {r}: cluster / standalone = {c:.0f} / {s:.0f} = {c / s:.2f}")
import os
for r in range(1, rounds + 1):
    for mode in ("closed", "pipelined"):
        f = f"{out}/nats-r3-{mode}-{r}.rate"
        if os.path.exists(f) and int(open(f).read() or 0) > 0:
            n = int(open(f).read())
            c = json.load(open(f"{out}/cluster-{mode}-{r}.json"))["msg_per_sec"]
            print(f"{mode} round {r}: Chronik cluster / NATS JetStream R3 = {c:.0f} / {n} = {c / n:.2f}")
PY

log "idle: $IDLE_PARTITIONS partitions x RF 3"
rm -rf "$OUT/data-i"; cluster "$OUT/data-i"
sleep 2
"$CHRONIK" topic create idle -p "$IDLE_PARTITIONS" -r 3 -b "$BROKERS" --timeout 300s >/dev/null
sleep 10
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -a before
for i in 0 1 2; do before[$i]=$(ticks "${NODE_PIDS[$i]}"); done
sleep 30
hz=$(getconf CLK_TCK)
{
	for i in 0 1 2; do
		after=$(ticks "${NODE_PIDS[$i]}")
		echo "idle node $((i + 1)): $(python3 -c "print(round(100*($after-${before[$i]})/$hz/30,2))")% of one core over 30 s"
	done
} | tee "$OUT/idle.txt" >&2
# Start-up time of a node with those partitions: stop node 3 (SIGTERM), start
# it, time until its /readyz says ready (every local replica open, knowing
# its leader and caught up to what it knows committed).
kill "${NODE_PIDS[2]}"; wait "${NODE_PIDS[2]}" 2>/dev/null || true
start=$(date +%s.%N)
# shellcheck disable=SC2086
"$CHRONIK" ${NODE_ARGS[2]} >"$OUT/data-i-node-3-restart.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 3000); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${M[2]}/readyz")" = 200 ] && break
	sleep 0.1
done
end=$(date +%s.%N)
echo "restart of a node with $IDLE_PARTITIONS partition replicas: /readyz ready after $(python3 -c "print(round($end-$start,2))") s" | tee -a "$OUT/idle.txt" >&2
stopall
log "results in $OUT"
