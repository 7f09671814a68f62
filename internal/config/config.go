// Package config is the one source of truth for the broker's settings: each
// setting has a flag, a CHRONIK_* environment variable and a key in the
// optional TOML config file, resolved with one precedence order
// (flag > environment > file > default) and validated with messages that
// name the setting. It must never read settings from anywhere else.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"

	"github.com/chronik-go/chronik/internal/wal"
)

// Config holds the resolved settings of `chronik server`.
type Config struct {
	ConfigFile string

	DataDir   string
	NodeID    int32
	Bind      string // host:port of the Kafka listener
	Advertise string // host:port given to clients
	Metrics   string // host:port of /metrics, /healthz, /readyz

	// Peers are the nodes of the cluster, this one included; empty means
	// standalone (a cluster of one). RaftBind is where this node listens
	// for the other nodes and RaftAdvertise what they are told; both stay
	// empty and unused without peers.
	Peers         []Peer
	RaftBind      string
	RaftAdvertise string
	Rack          string
	// DefaultReplicationFactor and MinInsyncReplicas are the broker
	// defaults of new topics (Kafka's default.replication.factor and
	// min.insync.replicas).
	DefaultReplicationFactor int16
	MinInsyncReplicas        int16
	// ReplicaLagMaxMs is replica.lag.time.max.ms: a follower whose durable
	// log has not reached the leader's for this long leaves the ISR.
	ReplicaLagMaxMs int64
	// AutoLeaderRebalance and LeaderImbalanceCheckSeconds: leadership
	// returns to each partition's preferred (first) replica once it is in
	// sync (Kafka's auto.leader.rebalance.enable and
	// leader.imbalance.check.interval.seconds).
	AutoLeaderRebalance         bool
	LeaderImbalanceCheckSeconds int64
	// AutoRecover is the original's auto_recover, accepted and kept so its
	// files load; nothing acts on it (see docs/CLUSTER.md).
	AutoRecover bool

	WALProfile     string
	ProduceProfile string

	LogLevel  string
	LogFormat string
	// PprofAddr serves Go's pprof handlers when set.
	PprofAddr string
	// LagPerPartition exports consumer lag per group and partition
	// (otherwise per group only); LagMaxSeries caps those series.
	LagPerPartition bool
	LagMaxSeries    int

	NumPartitions    int32
	AutoCreateTopics bool
	RetentionMs      int64
	RetentionBytes   int64
	SegmentBytes     int64
	// RetentionCheckMs is log.retention.check.interval.ms.
	RetentionCheckMs int64
	// MetadataSegmentBytes and MetadataSnapshotBytes size the metadata
	// log's segments and the growth between its snapshots.
	MetadataSegmentBytes  int64
	MetadataSnapshotBytes int64
	SegmentMs             int64
	// ScrubBytesPerSecond bounds the background CRC check of sealed
	// segments (0: no scrub).
	ScrubBytesPerSecond   int64
	SocketRequestMaxBytes int32
	// SocketRequestTimeoutMs bounds how long a started request frame may
	// take to arrive whole; ConnectionsMaxIdleMs closes connections that
	// sent nothing for that long (Kafka's connections.max.idle.ms).
	SocketRequestTimeoutMs int64
	ConnectionsMaxIdleMs   int64
	// MaxConnections and MaxConnectionsPerIP cap open client connections
	// (Kafka's max.connections, max.connections.per.ip); the overrides
	// map a host (IP or name) to its own cap.
	MaxConnections               int32
	MaxConnectionsPerIP          int32
	MaxConnectionsPerIPOverrides map[string]int32
	// QuotaWindowNum and QuotaWindowSizeSeconds shape the sliding window
	// in which client quotas are measured (Kafka's quota.window.num,
	// quota.window.size.seconds).
	QuotaWindowNum         int32
	QuotaWindowSizeSeconds int32

	OffsetsTopicPartitions   int32
	OffsetsTopicReplication  int32
	OffsetsRetentionMinutes  int64
	GroupInitialRebalanceMs  int64
	GroupMinSessionTimeoutMs int64
	GroupMaxSessionTimeoutMs int64
	GroupMaxSize             int32
	ConsumerSessionTimeoutMs int64
	ConsumerHeartbeatMs      int64
	OffsetsRewriteRecords    int64

	// sources records where each setting's value came from, so that
	// Validate can name it; nil for a Config not built by Resolve.
	sources map[string]string
}

// setting describes one configurable value.
type setting struct {
	key   string // config file key (Kafka's broker config name where one exists)
	flag  string
	short string
	env   []string // first is canonical; others are the original's aliases
	def   string
	usage string
	set   func(c *Config, v string) error
}

func settings() []setting {
	return []setting{
		{key: "data.dir", flag: "data-dir", short: "d", env: []string{"CHRONIK_DATA_DIR"}, def: "./data", usage: "data directory",
			set: func(c *Config, v string) error { c.DataDir = v; return nonEmpty(v) }},
		{key: "node.id", flag: "node-id", env: []string{"CHRONIK_NODE_ID"}, def: "1", usage: "this broker's node id (Kafka broker id)",
			set: func(c *Config, v string) error { return parseInt32(v, 0, 1<<30, &c.NodeID) }},
		{key: "bind", flag: "bind", env: []string{"CHRONIK_BIND"}, def: "0.0.0.0:9092", usage: "Kafka listener address, host or host:port (port 9092 if omitted)",
			set: func(c *Config, v string) error { a, err := hostPort(v, 9092); c.Bind = a; return err }},
		{key: "advertise", flag: "advertise", env: []string{"CHRONIK_ADVERTISE", "CHRONIK_ADVERTISED_ADDR"}, def: "", usage: "address given to clients, host[:port] (default: the bind address, localhost for 0.0.0.0)",
			set: func(c *Config, v string) error { c.Advertise = v; return nil }},
		{key: "metrics.bind", flag: "metrics-bind", env: []string{"CHRONIK_METRICS_BIND"}, def: "0.0.0.0:13092", usage: "address of /metrics, /healthz and /readyz (one port in every mode)",
			set: func(c *Config, v string) error { a, err := hostPort(v, 13092); c.Metrics = a; return err }},
		{key: "peers", flag: "peers", env: []string{"CHRONIK_CLUSTER_PEERS"}, def: "", usage: "cluster nodes, host:kafka:wal:raft or host:kafka:raft separated by commas, ids 1..N in order (the file form is [[peers]]; empty: standalone)",
			set: func(c *Config, v string) error { p, err := parsePeers(v); c.Peers = p; return err }},
		{key: "raft.bind", flag: "raft-bind", env: []string{"CHRONIK_RAFT_BIND"}, def: "", usage: "host:port of the node-to-node (Raft) listener, opened only with peers (default: 0.0.0.0 and the port of this node's peer raft address)",
			set: func(c *Config, v string) error {
				if v == "" {
					c.RaftBind = ""
					return nil
				}
				a, err := listenAddr(v)
				c.RaftBind = a
				return err
			}},
		{key: "raft.advertise", flag: "raft-advertise", env: []string{"CHRONIK_RAFT_ADVERTISE"}, def: "", usage: "host:port other nodes reach this node's Raft listener at (default and only allowed value: this node's peer raft address)",
			set: func(c *Config, v string) error {
				if v == "" {
					c.RaftAdvertise = ""
					return nil
				}
				a, err := peerAddr(v)
				c.RaftAdvertise = a
				return err
			}},
		{key: "broker.rack", flag: "broker-rack", env: []string{"CHRONIK_BROKER_RACK"}, def: "", usage: "rack of this broker (Kafka's broker.rack): reported in Metadata and DescribeCluster and used to spread replicas over racks",
			set: func(c *Config, v string) error { c.Rack = v; return nil }},
		{key: "default.replication.factor", flag: "default-replication-factor", env: []string{"CHRONIK_DEFAULT_REPLICATION_FACTOR", "CHRONIK_REPLICATION_FACTOR"}, def: "", usage: "replicas of new topics that do not name a count, 1..100, at most the number of peers (default 1; with peers 3, capped at the peer count)",
			set: func(c *Config, v string) error {
				if v == "" {
					c.DefaultReplicationFactor = 0 // derived from the peers in Resolve
					return nil
				}
				var n int32
				err := parseInt32(v, 1, maxReplicas, &n)
				c.DefaultReplicationFactor = int16(n)
				return err
			}},
		{key: "replica.lag.time.max.ms", flag: "replica-lag-time-max-ms", env: []string{"CHRONIK_REPLICA_LAG_TIME_MAX_MS"}, def: "30000", usage: "a follower whose durable log has not reached the leader's end for this long leaves the in-sync replicas",
			set: func(c *Config, v string) error { return parseInt64(v, 100, 1<<31, &c.ReplicaLagMaxMs) }},
		{key: "auto.leader.rebalance.enable", flag: "auto-leader-rebalance", env: []string{"CHRONIK_AUTO_LEADER_REBALANCE"}, def: "true", usage: "move leadership back to each partition's preferred (first) replica once it is in sync",
			set: func(c *Config, v string) error { b, err := strconv.ParseBool(v); c.AutoLeaderRebalance = b; return err }},
		{key: "leader.imbalance.check.interval.seconds", flag: "leader-imbalance-check-interval-seconds", env: []string{"CHRONIK_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS"}, def: "300", usage: "how often leaders check for partitions whose preferred replica should lead",
			set: func(c *Config, v string) error { return parseInt64(v, 1, 1<<31, &c.LeaderImbalanceCheckSeconds) }},
		{key: "min.insync.replicas", flag: "min-insync-replicas", env: []string{"CHRONIK_MIN_INSYNC_REPLICAS"}, def: "1", usage: "replicas that must hold an acks=all write, 1..100, at most default.replication.factor (the topic default)",
			set: func(c *Config, v string) error {
				var n int32
				err := parseInt32(v, 1, maxReplicas, &n)
				c.MinInsyncReplicas = int16(n)
				return err
			}},
		{key: "wal.profile", flag: "wal-profile", env: []string{"CHRONIK_WAL_PROFILE"}, def: wal.DefaultProfile, usage: "group-commit profile: " + strings.Join(wal.ProfileNames(), "|"),
			set: func(c *Config, v string) error {
				p, err := wal.ProfileByName(v)
				c.WALProfile = p.Name
				return err
			}},
		{key: "produce.profile", flag: "produce-profile", env: []string{"CHRONIK_PRODUCE_PROFILE"}, def: "low-latency", usage: "in-flight produce memory: low-latency (16 MiB)|balanced (32 MiB)|high-throughput (128 MiB)|extreme (512 MiB)",
			set: func(c *Config, v string) error {
				n, err := ProduceProfileName(v)
				c.ProduceProfile = n
				return err
			}},
		{key: "log.level", flag: "log-level", short: "l", env: []string{"CHRONIK_LOG_LEVEL"}, def: "info", usage: "debug|info|warn|error",
			set: func(c *Config, v string) error {
				c.LogLevel = strings.ToLower(v)
				return oneOf(c.LogLevel, "debug", "info", "warn", "error")
			}},
		{key: "log.format", flag: "log-format", env: []string{"CHRONIK_LOG_FORMAT"}, def: "text", usage: "text|json",
			set: func(c *Config, v string) error {
				c.LogFormat = strings.ToLower(v)
				return oneOf(c.LogFormat, "text", "json")
			}},
		{key: "metrics.lag.per.partition", flag: "metrics-lag-per-partition", env: []string{"CHRONIK_METRICS_LAG_PER_PARTITION"}, def: "true", usage: "export consumer lag per group, topic and partition (false: per group only, one series per group)",
			set: func(c *Config, v string) error { b, err := strconv.ParseBool(v); c.LagPerPartition = b; return err }},
		{key: "metrics.lag.max.series", flag: "metrics-lag-max-series", env: []string{"CHRONIK_METRICS_LAG_MAX_SERIES"}, def: "10000", usage: "at most this many per-partition lag series (the largest lags are kept; the rest are summed per group)",
			set: func(c *Config, v string) error {
				var n int32
				err := parseInt32(v, 0, 1<<24, &n)
				c.LagMaxSeries = int(n)
				return err
			}},
		{key: "debug.pprof.addr", flag: "pprof-addr", env: []string{"CHRONIK_PPROF_ADDR"}, def: "", usage: "serve Go pprof profiles (CPU, heap, block, mutex) at this host:port; empty: off",
			set: func(c *Config, v string) error {
				if v != "" {
					if _, _, err := net.SplitHostPort(v); err != nil {
						return err
					}
				}
				c.PprofAddr = v
				return nil
			}},
		{key: "num.partitions", flag: "num-partitions", env: []string{"CHRONIK_NUM_PARTITIONS"}, def: "1", usage: "partitions of auto-created topics",
			set: func(c *Config, v string) error { return parseInt32(v, 1, 1<<20, &c.NumPartitions) }},
		{key: "auto.create.topics.enable", flag: "auto-create-topics", env: []string{"CHRONIK_AUTO_CREATE_TOPICS"}, def: "true", usage: "create unknown topics on produce and metadata requests",
			set: func(c *Config, v string) error { b, err := strconv.ParseBool(v); c.AutoCreateTopics = b; return err }},
		{key: "log.retention.ms", flag: "retention-ms", env: []string{"CHRONIK_RETENTION_MS"}, def: "604800000", usage: "default retention.ms of topics (-1: forever)",
			set: func(c *Config, v string) error { return parseInt64(v, -1, 1<<62, &c.RetentionMs) }},
		{key: "log.retention.bytes", flag: "retention-bytes", env: []string{"CHRONIK_RETENTION_BYTES"}, def: "-1", usage: "default retention.bytes of topic partitions (-1: no limit)",
			set: func(c *Config, v string) error { return parseInt64(v, -1, 1<<62, &c.RetentionBytes) }},
		{key: "log.retention.check.interval.ms", flag: "retention-check-interval-ms", env: []string{"CHRONIK_RETENTION_CHECK_INTERVAL_MS"}, def: "300000", usage: "how often retention deletes old segments",
			set: func(c *Config, v string) error { return parseInt64(v, 100, 1<<40, &c.RetentionCheckMs) }},
		{key: "metadata.log.segment.bytes", flag: "metadata-log-segment-bytes", env: []string{"CHRONIK_METADATA_LOG_SEGMENT_BYTES"}, def: "8MB", usage: "segment size of the metadata log: whole segments that a metadata snapshot covers are deleted (KB/MB/GB suffixes accepted)",
			set: func(c *Config, v string) error { return parseSize(v, 4096, 1<<31-1, &c.MetadataSegmentBytes) }},
		{key: "metadata.log.max.record.bytes.between.snapshots", flag: "metadata-snapshot-bytes", env: []string{"CHRONIK_METADATA_SNAPSHOT_BYTES"}, def: "20MB", usage: "save a snapshot of the metadata state (and delete the log it covers) once the metadata log grew this much since the last one, so start-up replays only the tail (KB/MB/GB suffixes accepted)",
			set: func(c *Config, v string) error { return parseSize(v, 1, 1<<40, &c.MetadataSnapshotBytes) }},
		{key: "log.segment.bytes", flag: "segment-bytes", env: []string{"CHRONIK_SEGMENT_BYTES", "CHRONIK_WAL_ROTATION_SIZE"}, def: "1073741824", usage: "default segment.bytes (KB/MB/GB suffixes accepted)",
			set: func(c *Config, v string) error { return parseSize(v, 14, 1<<31-1, &c.SegmentBytes) }},
		{key: "log.roll.ms", flag: "segment-ms", env: []string{"CHRONIK_SEGMENT_MS"}, def: "604800000", usage: "default segment.ms: roll a segment older than this",
			set: func(c *Config, v string) error { return parseInt64(v, 1, 1<<62, &c.SegmentMs) }},
		{key: "log.scrub.bytes.per.second", flag: "scrub-bytes-per-second", env: []string{"CHRONIK_SCRUB_BYTES_PER_SECOND"}, def: "16777216", usage: "read sealed segments in the background at most this fast to check their CRCs, so that damage takes its partition offline before a reader meets it (KB/MB/GB suffixes accepted; 0: off)",
			set: func(c *Config, v string) error { return parseSize(v, 0, 1<<40, &c.ScrubBytesPerSecond) }},
		{key: "socket.request.max.bytes", flag: "socket-request-max-bytes", env: []string{"CHRONIK_SOCKET_REQUEST_MAX_BYTES"}, def: "104857600", usage: "largest request frame accepted",
			set: func(c *Config, v string) error { return parseInt32(v, 1024, 1<<31-1, &c.SocketRequestMaxBytes) }},
		{key: "socket.request.timeout.ms", flag: "socket-request-timeout-ms", env: []string{"CHRONIK_SOCKET_REQUEST_TIMEOUT_MS"}, def: "30000", usage: "a request frame whose bytes stop arriving for this long closes its connection (stalled or slowloris clients)",
			set: func(c *Config, v string) error { return parseInt64(v, 100, 1<<31, &c.SocketRequestTimeoutMs) }},
		{key: "connections.max.idle.ms", flag: "connections-max-idle-ms", env: []string{"CHRONIK_CONNECTIONS_MAX_IDLE_MS"}, def: "600000", usage: "close a connection that sent no request for this long",
			set: func(c *Config, v string) error { return parseInt64(v, 100, 1<<40, &c.ConnectionsMaxIdleMs) }},
		{key: "max.connections", flag: "max-connections", env: []string{"CHRONIK_MAX_CONNECTIONS"}, def: "2147483647", usage: "most client connections open at once; a new one past it is closed at once",
			set: func(c *Config, v string) error { return parseInt32(v, 1, 1<<31-1, &c.MaxConnections) }},
		{key: "max.connections.per.ip", flag: "max-connections-per-ip", env: []string{"CHRONIK_MAX_CONNECTIONS_PER_IP"}, def: "2147483647", usage: "most client connections from one address",
			set: func(c *Config, v string) error { return parseInt32(v, 1, 1<<31-1, &c.MaxConnectionsPerIP) }},
		{key: "max.connections.per.ip.overrides", flag: "max-connections-per-ip-overrides", env: []string{"CHRONIK_MAX_CONNECTIONS_PER_IP_OVERRIDES"}, def: "", usage: "per-address caps, host:count[,host:count...] (as Kafka's)",
			set: func(c *Config, v string) error {
				m, err := parseOverrides(v)
				c.MaxConnectionsPerIPOverrides = m
				return err
			}},
		{key: "quota.window.num", flag: "quota-window-num", env: []string{"CHRONIK_QUOTA_WINDOW_NUM"}, def: "11", usage: "samples kept to measure client quota rates",
			set: func(c *Config, v string) error { return parseInt32(v, 2, 1000, &c.QuotaWindowNum) }},
		{key: "quota.window.size.seconds", flag: "quota-window-size-seconds", env: []string{"CHRONIK_QUOTA_WINDOW_SIZE_SECONDS"}, def: "1", usage: "length of one client quota sample",
			set: func(c *Config, v string) error { return parseInt32(v, 1, 3600, &c.QuotaWindowSizeSeconds) }},
		{key: "offsets.topic.num.partitions", flag: "offsets-topic-partitions", env: []string{"CHRONIK_OFFSETS_TOPIC_PARTITIONS"}, def: "50", usage: "partitions of __consumer_offsets (fixed once the topic exists)",
			set: func(c *Config, v string) error { return parseInt32(v, 1, 1000, &c.OffsetsTopicPartitions) }},
		{key: "offsets.topic.replication.factor", flag: "offsets-topic-replication", env: []string{"CHRONIK_OFFSETS_TOPIC_REPLICATION"}, def: "3", usage: "replicas of __consumer_offsets partitions (capped by the brokers present)",
			set: func(c *Config, v string) error { return parseInt32(v, 1, 32, &c.OffsetsTopicReplication) }},
		{key: "offsets.retention.minutes", flag: "offsets-retention-minutes", env: []string{"CHRONIK_OFFSETS_RETENTION_MINUTES"}, def: "10080", usage: "committed offsets of a group without members expire after this",
			set: func(c *Config, v string) error { return parseInt64(v, 1, 1<<40, &c.OffsetsRetentionMinutes) }},
		{key: "group.initial.rebalance.delay.ms", flag: "group-initial-rebalance-delay-ms", env: []string{"CHRONIK_GROUP_INITIAL_REBALANCE_DELAY_MS"}, def: "3000", usage: "how long the first rebalance of an empty group waits for more members",
			set: func(c *Config, v string) error { return parseInt64(v, 0, 1<<31, &c.GroupInitialRebalanceMs) }},
		{key: "group.min.session.timeout.ms", flag: "group-min-session-timeout-ms", env: []string{"CHRONIK_GROUP_MIN_SESSION_TIMEOUT_MS"}, def: "6000", usage: "smallest session timeout a member may ask for",
			set: func(c *Config, v string) error { return parseInt64(v, 1, 1<<31, &c.GroupMinSessionTimeoutMs) }},
		{key: "group.max.session.timeout.ms", flag: "group-max-session-timeout-ms", env: []string{"CHRONIK_GROUP_MAX_SESSION_TIMEOUT_MS"}, def: "1800000", usage: "largest session timeout a member may ask for",
			set: func(c *Config, v string) error { return parseInt64(v, 1, 1<<31, &c.GroupMaxSessionTimeoutMs) }},
		{key: "group.max.size", flag: "group-max-size", env: []string{"CHRONIK_GROUP_MAX_SIZE"}, def: "2147483647", usage: "most members a group may have",
			set: func(c *Config, v string) error { return parseInt32(v, 1, 1<<31-1, &c.GroupMaxSize) }},
		{key: "offsets.rewrite.after.records", flag: "offsets-rewrite-after-records", env: []string{"CHRONIK_OFFSETS_REWRITE_AFTER_RECORDS"}, def: "50000", usage: "an offsets partition whose log holds this many records more than twice its live state is rewritten and its older log dropped (Chronik's compaction of __consumer_offsets)",
			set: func(c *Config, v string) error { return parseInt64(v, 10, 1<<40, &c.OffsetsRewriteRecords) }},
		{key: "group.consumer.session.timeout.ms", flag: "group-consumer-session-timeout-ms", env: []string{"CHRONIK_GROUP_CONSUMER_SESSION_TIMEOUT_MS"}, def: "45000", usage: "session timeout of KIP-848 consumer group members (set by the broker, not the client)",
			set: func(c *Config, v string) error { return parseInt64(v, 1, 1<<31, &c.ConsumerSessionTimeoutMs) }},
		{key: "group.consumer.heartbeat.interval.ms", flag: "group-consumer-heartbeat-interval-ms", env: []string{"CHRONIK_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS"}, def: "5000", usage: "heartbeat interval of KIP-848 consumer group members",
			set: func(c *Config, v string) error { return parseInt64(v, 1, 1<<31, &c.ConsumerHeartbeatMs) }},
	}
}

// Flags registers every setting on fs; Resolve reads them back.
func Flags(fs *pflag.FlagSet) {
	fs.StringP("config", "c", "", "TOML config file (env CHRONIK_CONFIG); keys as listed in docs/CONFIG.md")
	for _, s := range settings() {
		fs.StringP(s.flag, s.short, s.def, s.usage+" (env "+strings.Join(s.env, ", ")+")")
	}
}

// Defaults returns every setting at its default (tests and embedders start
// from it and override what they need).
func Defaults() *Config {
	c := &Config{}
	for _, s := range settings() {
		if err := s.set(c, s.def); err != nil {
			panic(fmt.Sprintf("config: default of %s: %v", s.key, err))
		}
	}
	c.AutoRecover = true // the original's default; not acted on
	c.deriveCluster()
	return c
}

// Resolve builds the configuration from flags, the environment (getenv)
// and the config file, in that precedence, and validates it.
func Resolve(fs *pflag.FlagSet, getenv func(string) string) (*Config, error) {
	c := &Config{sources: map[string]string{}}
	file := ""
	if f := fs.Lookup("config"); f != nil && f.Changed {
		file = f.Value.String()
	} else if v := getenv("CHRONIK_CONFIG"); v != "" {
		file = v
	}
	fc := &fileConfig{values: map[string]string{}, autoRecover: true}
	if file != "" {
		var err error
		if fc, err = readFile(file); err != nil {
			return nil, err
		}
	}
	c.ConfigFile = file
	known := map[string]bool{}
	for _, s := range settings() {
		known[s.key] = true
		v, from := s.def, "default"
		if fv, ok := fc.values[s.key]; ok {
			v, from = fv, "config file key "+fc.keyName(s.key)
		}
		for i := len(s.env) - 1; i >= 0; i-- {
			if ev := getenv(s.env[i]); ev != "" {
				v, from = ev, "environment variable "+s.env[i]
			}
		}
		if f := fs.Lookup(s.flag); f != nil && f.Changed {
			v, from = f.Value.String(), "flag --"+s.flag
		}
		if s.key == "peers" && from == "default" && fc.peers != nil {
			// The file's [[peers]] tables were parsed and checked
			// entry by entry in readFile; they are not a string.
			c.Peers, c.sources[s.key] = fc.peers, "config file [[peers]]"
			continue
		}
		c.sources[s.key] = from
		if err := s.set(c, strings.TrimSpace(v)); err != nil {
			return nil, fmt.Errorf("invalid %s (%s = %q): %w", s.key, from, v, err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fc.values)) {
		if !known[k] {
			return nil, fmt.Errorf("config file %s: unknown key %q", file, k)
		}
	}
	c.AutoRecover = fc.autoRecover
	if fc.enabled != nil && !*fc.enabled && c.IsCluster() {
		// The original's switch: rather than guess whether the peers or
		// the switch is the mistake, stop and say so.
		return nil, fmt.Errorf("config file %s: enabled = false but peers are given (%s): remove the peers to run standalone", file, c.origin("peers"))
	}
	c.deriveCluster()
	if c.Advertise == "" {
		host, port, _ := net.SplitHostPort(c.Bind)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		c.Advertise = net.JoinHostPort(host, port)
	} else {
		a, err := hostPort(c.Advertise, portOf(c.Bind))
		if err != nil {
			return nil, fmt.Errorf("invalid advertise (%s = %q): %w", c.origin("advertise"), c.Advertise, err)
		}
		c.Advertise = a
	}
	return c, c.Validate()
}

// Validate checks relations between settings.
func (c *Config) Validate() error {
	if c.SegmentBytes < 4096 {
		// Kafka's floor is 14 bytes; ours must hold a header and a frame.
		return fmt.Errorf("invalid log.segment.bytes %d: must be at least 4096", c.SegmentBytes)
	}
	return c.validateCluster()
}

// ProduceProfileBytes returns the in-flight produce memory of a profile.
func ProduceProfileBytes(name string) int64 {
	switch name {
	case "balanced":
		return 32 << 20
	case "high-throughput":
		return 128 << 20
	case "extreme":
		return 512 << 20
	}
	return 16 << 20
}

// ProduceProfileName canonicalises a produce profile name (the original's
// aliases accepted).
func ProduceProfileName(v string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "low-latency", "low", "realtime":
		return "low-latency", nil
	case "balanced", "medium":
		return "balanced", nil
	case "high-throughput", "high", "bulk":
		return "high-throughput", nil
	case "extreme", "max", "ultra":
		return "extreme", nil
	}
	return "", errors.New("want low-latency, balanced, high-throughput or extreme")
}

// fileConfig is what a config file says: values by our setting keys, and
// the parts of the original's cluster file that are not plain values.
type fileConfig struct {
	values map[string]string
	// written maps a setting key to the key as the file wrote it (the
	// original's node_id for node.id), so messages quote the user's words.
	written     map[string]string
	peers       []Peer
	enabled     *bool
	autoRecover bool
}

func (f *fileConfig) keyName(key string) string {
	if w, ok := f.written[key]; ok {
		return w
	}
	return key
}

func readFile(path string) (*fileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(b), &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	fc := &fileConfig{values: map[string]string{}, written: map[string]string{}, autoRecover: true}
	// The original's cluster file: [[peers]] is an array of tables, and
	// [gossip] (seed lists) was parsed but never used by its start-up, so
	// it is accepted and ignored here too.
	if v, ok := raw["peers"]; ok {
		if _, isString := v.(string); !isString {
			if fc.peers, err = peersFromFile(v); err != nil {
				return nil, fmt.Errorf("config file %s: %w", path, err)
			}
			delete(raw, "peers")
		}
	}
	if v, ok := raw["gossip"]; ok {
		if _, isTable := v.(map[string]any); !isTable {
			return nil, fmt.Errorf("config file %s: key \"gossip\" must be a table", path)
		}
		delete(raw, "gossip")
	}
	for _, k := range []string{"enabled", "auto_recover"} {
		v, ok := raw[k]
		if !ok {
			continue
		}
		bv, isBool := v.(bool)
		if !isBool {
			return nil, fmt.Errorf("config file %s: key %q must be true or false", path, k)
		}
		if k == "enabled" {
			fc.enabled = &bv
		} else {
			fc.autoRecover = bv
		}
		delete(raw, k)
	}
	seen := map[string]string{} // setting key → the key as written
	var flatten func(prefix string, m map[string]any) error
	flatten = func(prefix string, m map[string]any) error {
		for k, v := range m {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			var s string
			switch v := v.(type) {
			case map[string]any:
				if err := flatten(key, v); err != nil {
					return err
				}
				continue
			case string:
				s = v
			case int64, bool, float64:
				s = fmt.Sprint(v)
			default:
				return fmt.Errorf("config file %s: key %q has an unsupported value", path, key)
			}
			if fileIgnored[key] {
				continue
			}
			written := key
			if alias, ok := fileAliases[key]; ok {
				key = alias
			}
			if prev, dup := seen[key]; dup {
				a, b := min(prev, written), max(prev, written) // map order is random; messages are not
				return fmt.Errorf("config file %s: keys %q and %q both set %s", path, a, b, key)
			}
			seen[key] = written
			fc.values[key] = s
			if written != key {
				fc.written[key] = written
			}
		}
		return nil
	}
	if err := flatten("", raw); err != nil {
		return nil, err
	}
	return fc, nil
}

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func oneOf(v string, options ...string) error {
	if slices.Contains(options, v) {
		return nil
	}
	return fmt.Errorf("want one of %s", strings.Join(options, ", "))
}

func parseInt32(v string, lo, hi int64, dst *int32) error {
	var x int64
	if err := parseInt64(v, lo, hi, &x); err != nil {
		return err
	}
	*dst = int32(x)
	return nil
}

func parseInt64(v string, lo, hi int64, dst *int64) error {
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return errors.New("not an integer")
	}
	if x < lo || x > hi {
		return fmt.Errorf("out of range [%d, %d]", lo, hi)
	}
	*dst = x
	return nil
}

// parseSize accepts a byte count with an optional KB/MB/GB (powers of 1024)
// suffix, as the original's CHRONIK_WAL_ROTATION_SIZE did.
func parseSize(v string, lo, hi int64, dst *int64) error {
	u := strings.ToUpper(strings.TrimSpace(v))
	mult := int64(1)
	for _, s := range []struct {
		suffix string
		m      int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(u, s.suffix) {
			u, mult = strings.TrimSpace(strings.TrimSuffix(u, s.suffix)), s.m
			break
		}
	}
	x, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return errors.New("not a size")
	}
	x *= mult
	if x < lo || x > hi {
		return fmt.Errorf("out of range [%d, %d]", lo, hi)
	}
	*dst = x
	return nil
}

func hostPort(v string, defPort int) (string, error) {
	if v == "" {
		return "", errors.New("must not be empty")
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		host, port = v, strconv.Itoa(defPort)
		if strings.Count(v, ":") > 1 && !strings.HasPrefix(v, "[") {
			host = v // bare IPv6
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}

// parseOverrides reads max.connections.per.ip.overrides: host:count pairs
// separated by commas (an IPv6 host is written in brackets).
func parseOverrides(v string) (map[string]int32, error) {
	out := map[string]int32{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := strings.LastIndex(part, ":")
		if i <= 0 {
			return nil, fmt.Errorf("%q: want host:count", part)
		}
		host := strings.Trim(part[:i], "[]")
		var n int32
		if err := parseInt32(part[i+1:], 0, 1<<31-1, &n); err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		out[host] = n
	}
	return out, nil
}

func portOf(hp string) int {
	_, p, _ := net.SplitHostPort(hp)
	n, _ := strconv.Atoi(p)
	return n
}

// Retention is log.retention.ms as a duration (-1: forever).
func (c *Config) Retention() time.Duration {
	if c.RetentionMs < 0 {
		return -1
	}
	return time.Duration(c.RetentionMs) * time.Millisecond
}

// SegmentAge is segment.ms as a duration.
func (c *Config) SegmentAge() time.Duration { return time.Duration(c.SegmentMs) * time.Millisecond }

// Settings documents every setting: key, flag, environment variables and
// default, for --help and docs/CONFIG.md.
func Settings() [][4]string {
	var out [][4]string
	for _, s := range settings() {
		out = append(out, [4]string{s.key, "--" + s.flag, strings.Join(s.env, ", "), s.def})
	}
	return out
}
