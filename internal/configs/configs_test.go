package configs

import (
	"errors"
	"math"
	"testing"

	"github.com/chronik-go/chronik/internal/config"
)

// TestStaticClusterDefaultsAreTopicDefaults: the static settings a cluster
// file gives (replication_factor, min_insync_replicas) are the broker
// defaults that topics fall back to, below dynamic broker configs and topic
// overrides.
func TestStaticClusterDefaultsAreTopicDefaults(t *testing.T) {
	c := config.Defaults()
	c.DefaultReplicationFactor, c.MinInsyncReplicas = 3, 2
	r := Resolver{Static: c}
	for name, want := range map[string]string{"default.replication.factor": "3", "min.insync.replicas": "2"} {
		if v, src, ok := r.Broker(name); !ok || v != want || src != SourceStaticBroker {
			t.Errorf("broker %s = %q (source %d, %v), want %q from the static config", name, v, src, ok, want)
		}
	}
	if v, src, _ := r.Topic(nil, "min.insync.replicas"); v != "2" || src != SourceStaticBroker {
		t.Errorf("topic min.insync.replicas = %q (source %d), want the broker's 2", v, src)
	}
	if e := r.Effective(nil); e.MinInsyncReplicas != 2 {
		t.Errorf("Effective().MinInsyncReplicas = %d, want 2", e.MinInsyncReplicas)
	}
	if e := r.Effective(map[string]string{"min.insync.replicas": "3"}); e.MinInsyncReplicas != 3 {
		t.Errorf("topic override: MinInsyncReplicas = %d, want 3", e.MinInsyncReplicas)
	}
	r.Dynamic = map[string]string{"min.insync.replicas": "1"}
	if v, src, _ := r.Topic(nil, "min.insync.replicas"); v != "1" || src != SourceDynamicBroker {
		t.Errorf("dynamic broker default: %q (source %d)", v, src)
	}
}

// TestStandaloneReplicaDefaults: a standalone node and a Config built by
// hand keep Kafka's defaults of 1.
func TestStandaloneReplicaDefaults(t *testing.T) {
	for _, c := range []*config.Config{config.Defaults(), {}} {
		r := Resolver{Static: c}
		for _, name := range []string{"default.replication.factor", "min.insync.replicas"} {
			if v, _, _ := r.Broker(name); v != "1" {
				t.Errorf("%s = %q, want 1", name, v)
			}
		}
		if e := r.Effective(nil); e.MinInsyncReplicas != 1 {
			t.Errorf("MinInsyncReplicas = %d", e.MinInsyncReplicas)
		}
	}
}

// kafka39TopicConfigs is every topic config Kafka 3.9 knows (its
// TopicConfig and LogConfig), each with a value Kafka accepts and, where
// its validator refuses something, a value Kafka refuses.
var kafka39TopicConfigs = []struct{ name, good, bad string }{
	{"cleanup.policy", "compact,delete", "shred"},
	{"compression.gzip.level", "9", "10"},
	{"compression.lz4.level", "17", "0"},
	{"compression.type", "lz4", "brotli"},
	{"compression.zstd.level", "-5", "23"},
	{"delete.retention.ms", "0", "-1"},
	{"file.delete.delay.ms", "1000", "-1"},
	{"flush.messages", "1", "0"},
	{"flush.ms", "0", "-1"},
	{"follower.replication.throttled.replicas", "0:1,1:2", "0-1"},
	{"index.interval.bytes", "0", "-1"},
	{"leader.replication.throttled.replicas", "*", "x:y"},
	{"local.retention.bytes", "-2", "-3"},
	{"local.retention.ms", "-2", "-3"},
	{"max.compaction.lag.ms", "1", "0"},
	{"max.message.bytes", "0", "-1"},
	{"message.downconversion.enable", "false", "no"},
	{"message.format.version", "0.10.0", "banana"},
	{"message.timestamp.after.max.ms", "0", "-1"},
	{"message.timestamp.before.max.ms", "3600000", "-1"},
	{"message.timestamp.difference.max.ms", "60000", "-1"},
	{"message.timestamp.type", "LogAppendTime", "AppendTime"},
	{"min.cleanable.dirty.ratio", "0.9", "1.5"},
	{"min.compaction.lag.ms", "0", "-1"},
	{"min.insync.replicas", "2", "0"},
	{"preallocate", "true", "yes"},
	{"remote.log.copy.disable", "true", "1"},
	{"remote.log.delete.on.disable", "false", "0"},
	{"remote.storage.enable", "false", "off"},
	{"retention.bytes", "-1", "lots"},
	{"retention.ms", "-1", "-2"},
	{"segment.bytes", "1048576", "0"},
	{"segment.index.bytes", "4", "3"},
	{"segment.jitter.ms", "0", "-1"},
	{"segment.ms", "1", "0"},
	{"unclean.leader.election.enable", "true", "maybe"},
}

// TestEveryKafka39TopicConfigIsAcceptedAndValidated: each of Kafka 3.9's
// topic configs is known, takes a value Kafka takes and refuses one Kafka
// refuses; nothing else is known.
func TestEveryKafka39TopicConfigIsAcceptedAndValidated(t *testing.T) {
	known := map[string]bool{}
	for _, c := range kafka39TopicConfigs {
		known[c.name] = true
		if err := ValidateTopic(map[string]string{c.name: c.good}); err != nil {
			t.Errorf("%s=%s refused: %v", c.name, c.good, err)
		}
		if err := ValidateTopic(map[string]string{c.name: c.bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s=%s accepted (%v)", c.name, c.bad, err)
		}
	}
	for _, d := range TopicDefs() {
		if !known[d.Name] {
			t.Errorf("%s is not a Kafka 3.9 topic config", d.Name)
		}
		if d.Doc == "" {
			t.Errorf("%s has no documentation", d.Name)
		}
	}
	if len(TopicDefs()) != len(kafka39TopicConfigs) {
		t.Errorf("%d topic configs, Kafka 3.9 has %d", len(TopicDefs()), len(kafka39TopicConfigs))
	}
	if err := ValidateTopic(map[string]string{"kfake.is_internal": "true"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown config was accepted: %v", err)
	}
}

// TestMessageFormatVersions: the versions Kafka 3.9 parses.
func TestMessageFormatVersions(t *testing.T) {
	for _, v := range []string{"0.8.0", "0.9.0", "0.10.0", "0.10.0-IV1", "0.10.2", "0.11.0", "1.0", "2.8", "2.8-IV1", "3.0", "3.0-IV1", "3.9", "3.0.1"} {
		if err := formatVersion(v); err != nil {
			t.Errorf("%s refused: %v", v, err)
		}
	}
	for _, v := range []string{"", "0.7", "4.0", "3", "3.0-IVx", "banana", "3.0.0.0"} {
		if formatVersion(v) == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// TestTimestampBoundsResolve: before/after default to unbounded; the
// deprecated difference stands in for either one not set (KIP-937).
func TestTimestampBoundsResolve(t *testing.T) {
	r := Resolver{Static: config.Defaults()}
	for _, c := range []struct {
		over          map[string]string
		before, after int64
	}{
		{nil, math.MaxInt64, math.MaxInt64},
		{map[string]string{"message.timestamp.difference.max.ms": "60000"}, 60000, 60000},
		{map[string]string{"message.timestamp.difference.max.ms": "60000", "message.timestamp.after.max.ms": "5"}, 60000, 5},
		{map[string]string{"message.timestamp.before.max.ms": "7"}, 7, math.MaxInt64},
	} {
		e := r.Effective(c.over)
		if e.TimestampBeforeMs != c.before || e.TimestampAfterMs != c.after {
			t.Errorf("%v: before %d after %d, want %d %d", c.over, e.TimestampBeforeMs, e.TimestampAfterMs, c.before, c.after)
		}
	}
	if e := r.Effective(map[string]string{"compression.type": "uncompressed"}); e.Compression != 0 {
		t.Errorf("uncompressed is codec %d", e.Compression)
	}
	if e := r.Effective(nil); e.Compression != -1 || !e.DownConversion {
		t.Errorf("defaults: compression %d, down-conversion %v", e.Compression, e.DownConversion)
	}
}
