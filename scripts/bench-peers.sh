#!/usr/bin/env bash
# bench-peers.sh: the same produce workload, in one run on one machine,
# against Chronik and its peers; writes a results folder and a table of
# ratios (and, with --write-doc, the "Peers" section of docs/PERFORMANCE.md).
#
#   Chronik standalone, WAL profile high (fsync on): acks=1 and acks=all
#   NATS JetStream R1 file store (nats bench js pub async): default lazy
#     sync, and sync_interval: always
#   franz-go kfake: an in-memory Kafka-protocol server (no disk at all)
#   sarama kafka-producer-performance against Chronik (another client's view)
#
# Workload: 128 producers (messages in flight), 256-byte and 1 KiB
# messages, 30 s each (DURATION=), one partition/stream. The Chronik
# broker runs with pprof; CPU and block profiles are taken during the
# acks=all 256-byte run. Everything runs on 127.0.0.1.
#
# Usage: scripts/bench-peers.sh [--write-doc] [--quick]
#   --quick: 5 s runs and one size (a smoke test of the script itself)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-30}
SIZES=${SIZES:-"256 1024"}
CONC=${CONC:-128}
PARTITIONS=${PARTITIONS:-1}
WRITE_DOC=0
for a in "$@"; do
	case $a in
	--write-doc) WRITE_DOC=1 ;;
	--quick) DURATION=5 SIZES=256 ;;
	*) echo "unknown argument $a" >&2; exit 2 ;;
	esac
done
OUT=${OUT:-$ROOT/bench-results/peers-$(date -u +%Y%m%dT%H%M%SZ)}
TOOLS=$ROOT/.cache/peer-tools
mkdir -p "$OUT" "$TOOLS"
log() { echo "== $*" >&2; }

# --- tools ---------------------------------------------------------------
if ! command -v nats-server >/dev/null; then
	log "installing nats-server (apt)"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get install -y nats-server >/dev/null
fi
NATS_SERVER=$(command -v nats-server)
# sync_interval (the "always" run) arrived in nats-server 2.10; Debian 13
# ships 2.9.10. Then both NATS runs use 2.15.2 from the Go module proxy, so
# that the two differ only in the sync setting.
if [ "$(printf 'listen: 127.0.0.1:0\njetstream { store_dir: "%s/nats-probe"\n sync_interval: always\n}\n' "$OUT" >"$OUT/probe.conf"; "$NATS_SERVER" -t -c "$OUT/probe.conf" >/dev/null 2>&1 && echo ok)" != ok ]; then
	[ -x "$TOOLS/nats-server" ] || { log "apt's nats-server lacks sync_interval; installing nats-server v2.15.2 from the module proxy"; GOBIN=$TOOLS go install github.com/nats-io/nats-server/v2@v2.15.2; }
	NATS_SERVER=$TOOLS/nats-server
fi
rm -rf "$OUT/probe.conf" "$OUT/nats-probe"
[ -x "$TOOLS/nats" ] || { log "installing natscli v0.5.0"; GOBIN=$TOOLS go install github.com/nats-io/natscli/nats@v0.5.0; }
[ -x "$TOOLS/kafka-producer-performance" ] || { log "installing sarama kafka-producer-performance v1.61.1"; GOBIN=$TOOLS go install github.com/IBM/sarama/tools/kafka-producer-performance@v1.61.1; }
log "building chronik and kfake"
go build -o "$TOOLS/chronik" ./cmd/chronik
go build -o "$TOOLS/kfake" ./scripts/kfake
go build -o "$TOOLS/peersreport" ./scripts/peersreport
CHRONIK=$TOOLS/chronik

# --- the machine -----------------------------------------------------------
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') × $(nproc) (GOMAXPROCS default)"
	echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel: $(uname -r)"
	echo "filesystem: $(df -T "$OUT" | awk 'NR==2 {print $2 " on " $1}')"
	echo "go: $(go version | cut -d' ' -f3)"
	echo "nats-server: $("$NATS_SERVER" --version 2>&1 | head -1) ($NATS_SERVER)"
	# The disk's own fdatasync latency, the floor of every durable acknowledgement.
	python3 - "$OUT" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync.probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
ts = []
for _ in range(500):
    os.write(fd, b"x" * 300)
    t = time.perf_counter(); os.fdatasync(fd); ts.append(time.perf_counter() - t)
os.close(fd); os.remove(path)
ts.sort()
print("raw fdatasync after a 300 B append (500 samples): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms" % (ts[250] * 1e3, ts[450] * 1e3, ts[495] * 1e3))
PY
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

bench() { # name size acks brokers [extra...]
	local name=$1 size=$2 acks=$3 brokers=$4; shift 4
	log "$name ($size B, acks=$acks)"
	"$CHRONIK" bench -b "$brokers" -t "bench-$size" --create-topic -p "$PARTITIONS" -c "$CONC" -s "$size" \
		-d "${DURATION}s" -w 3s --acks "$acks" --report-interval-secs 10 --label "$name" \
		--json-output "$OUT/$name-$size.json" "$@" >"$OUT/$name-$size.txt"
	cat "$OUT/$name-$size.txt" >&2
}

for size in $SIZES; do
	# Chronik, profile high, acks=1 and acks=all.
	for acks in 1 all; do
		KP=$(port) PP=$(port) MP=$(port)
		rm -rf "$OUT/chronik-data"
		"$CHRONIK" server --data-dir "$OUT/chronik-data" --bind "127.0.0.1:$KP" --wal-profile high \
			--pprof-addr "127.0.0.1:$PP" --metrics-bind "127.0.0.1:$MP" --log-level warn >"$OUT/chronik-server-$acks-$size.log" 2>&1 &
		CP=$!; PIDS+=("$CP")
		wait_port "$KP"
		if [ "$acks" = all ] && [ "$size" = 256 ]; then
			# Profiles under load: CPU for 10 s and the block profile, from the middle of the run.
			( sleep $((DURATION / 3 + 3)); curl -s -o "$OUT/chronik-cpu.pprof" "http://127.0.0.1:$PP/debug/pprof/profile?seconds=10";
			  curl -s -o "$OUT/chronik-block.pprof" "http://127.0.0.1:$PP/debug/pprof/block" ) &
			PROF=$!
		fi
		bench "chronik-acks$acks" "$size" "$acks" "127.0.0.1:$KP"
		# The broker's own account of the run (requests, commit rounds, fsyncs).
		curl -s "http://127.0.0.1:$MP/metrics" >"$OUT/chronik-metrics-acks$acks-$size.txt"
		if [ "$acks" = all ] && [ "$size" = 256 ]; then
			wait "$PROF" || true
			go tool pprof -top -nodecount=25 "$CHRONIK" "$OUT/chronik-cpu.pprof" >"$OUT/chronik-cpu-top.txt" 2>/dev/null || true
			go tool pprof -top -nodecount=15 "$CHRONIK" "$OUT/chronik-block.pprof" >"$OUT/chronik-block-top.txt" 2>/dev/null || true
		fi
		if [ "$acks" = all ]; then
			# Catch-up read of everything just written (from disk when the
			# page cache can be dropped, which needs root).
			sync; if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then echo dropped >"$OUT/consume-cache-$size.txt"; else echo "not dropped" >"$OUT/consume-cache-$size.txt"; fi
			log "chronik consume catch-up ($size B, page cache $(cat "$OUT/consume-cache-$size.txt"))"
			"$CHRONIK" bench -b "127.0.0.1:$KP" -t "bench-$size" -m consume -d 120s -q --label chronik-consume \
				--json-output "$OUT/chronik-consume-$size.json" >"$OUT/chronik-consume-$size.txt"
			cat "$OUT/chronik-consume-$size.txt" >&2
			# The broker's capacity when the client pipelines (many messages
			# in flight, large batches), next to the 128-in-flight loop.
			bench chronik-pipelined "$size" all "127.0.0.1:$KP" -t "bench-pipe-$size" -c 2048 --batch-size 1048576 --max-inflight-requests 20
			# sarama's view of the same broker: as many messages as chronik bench managed in the run.
			N=$(python3 -c "import json;r=json.load(open('$OUT/chronik-acksall-$size.json'));print(max(int(r['messages']),100000))")
			log "sarama kafka-producer-performance ($size B, $N messages, acks=-1)"
			"$TOOLS/kafka-producer-performance" -brokers "127.0.0.1:$KP" -topic "bench-$size" -message-size "$size" \
				-message-load "$N" -required-acks -1 -version 3.6.0 -max-open-requests 5 >"$OUT/sarama-$size.txt" 2>&1 || true
			tail -2 "$OUT/sarama-$size.txt" >&2
		fi
		stop "$CP"
	done
	rm -rf "$OUT/chronik-data"

	# Latency at half load, WAL profile low: saturate once (closed loop),
	# then an open-loop round trip at half that rate.
	if [ "$size" = 256 ]; then
		KP=$(port)
		"$CHRONIK" server --data-dir "$OUT/chronik-data" --bind "127.0.0.1:$KP" --metrics-bind "127.0.0.1:$(port)" --wal-profile low --log-level warn >"$OUT/chronik-server-low.log" 2>&1 &
		CP=$!; PIDS+=("$CP")
		wait_port "$KP"
		bench chronik-low-saturated "$size" all "127.0.0.1:$KP" -t low-sat -d "$(( (DURATION + 1) / 2 ))s"
		HALF=$(python3 -c "import json;print(int(json.load(open('$OUT/chronik-low-saturated-$size.json'))['msg_per_sec']/2))")
		bench chronik-low-half "$size" all "127.0.0.1:$KP" -t low-half -m round-trip --open-loop --rate-limit "$HALF"
		stop "$CP"
		rm -rf "$OUT/chronik-data"
	fi

	# kfake, in memory.
	KP=$(port)
	"$TOOLS/kfake" -port "$KP" >"$OUT/kfake-$size.log" 2>&1 &
	FP=$!; PIDS+=("$FP")
	wait_port "$KP"
	bench kfake "$size" all "127.0.0.1:$KP"
	stop "$FP"

	# NATS JetStream R1 file store: lazy (default) sync, then sync always.
	for sync in lazy always; do
		NP=$(port)
		rm -rf "$OUT/nats-data"; mkdir -p "$OUT/nats-data"
		conf=$OUT/nats-$sync.conf
		{
			echo "listen: 127.0.0.1:$NP"
			echo "jetstream { store_dir: \"$OUT/nats-data\""
			[ "$sync" = always ] && echo "  sync_interval: always"
			echo "}"
		} >"$conf"
		"$NATS_SERVER" -c "$conf" >"$OUT/nats-server-$sync-$size.log" 2>&1 &
		NSP=$!; PIDS+=("$NSP")
		wait_port "$NP"
		# nats bench runs a message count: calibrate on a short run, then
		# size the real one to last about DURATION seconds.
		log "nats ($sync sync, $size B): calibrating"
		# (With an fsync per message, 128 clients × 500 pending acks take a
		# while: acks get 120 s, not the default 5 s.)
		CALIB=100000; [ "$sync" = always ] && CALIB=20000
		"$TOOLS/nats" -s "nats://127.0.0.1:$NP" --timeout 120s bench js pub async bench.calib --create --storage file --stream calib \
			--clients "$CONC" --size "$size" --msgs "$CALIB" --no-progress >"$OUT/nats-$sync-$size-calib.txt" 2>&1 || true
		RATE=$(grep -o 'aggregated stats: [0-9,]* msgs/sec' "$OUT/nats-$sync-$size-calib.txt" | tr -dc 0-9 || true)
		if [ -z "$RATE" ]; then
			log "nats ($sync sync, $size B): calibration failed: $(tail -1 "$OUT/nats-$sync-$size-calib.txt")"
			cp "$OUT/nats-$sync-$size-calib.txt" "$OUT/nats-$sync-$size.txt"
		else
			N=$((RATE * DURATION))
			log "nats ($sync sync, $size B): $N messages"
			"$TOOLS/nats" -s "nats://127.0.0.1:$NP" --timeout 120s bench js pub async bench.run --create --storage file --stream "run$size" \
				--clients "$CONC" --size "$size" --msgs "$N" --maxbytes 8GB --no-progress >"$OUT/nats-$sync-$size.txt" 2>&1 || true
			grep 'aggregated stats' "$OUT/nats-$sync-$size.txt" >&2 || tail -1 "$OUT/nats-$sync-$size.txt" >&2
		fi
		stop "$NSP"
		rm -rf "$OUT/nats-data"
	done
done

"$TOOLS/peersreport" -dir "$OUT" -sizes "$SIZES" >"$OUT/summary.md"
cat "$OUT/summary.md"
if [ "$WRITE_DOC" = 1 ]; then
	"$TOOLS/peersreport" -dir "$OUT" -sizes "$SIZES" -doc docs/PERFORMANCE.md
	log "docs/PERFORMANCE.md updated"
fi
log "results in $OUT"
