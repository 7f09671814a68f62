package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chronik-go/chronik/internal/meta"
)

// The metadata log is compacted: once it grew past
// metadata.log.max.record.bytes.between.snapshots the state is saved as a
// snapshot and the segments it covers deleted; a restart restores the
// snapshot and replays only the tail, with every topic as it was.
func TestMetadataLogCompactsAndRestoresAfterRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MetadataSegmentBytes, cfg.MetadataSnapshotBytes = 4096, 4096
	s, stop := running(t, cfg)
	ctx := context.Background()
	ids := map[string][16]byte{}
	for i := range 60 {
		name := fmt.Sprintf("t%03d", i)
		if _, err := s.ProposeMeta(ctx, &meta.Command{Op: meta.OpCreateTopic, Topic: name, TopicID: [16]byte{byte(i + 1)}, Replicas: [][]int32{{1}}}); err != nil {
			t.Fatal(err)
		}
		ids[name] = [16]byte{byte(i + 1)}
	}
	if _, err := s.ProposeMeta(ctx, &meta.Command{Op: meta.OpAlterConfigs, Topic: "t007", Configs: map[string]string{"retention.ms": "1234"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		first, _ := s.metaLog.FirstIndex()
		if idx, _, ok := s.metaLog.Saved(); ok && first > 1 && idx >= first-1 {
			t.Logf("metadata snapshot at index %d; the log starts at %d", idx, first)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metadata snapshot and compaction (log starts at %d)", first)
		}
		time.Sleep(50 * time.Millisecond)
	}
	clusterID := s.meta.ClusterID()
	stop()

	s, stop = running(t, cfg)
	defer stop()
	if first, _ := s.metaLog.FirstIndex(); first <= 1 {
		t.Fatalf("the metadata log starts at %d after restart: not compacted", first)
	}
	if got := s.meta.ClusterID(); got != clusterID || got == "" {
		t.Fatalf("cluster id %q after restart, was %q", got, clusterID)
	}
	for name, id := range ids {
		tp, ok := s.meta.Topic(name)
		if !ok || tp.ID != id || len(tp.Partitions) != 1 {
			t.Fatalf("topic %s after restart: %+v (found %v)", name, tp, ok)
		}
	}
	if tp, _ := s.meta.Topic("t007"); tp.Configs["retention.ms"] != "1234" {
		t.Fatalf("t007 configs after restart: %v", tp.Configs)
	}
	// New partition groups get fresh ids: the allocator came back too.
	if _, err := s.ProposeMeta(ctx, &meta.Command{Op: meta.OpCreateTopic, Topic: "after", Replicas: [][]int32{{1}}}); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]string{}
	for _, tp := range s.meta.Topics() {
		for _, p := range tp.Partitions {
			if other, dup := seen[p.Group]; dup {
				t.Fatalf("group id %d given to %s and %s-%d", p.Group, other, tp.Name, p.Index)
			}
			seen[p.Group] = fmt.Sprintf("%s-%d", tp.Name, p.Index)
		}
	}
	waitLeader(t, s, "after", 0)
}
