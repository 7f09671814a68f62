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
	Doc     string
	check   func(string) error
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

// Topic configs, in the order DescribeConfigs lists them.
var topicDefs = []Def{
	{Name: "cleanup.policy", Type: TypeList, Default: "delete", Doc: "delete or compact (compaction is not performed yet: compacted topics keep everything)", check: cleanupPolicy},
	{Name: "compression.type", Type: TypeString, Default: "producer", Doc: "batches are stored as the producer compressed them", check: oneOf("producer")},
	{Name: "delete.retention.ms", Type: TypeLong, Default: "86400000", Doc: "kept for compatibility", check: longAtLeast(0)},
	{Name: "file.delete.delay.ms", Type: TypeLong, Default: "60000", Doc: "kept for compatibility", check: longAtLeast(0)},
	{Name: "flush.messages", Type: TypeLong, Default: "9223372036854775807", Doc: "durability is set by the WAL profile", check: longAtLeast(1)},
	{Name: "flush.ms", Type: TypeLong, Default: "9223372036854775807", Doc: "durability is set by the WAL profile", check: longAtLeast(0)},
	{Name: "index.interval.bytes", Type: TypeInt, Default: "4096", Doc: "spacing of the sparse offset index", check: intRange(0, 1<<31-1)},
	{Name: "max.compaction.lag.ms", Type: TypeLong, Default: "9223372036854775807", check: longAtLeast(1)},
	{Name: "max.message.bytes", Type: TypeInt, Broker: "message.max.bytes", Default: "1048588", Doc: "largest record batch accepted", check: intRange(0, 1<<31-1)},
	{Name: "message.timestamp.type", Type: TypeString, Default: "CreateTime", Doc: "CreateTime or LogAppendTime", check: oneOf("CreateTime", "LogAppendTime")},
	{Name: "min.cleanable.dirty.ratio", Type: TypeDouble, Default: "0.5", check: ratio},
	{Name: "min.compaction.lag.ms", Type: TypeLong, Default: "0", check: longAtLeast(0)},
	{Name: "min.insync.replicas", Type: TypeInt, Broker: "min.insync.replicas", Default: "1", Doc: "replicas that must have an acks=all write", check: intRange(1, 1<<31-1)},
	{Name: "preallocate", Type: TypeBoolean, Default: "false", check: boolean},
	{Name: "retention.bytes", Type: TypeLong, Broker: "log.retention.bytes", Default: "-1", Doc: "partition size above which the oldest segments are deleted", check: longAtLeast(-1)},
	{Name: "retention.ms", Type: TypeLong, Broker: "log.retention.ms", Default: "604800000", Doc: "age after which segments are deleted", check: longAtLeast(-1)},
	{Name: "segment.bytes", Type: TypeInt, Broker: "log.segment.bytes", Default: "1073741824", Doc: "segment size before rolling", check: intRange(4096, 1<<31-1)},
	{Name: "segment.index.bytes", Type: TypeInt, Default: "10485760", Doc: "kept for compatibility", check: intRange(4, 1<<31-1)},
	{Name: "segment.jitter.ms", Type: TypeLong, Default: "0", check: longAtLeast(0)},
	{Name: "segment.ms", Type: TypeLong, Broker: "log.roll.ms", Default: "604800000", Doc: "segment age before rolling", check: longAtLeast(1)},
	{Name: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", check: boolean},
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
}

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
