# Chronik — developer entry points. `make help` lists them.
SHELL := /bin/bash
GO ?= go
BIN := bin/chronik
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOLANGCI_VERSION := v2.15.0
GOBIN := $(shell $(GO) env GOPATH)/bin
FUZZTIME ?= 60s
# CI's brief run counts executions instead of seconds: with a duration, Go's fuzz
# coordinator can race its own deadline on a loaded machine and fail with a bare
# "context deadline exceeded" that found nothing (see scripts/fuzz-all.sh).
FUZZTIME_TEST ?= 3000x
FUZZMINIMIZE_TEST ?= 300x
BENCHTIME ?= 2s

.PHONY: help build run run-cluster test test-operator test-unit test-cluster test-load test-compat compat-doc cluster-doc compat-tools test-crash test-chaos chaos test-peers test-fuzz lint bench bench-storage bench-cluster bench-peers fuzz clean tools

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/chronik
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/chronik

run: build ## start a standalone broker with data in ./data
	./$(BIN) server --data-dir ./data

run-cluster: build ## start three nodes on 127.0.0.1 from cluster files (Kafka 19092-19094; data, configs and logs in ./data; Ctrl-C stops all)
	./scripts/cluster-local.sh

test: tools compat-tools ## everything CI runs: vet, lint, unit tests (race), real-client compat tests, crash tests, chaos smoke, brief fuzzing
	$(GO) vet ./...
	$(GOBIN)/golangci-lint run ./...
	$(MAKE) test-unit test-cluster test-compat test-load test-crash test-chaos test-fuzz test-operator

test-operator: tools ## the Kubernetes operator (own module operator/): generated files up to date, vet, lint, envtest on a real kube-apiserver and etcd, helm lint and dry runs (kube binaries and helm built once per machine into ~/.cache/chronik: about 20 min the first time, 2 min after)
	cd operator && $(GO) mod verify >/dev/null && $(MAKE) check-generated
	cd operator && $(GO) vet ./... && $(GOBIN)/golangci-lint run ./...
	$(MAKE) -C operator test

test-unit: compat-tools ## unit and integration tests with the race detector (the quota test drives kcat and confluent-kafka-python)
	$(GO) test -race -count=1 -skip '^TestCrash' $$($(GO) list ./... | grep -v -e /tests/compat -e /tests/load -e /tests/cluster -e /tests/chaos -e /tests/peers)

test-cluster: compat-tools ## three broker processes on loopback: kill -9, SIGSTOP, rolling and cold restarts under acks=all load, every real client through a leader failover (TestCluster*; checks docs/COMPATIBILITY-CLUSTER.md)
	$(GO) test -count=1 -timeout 15m -v ./tests/cluster 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go:[0-9]+:' ; exit $${PIPESTATUS[0]}

test-load: ## the flood (backpressure) and hostile-clients tests against a broker process; the scaled stress profile through gateway and drain
	$(GO) test -count=1 -v -run 'TestFlood|TestHostile|TestStress' ./tests/load 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go:[0-9]+:' ; exit $${PIPESTATUS[0]}

test-compat: compat-tools ## every real Kafka client against a broker; checks docs/COMPATIBILITY.md
	$(GO) test -count=1 -timeout 20m ./tests/compat

test-peers: ## the peers' own test suites (franz-go's kgo tests at go.mod's version) against a broker it starts; rewrites docs/COMPATIBILITY-PEERS.md (not in make test)
	$(GO) test -count=1 -timeout 40m ./tests/peers -update

compat-doc: compat-tools ## rewrite docs/COMPATIBILITY.md from a run of the compat tests
	$(GO) test -count=1 -timeout 20m ./tests/compat -update

cluster-doc: compat-tools ## rewrite docs/COMPATIBILITY-CLUSTER.md from a run of every client through a leader failover
	$(GO) test -count=1 -timeout 10m -v -run TestClusterClients ./tests/cluster -update 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go:[0-9]+:' ; exit $${PIPESTATUS[0]}

test-crash: ## kill -9 crash tests (TestCrash*)
	$(GO) test -count=1 -run '^TestCrash' -v ./... 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|crash:' ; exit $${PIPESTATUS[0]}

test-chaos: ## fault runs with the history checker: W1+W7 on three nodes through kill -9, SIGSTOP and a bounce of a leader, an isolated leader, quorum loss, a full disk and a power loss, replicas compared after each; a standalone broker through kill -9, SIGSTOP, bounce, power loss (TestChaos*; root, /dev/fuse; CHAOS_SEED= fixes the seed)
	$(GO) test -count=1 -timeout 10m -v -run '^TestChaos' ./tests/chaos $(if $(CHAOS_SEED),-args -chaos.seed=$(CHAOS_SEED)) 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go:[0-9]+:|run.go:[0-9]+:|^ +(lost|unseen|duplicate|inconsistent|non-monotonic|watermark|stale|commit|failed|acked|divergent|valid|operations)' ; exit $${PIPESTATUS[0]}

SEED ?= 0
DURATION ?= 60s
FAULTS ?= f1,f2,f3
NODES ?= 3
chaos: ## one randomized fault run by hand (SEED= DURATION=60s FAULTS=f1,f2,f3 NODES=3; faults f1-f6, f8, f10, w4; SEED=0 draws one; writes report.html)
	$(GO) run ./tests/chaos/cmd/chaos -seed $(SEED) -duration $(DURATION) -faults $(FAULTS) -nodes $(NODES) -end-offsets

test-fuzz: ## run every fuzz target briefly (3,000 executions each)
	FUZZTIME=$(FUZZTIME_TEST) FUZZMINIMIZETIME=$(FUZZMINIMIZE_TEST) ./scripts/fuzz-all.sh

fuzz: ## run every fuzz target for 60 s each (FUZZTIME=)
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz-all.sh

bench: ## Go benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./internal/...

bench-storage: ## the storage report of docs/PERFORMANCE.md (raw disk next to BenchmarkAppend)
	./scripts/bench-storage.sh

bench-cluster: ## 3-node RF 3 cluster against standalone and a 3-node NATS JetStream R3 stream (acks=all, closed loop and pipelined, alternating), idle CPU with 1,000 partitions, restart time
	./scripts/bench-cluster.sh

bench-peers: ## Chronik against NATS JetStream, kfake and sarama (about 16 min); rewrites the peers table of docs/PERFORMANCE.md
	./scripts/bench-peers.sh --write-doc

lint: tools ## golangci-lint
	$(GOBIN)/golangci-lint run ./...

tools: ## install the tools the tests need
	@test -x $(GOBIN)/golangci-lint && $(GOBIN)/golangci-lint version 2>/dev/null | grep -q $(GOLANGCI_VERSION:v%=%) || \
		$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	@command -v mkfs.ext4 >/dev/null && command -v chattr >/dev/null && command -v losetup >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq e2fsprogs mount util-linux >/dev/null; }

compat-tools: ## install the real Kafka clients of the compat tests (apt, npm), Burrow and the ZooKeeper it needs
	@command -v kcat >/dev/null && command -v Burrow >/dev/null && test -x /usr/share/zookeeper/bin/zkServer.sh && \
		/usr/bin/python3 -c 'import confluent_kafka, kafka, snappy, lz4, zstandard, xxhash' 2>/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat python3-confluent-kafka python3-kafka \
			python3-snappy python3-lz4 python3-zstandard python3-xxhash burrow zookeeper >/dev/null; }
	@command -v node >/dev/null || { echo "the compat tests need Node.js and npm (kafkajs)"; exit 1; }
	@test -d tests/compat/clients/node_modules/kafkajs || (cd tests/compat/clients && npm install --no-audit --no-fund --loglevel=error)

clean: ## remove build output (not ./data)
	rm -rf bin
