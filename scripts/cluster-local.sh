#!/usr/bin/env bash
# Three Chronik nodes on this machine, each from a cluster file in the
# original Chronik's form (docs/CLUSTER.md):
#   node N: Kafka 127.0.0.1:1909(1+N), Raft 127.0.0.1:1919(1+N),
#           metrics 127.0.0.1:1309(2+N), data ./data/node-N, log ./data/node-N.log
# Ctrl-C (or any node exiting) stops all three. KAFKA_PORT, RAFT_PORT and
# METRICS_PORT move the three port ranges (node N uses the base + N - 1).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-bin/chronik}
DATA=./data
NODES=(1 2 3)

if [[ ! -x $BIN ]]; then
	make build
fi
mkdir -p "$DATA"

KAFKA_PORT=${KAFKA_PORT:-19092}
RAFT_PORT=${RAFT_PORT:-19192}
METRICS_PORT=${METRICS_PORT:-13093}

kafka() { echo "127.0.0.1:$((KAFKA_PORT + $1 - 1))"; }
raft() { echo "127.0.0.1:$((RAFT_PORT + $1 - 1))"; }
metrics() { echo "127.0.0.1:$((METRICS_PORT + $1 - 1))"; }

for n in "${NODES[@]}"; do
	f="$DATA/node-$n.toml"
	{
		echo "# Written by scripts/cluster-local.sh; rewritten on every run."
		echo "enabled = true"
		echo "node_id = $n"
		echo "data_dir = \"$DATA/node-$n\""
		echo "replication_factor = 3"
		echo "min_insync_replicas = 2"
		echo
		echo "[bind]"
		echo "kafka = \"$(kafka "$n")\""
		echo "raft = \"$(raft "$n")\""
		echo "metrics = \"$(metrics "$n")\""
		echo
		echo "[advertise]"
		echo "kafka = \"$(kafka "$n")\""
		echo "raft = \"$(raft "$n")\""
		for p in "${NODES[@]}"; do
			echo
			echo "[[peers]]"
			echo "id = $p"
			echo "kafka = \"$(kafka "$p")\""
			echo "raft = \"$(raft "$p")\""
		done
	} >"$f"
done

pids=()
stop() {
	trap - INT TERM EXIT
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	echo "stopped"
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

for n in "${NODES[@]}"; do
	"$BIN" server --config "$DATA/node-$n.toml" >"$DATA/node-$n.log" 2>&1 &
	pids+=($!)
	echo "node $n: pid $!, kafka $(kafka "$n"), raft $(raft "$n"), metrics http://$(metrics "$n")/metrics, log $DATA/node-$n.log"
done
echo "bootstrap servers: $(kafka 1),$(kafka 2),$(kafka 3); Ctrl-C stops all"

# A node that exits on its own (bad config, port in use) ends the run: its
# log says why, and the others would only hide it.
set +e
wait -n "${pids[@]}"
status=$?
set -e
for n in "${NODES[@]}"; do
	if ! kill -0 "${pids[$((n - 1))]}" 2>/dev/null; then
		echo "node $n exited (status $status); the end of $DATA/node-$n.log:" >&2
		tail -n 5 "$DATA/node-$n.log" >&2
	fi
done
exit "$status"
