package configs

import (
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
