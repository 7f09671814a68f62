// Package configs knows Kafka's topic and dynamic broker configs as Chronik
// serves them: names, types, defaults (from the broker's settings),
// validation, and how an effective value is resolved (topic override, then
// dynamic broker default, then static broker setting, then Kafka default).
// It is pure: no I/O, no state.
package configs

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chronik-go/chronik/internal/config"
)

// Type is a config's Kafka type (DescribeConfigs v3+).
type Type int8

// Kafka's config types.
const (
	TypeBoolean Type = 1
	TypeString  Type = 2
	TypeInt     Type = 3
	TypeShort   Type = 4
	TypeLong    Type = 5
	TypeDouble  Type = 6
	TypeList    Type = 7
)

// Source says where an effective value comes from (Kafka's ConfigSource).
type Source int8

// Kafka's config sources.
const (
	SourceTopic         Source = 1 // DYNAMIC_TOPIC_CONFIG
	SourceDynamicBroker Source = 3 // DYNAMIC_DEFAULT_BROKER_CONFIG
	SourceStaticBroker  Source = 4 // STATIC_BROKER_CONFIG
	SourceDefault       Source = 5 // DEFAULT_CONFIG
)

// Def describes one topic config.
type Def struct {
	Name string
	Type Type
	// Broker is the broker config that supplies its default ("" if none).
	Broker string
	// Default is Kafka's default when no broker setting supplies one.
	Default string
	// Synonym is Kafka's broker config behind the topic config, and
	// SynonymDefault its default where it differs in unit from Default.
	Synonym, SynonymDefault string
	Doc                     string
	check                   func(string) error
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid config")

func longAtLeast(min int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			return fmt.Errorf("must be an integer >= %d", min)
		}
		return nil
	}
}

func intRange(min, max int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min || n > max {
			return fmt.Errorf("must be an integer in [%d, %d]", min, max)
		}
		return nil
	}
}

func oneOf(opts ...string) func(string) error {
	return func(v string) error {
		if slices.Contains(opts, v) {
			return nil
		}
		return fmt.Errorf("must be one of %s", strings.Join(opts, ", "))
	}
}

func boolean(v string) error {
	if v != "true" && v != "false" {
		return errors.New("must be true or false")
	}
	return nil
}

func ratio(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		return errors.New("must be a number in [0, 1]")
	}
	return nil
}

func cleanupPolicy(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "delete" && p != "compact" {
			return errors.New("must be a list of delete and compact")
		}
	}
	return nil
}

// Kafka's "not acted on" reasons, shared by the configs they explain.
const (
	docCompaction = "accepted and stored; not acted on: log compaction is not performed yet (compacted topics keep everything)"
	docRaft       = "accepted and stored; not acted on: durability is set by the WAL profile and Raft, not by flushes"
	docTiered     = "accepted and stored; not acted on: there is no tiered storage"
	docThrottle   = "accepted and stored; not acted on: replication is Raft's and is not throttled"
	docLevel      = "accepted and stored; not acted on: batches Chronik compresses use the codec's default level"
	docStorage    = "accepted and stored; not acted on: Chronik's segment and index layout is its own (docs/format)"
)

// Topic configs: every topic config Kafka 3.9 knows, in the order
// DescribeConfigs lists them, with Kafka's types, defaults and validation.
// Broker names the Chronik broker setting that supplies the default;
// Synonym and SynonymDefault are Kafka's broker config (and its default)
// that DescribeConfigs names as the DEFAULT_CONFIG synonym.
var topicDefs = []Def{
	{Name: "cleanup.policy", Type: TypeList, Default: "delete", Synonym: "log.cleanup.policy", Doc: "delete: retention applies; compact alone keeps everything (log compaction is not performed yet, so retention is off)", check: cleanupPolicy},
	{Name: "compression.gzip.level", Type: TypeInt, Default: "-1", Synonym: "compression.gzip.level", Doc: docLevel, check: gzipLevel},
	{Name: "compression.lz4.level", Type: TypeInt, Default: "9", Synonym: "compression.lz4.level", Doc: docLevel, check: intRange(1, 17)},
	{Name: "compression.type", Type: TypeString, Default: "producer", Synonym: "compression.type", Doc: "producer keeps batches as the producer compressed them; uncompressed, gzip, snappy, lz4 or zstd recompresses batches that arrive in another codec", check: oneOf("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")},
	{Name: "compression.zstd.level", Type: TypeInt, Default: "3", Synonym: "compression.zstd.level", Doc: docLevel, check: intRange(-131072, 22)},
	{Name: "delete.retention.ms", Type: TypeLong, Default: "86400000", Synonym: "log.cleaner.delete.retention.ms", Doc: docCompaction, check: longAtLeast(0)},
	{Name: "file.delete.delay.ms", Type: TypeLong, Default: "60000", Synonym: "log.segment.delete.delay.ms", Doc: "accepted and stored; not acted on: retention deletes segments at once", check: longAtLeast(0)},
	{Name: "flush.messages", Type: TypeLong, Default: "9223372036854775807", Synonym: "log.flush.interval.messages", Doc: docRaft, check: longAtLeast(1)},
	{Name: "flush.ms", Type: TypeLong, Default: "9223372036854775807", Synonym: "log.flush.interval.ms", Doc: docRaft, check: longAtLeast(0)},
	{Name: "follower.replication.throttled.replicas", Type: TypeList, Default: "", Synonym: "follower.replication.throttled.replicas", Doc: docThrottle, check: throttledReplicas},
	{Name: "index.interval.bytes", Type: TypeInt, Default: "4096", Synonym: "log.index.interval.bytes", Doc: "spacing of the sparse offset index", check: intRange(0, 1<<31-1)},
	{Name: "leader.replication.throttled.replicas", Type: TypeList, Default: "", Synonym: "leader.replication.throttled.replicas", Doc: docThrottle, check: throttledReplicas},
	{Name: "local.retention.bytes", Type: TypeLong, Default: "-2", Synonym: "log.local.retention.bytes", Doc: docTiered, check: longAtLeast(-2)},
	{Name: "local.retention.ms", Type: TypeLong, Default: "-2", Synonym: "log.local.retention.ms", Doc: docTiered, check: longAtLeast(-2)},
	{Name: "max.compaction.lag.ms", Type: TypeLong, Default: "9223372036854775807", Synonym: "log.cleaner.max.compaction.lag.ms", Doc: docCompaction, check: longAtLeast(1)},
	{Name: "max.message.bytes", Type: TypeInt, Broker: "message.max.bytes", Default: "1048588", Synonym: "message.max.bytes", Doc: "largest record batch accepted (after recompression)", check: intRange(0, 1<<31-1)},
	{Name: "message.downconversion.enable", Type: TypeBoolean, Default: "true", Synonym: "log.message.downconversion.enable", Doc: "false refuses Fetch v0-v3 (message formats v0/v1) with UNSUPPORTED_VERSION", check: boolean},
	{Name: "message.format.version", Type: TypeString, Default: "3.0-IV1", Synonym: "log.message.format.version", Doc: "accepted and ignored, as Kafka 3 ignores it: batches are stored in format v2 (older producers' message sets are converted)", check: formatVersion},
	{Name: "message.timestamp.after.max.ms", Type: TypeLong, Default: "9223372036854775807", Synonym: "log.message.timestamp.after.max.ms", Doc: "CreateTime records more than this ahead of the broker's clock are refused (INVALID_TIMESTAMP)", check: longAtLeast(0)},
	{Name: "message.timestamp.before.max.ms", Type: TypeLong, Default: "9223372036854775807", Synonym: "log.message.timestamp.before.max.ms", Doc: "CreateTime records more than this behind the broker's clock are refused (INVALID_TIMESTAMP)", check: longAtLeast(0)},
	{Name: "message.timestamp.difference.max.ms", Type: TypeLong, Default: "9223372036854775807", Synonym: "log.message.timestamp.difference.max.ms", Doc: "deprecated: the before and after bounds where those are not set", check: longAtLeast(0)},
	{Name: "message.timestamp.type", Type: TypeString, Default: "CreateTime", Synonym: "log.message.timestamp.type", Doc: "CreateTime or LogAppendTime (the broker stamps batches)", check: oneOf("CreateTime", "LogAppendTime")},
	{Name: "min.cleanable.dirty.ratio", Type: TypeDouble, Default: "0.5", Synonym: "log.cleaner.min.cleanable.ratio", Doc: docCompaction, check: ratio},
	{Name: "min.compaction.lag.ms", Type: TypeLong, Default: "0", Synonym: "log.cleaner.min.compaction.lag.ms", Doc: docCompaction, check: longAtLeast(0)},
	{Name: "min.insync.replicas", Type: TypeInt, Broker: "min.insync.replicas", Default: "1", Synonym: "min.insync.replicas", Doc: "replicas that must have an acks=all write", check: intRange(1, 1<<31-1)},
	{Name: "preallocate", Type: TypeBoolean, Default: "false", Synonym: "log.preallocate", Doc: "accepted and stored; not acted on: segments grow as written", check: boolean},
	{Name: "remote.log.copy.disable", Type: TypeBoolean, Default: "false", Doc: docTiered, check: boolean},
	{Name: "remote.log.delete.on.disable", Type: TypeBoolean, Default: "false", Doc: docTiered, check: boolean},
	{Name: "remote.storage.enable", Type: TypeBoolean, Default: "false", Doc: docTiered, check: boolean},
	{Name: "retention.bytes", Type: TypeLong, Broker: "log.retention.bytes", Default: "-1", Synonym: "log.retention.bytes", Doc: "partition size above which the oldest segments are deleted", check: longAtLeast(math.MinInt64)},
	{Name: "retention.ms", Type: TypeLong, Broker: "log.retention.ms", Default: "604800000", Synonym: "log.retention.hours", SynonymDefault: "168", Doc: "age after which segments are deleted", check: longAtLeast(-1)},
	{Name: "segment.bytes", Type: TypeInt, Broker: "log.segment.bytes", Default: "1073741824", Synonym: "log.segment.bytes", Doc: "segment size before rolling (Chronik needs at least 4096; Kafka 14)", check: intRange(4096, 1<<31-1)},
	{Name: "segment.index.bytes", Type: TypeInt, Default: "10485760", Synonym: "log.index.size.max.bytes", Doc: docStorage, check: intRange(4, 1<<31-1)},
	{Name: "segment.jitter.ms", Type: TypeLong, Default: "0", Synonym: "log.roll.jitter.hours", SynonymDefault: "0", Doc: "accepted and stored; not acted on: segments roll at segment.ms without jitter", check: longAtLeast(0)},
	{Name: "segment.ms", Type: TypeLong, Broker: "log.roll.ms", Default: "604800000", Synonym: "log.roll.hours", SynonymDefault: "168", Doc: "segment age before rolling", check: longAtLeast(1)},
	{Name: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", Synonym: "unclean.leader.election.enable", Doc: "accepted and stored; not acted on: only Raft elects leaders, never an out-of-date replica", check: boolean},
}

// gzipLevel is Kafka's gzip level: -1 (the codec's default) or 1..9.
func gzipLevel(v string) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || (n != -1 && (n < 1 || n > 9)) {
		return errors.New("must be -1 or an integer in [1, 9]")
	}
	return nil
}

// throttledReplicas is Kafka's throttled replica list: empty, "*", or
// partition:broker pairs.
func throttledReplicas(v string) error {
	if v = strings.TrimSpace(v); v == "" || v == "*" {
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(p), ":")
		_, e1 := strconv.ParseUint(a, 10, 31)
		_, e2 := strconv.ParseUint(b, 10, 31)
		if !ok || e1 != nil || e2 != nil {
			return errors.New("must be *, or a list of partition:broker pairs")
		}
	}
	return nil
}

// kafkaReleases are the minor releases message.format.version (Kafka's
// metadata version strings) may name.
var kafkaReleases = map[string]bool{"0.8.0": true, "0.8.1": true, "0.8.2": true, "0.9.0": true, "0.10.0": true, "0.10.1": true,
	"0.10.2": true, "0.11.0": true, "1.0": true, "1.1": true, "2.0": true, "2.1": true, "2.2": true, "2.3": true, "2.4": true,
	"2.5": true, "2.6": true, "2.7": true, "2.8": true, "3.0": true, "3.1": true, "3.2": true, "3.3": true, "3.4": true,
	"3.5": true, "3.6": true, "3.7": true, "3.8": true, "3.9": true}

// formatVersion accepts what Kafka 3.9 parses as a message format version:
// a release ("0.10.0", "2.8", "3.0.1") optionally with an -IVn suffix.
func formatVersion(v string) error {
	base, iv, hasIV := strings.Cut(v, "-IV")
	if hasIV {
		if _, err := strconv.ParseUint(iv, 10, 8); err != nil {
			return errors.New("must be a Kafka version such as 0.10.0, 2.8 or 3.0-IV1")
		}
	}
	parts := strings.Split(base, ".")
	for n := len(parts); n >= 2; n-- {
		if kafkaReleases[strings.Join(parts[:n], ".")] {
			for _, p := range parts[n:] {
				if _, err := strconv.ParseUint(p, 10, 8); err != nil {
					return errors.New("must be a Kafka version such as 0.10.0, 2.8 or 3.0-IV1")
				}
			}
			if len(parts) <= 3 {
				return nil
			}
		}
	}
	return errors.New("must be a Kafka version such as 0.10.0, 2.8 or 3.0-IV1")
}

// TopicDefs returns the topic config definitions.
func TopicDefs() []Def { return topicDefs }

// TopicDef returns the named topic config.
func TopicDef(name string) (Def, bool) {
	for _, d := range topicDefs {
		if d.Name == name {
			return d, true
		}
	}
	return Def{}, false
}

// ValidateTopic checks a set of topic overrides.
func ValidateTopic(m map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		d, ok := TopicDef(k)
		if !ok {
			return fmt.Errorf("%w: unknown topic config %q", ErrInvalid, k)
		}
		if err := d.check(m[k]); err != nil {
			return fmt.Errorf("%w: %s=%q: %w", ErrInvalid, k, m[k], err)
		}
	}
	return nil
}

// BrokerDef is a broker config DescribeConfigs reports.
type BrokerDef struct {
	Name string
	Type Type
	// Dynamic configs can be changed while the broker runs
	// (IncrementalAlterConfigs on the broker resource).
	Dynamic bool
	value   func(c *config.Config) string
	check   func(string) error
}

var brokerDefs = []BrokerDef{
	{Name: "auto.create.topics.enable", Type: TypeBoolean, Dynamic: true, value: func(c *config.Config) string { return strconv.FormatBool(c.AutoCreateTopics) }, check: boolean},
	{Name: "broker.id", Type: TypeInt, value: func(c *config.Config) string { return strconv.Itoa(int(c.NodeID)) }},
	{Name: "default.replication.factor", Type: TypeInt, value: func(c *config.Config) string { return atLeastOne(c.DefaultReplicationFactor) }},
	{Name: "log.dirs", Type: TypeString, value: func(c *config.Config) string { return c.DataDir }},
	{Name: "log.retention.bytes", Type: TypeLong, Dynamic: true, value: func(c *config.Config) string { return strconv.FormatInt(c.RetentionBytes, 10) }, check: longAtLeast(-1)},
	{Name: "log.retention.ms", Type: TypeLong, Dynamic: true, value: func(c *config.Config) string { return strconv.FormatInt(c.RetentionMs, 10) }, check: longAtLeast(-1)},
	{Name: "log.roll.ms", Type: TypeLong, Dynamic: true, value: func(c *config.Config) string { return strconv.FormatInt(c.SegmentMs, 10) }, check: longAtLeast(1)},
	{Name: "log.segment.bytes", Type: TypeInt, Dynamic: true, value: func(c *config.Config) string { return strconv.FormatInt(c.SegmentBytes, 10) }, check: intRange(4096, 1<<31-1)},
	{Name: "message.max.bytes", Type: TypeInt, Dynamic: true, value: func(*config.Config) string { return "1048588" }, check: intRange(0, 1<<31-1)},
	{Name: "min.insync.replicas", Type: TypeInt, Dynamic: true, value: func(c *config.Config) string { return atLeastOne(c.MinInsyncReplicas) }, check: intRange(1, 1<<31-1)},
	{Name: "num.partitions", Type: TypeInt, Dynamic: true, value: func(c *config.Config) string { return strconv.Itoa(int(c.NumPartitions)) }, check: intRange(1, 1<<20)},
	{Name: "socket.request.max.bytes", Type: TypeInt, value: func(c *config.Config) string { return strconv.Itoa(int(c.SocketRequestMaxBytes)) }},
	{Name: "wal.profile", Type: TypeString, value: func(c *config.Config) string { return c.WALProfile }},
	{Name: "produce.profile", Type: TypeString, value: func(c *config.Config) string { return c.ProduceProfile }},
}

// atLeastOne formats a replica count of the static config; a Config built
// by hand rather than by config.Defaults or Resolve leaves it 0, which
// would make every topic creation fail, so it reads as Kafka's default 1.
func atLeastOne(n int16) string {
	return strconv.Itoa(int(max(n, 1)))
}

// BrokerDefs returns the broker configs DescribeConfigs reports.
func BrokerDefs() []BrokerDef { return brokerDefs }

// BrokerDefByName returns a broker config.
func BrokerDefByName(name string) (BrokerDef, bool) {
	for _, d := range brokerDefs {
		if d.Name == name {
			return d, true
		}
	}
	return BrokerDef{}, false
}

// ValidateBroker checks dynamic broker config changes.
func ValidateBroker(m map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		d, ok := BrokerDefByName(k)
		switch {
		case !ok:
			return fmt.Errorf("%w: unknown broker config %q", ErrInvalid, k)
		case !d.Dynamic:
			return fmt.Errorf("%w: broker config %q cannot be changed while the broker runs", ErrInvalid, k)
		}
		if err := d.check(m[k]); err != nil {
			return fmt.Errorf("%w: %s=%q: %w", ErrInvalid, k, m[k], err)
		}
	}
	return nil
}

// Resolver answers effective values.
type Resolver struct {
	Static  *config.Config
	Dynamic map[string]string // dynamic broker defaults (from metadata)
}

// Broker returns the effective value of a broker config and its source.
func (r Resolver) Broker(name string) (string, Source, bool) {
	d, ok := BrokerDefByName(name)
	if !ok {
		return "", 0, false
	}
	if v, ok := r.Dynamic[name]; ok {
		return v, SourceDynamicBroker, true
	}
	return d.value(r.Static), SourceStaticBroker, true
}

// Topic returns the effective value of a topic config and its source.
func (r Resolver) Topic(overrides map[string]string, name string) (string, Source, bool) {
	d, ok := TopicDef(name)
	if !ok {
		return "", 0, false
	}
	if v, ok := overrides[name]; ok {
		return v, SourceTopic, true
	}
	if d.Broker != "" {
		if v, src, ok := r.Broker(d.Broker); ok {
			return v, src, true
		}
	}
	return d.Default, SourceDefault, true
}

// Effective is the typed topic configuration the broker applies.
type Effective struct {
	RetentionMs     int64
	RetentionBytes  int64
	SegmentBytes    int64
	SegmentMs       int64
	MaxMessageBytes int
	LogAppendTime   bool
	Compact         bool
	IndexInterval   int64
	// MinInsyncReplicas is min.insync.replicas: the in-sync replicas an
	// acks=all produce needs.
	MinInsyncReplicas int
	// Compression is compression.type as a codec id, -1 for producer.
	Compression int8
	// TimestampBeforeMs and TimestampAfterMs bound CreateTime timestamps
	// around the broker's clock (math.MaxInt64: unbounded).
	TimestampBeforeMs, TimestampAfterMs int64
	// DownConversion is message.downconversion.enable.
	DownConversion bool
}

// codecs maps compression.type to codec ids.
var codecs = map[string]int8{"producer": -1, "uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

// Effective resolves every config the broker applies for a topic.
func (r Resolver) Effective(overrides map[string]string) Effective {
	get := func(n string) string { v, _, _ := r.Topic(overrides, n); return v }
	i := func(n string) int64 { v, _ := strconv.ParseInt(get(n), 10, 64); return v }
	e := Effective{
		RetentionMs: i("retention.ms"), RetentionBytes: i("retention.bytes"), SegmentBytes: i("segment.bytes"),
		SegmentMs: i("segment.ms"), MaxMessageBytes: int(i("max.message.bytes")), IndexInterval: i("index.interval.bytes"),
		LogAppendTime:     get("message.timestamp.type") == "LogAppendTime",
		MinInsyncReplicas: int(i("min.insync.replicas")),
		Compact:           strings.Contains(get("cleanup.policy"), "compact") && !strings.Contains(get("cleanup.policy"), "delete"),
		Compression:       codecs[get("compression.type")],
		TimestampBeforeMs: i("message.timestamp.before.max.ms"),
		TimestampAfterMs:  i("message.timestamp.after.max.ms"),
		DownConversion:    get("message.downconversion.enable") != "false",
	}
	// The deprecated difference bound stands in for a bound not set
	// (Kafka 3.6+, KIP-937).
	if diff := i("message.timestamp.difference.max.ms"); diff != math.MaxInt64 {
		if e.TimestampBeforeMs == math.MaxInt64 {
			e.TimestampBeforeMs = diff
		}
		if e.TimestampAfterMs == math.MaxInt64 {
			e.TimestampAfterMs = diff
		}
	}
	if e.Compact {
		// Without compaction a compacted topic must keep everything.
		e.RetentionMs, e.RetentionBytes = -1, -1
	}
	if e.IndexInterval <= 0 {
		e.IndexInterval = 4096
	}
	return e
}

// Retention is retention.ms as a duration (-1: forever).
func (e Effective) Retention() time.Duration {
	if e.RetentionMs < 0 {
		return -1
	}
	return time.Duration(e.RetentionMs) * time.Millisecond
}
