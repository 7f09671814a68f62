package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chronik-go/chronik/internal/config"
	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/testfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig(dir string) *config.Config {
	return &config.Config{DataDir: dir, NodeID: 1, Bind: "127.0.0.1:0", Advertise: "127.0.0.1:0", WALProfile: "low",
		ProduceProfile: "low-latency", SegmentBytes: 64 << 10, SegmentMs: 1 << 40, RetentionMs: -1, RetentionBytes: -1,
		NumPartitions: 1, AutoCreateTopics: true, SocketRequestMaxBytes: 100 << 20}
}

// running starts a server and returns a stop function.
func running(t *testing.T, cfg *config.Config) (*Server, func()) {
	t.Helper()
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for !s.Ready() {
		select {
		case err := <-errc:
			t.Fatalf("server stopped during start-up: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s, func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("server: %v", err)
		}
	}
}

func waitLeader(t *testing.T, s *Server, topic string, idx int32) *partition.Partition {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if p, ok := s.Partition(topic, idx); ok && p.Group.Status().IsLeader {
			return p
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("partition %s-%d has no leader", topic, idx)
	return nil
}

// produce appends one batch of n records through the partition's produce
// path with acks=all and returns its base offset.
func produce(t *testing.T, p *partition.Partition, n int) (int64, error) {
	t.Helper()
	recs := make([]records.Record, n)
	for i := range recs {
		recs[i] = records.Record{Value: []byte("value")}
	}
	batch := records.Build(0, time.Now().UnixMilli(), recs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := p.Produce(ctx, append([]byte{0}, batch...), -1)(ctx)
	return r.BaseOffset, r.Err
}

func TestTopicLifecycleAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s, stop := running(t, cfg)
	ctx := context.Background()
	if _, err := s.ProposeMeta(ctx, &meta.Command{Op: meta.OpCreateTopic, Topic: "orders", Replicas: [][]int32{{1}, {1}}}); err != nil {
		t.Fatal(err)
	}
	p0 := waitLeader(t, s, "orders", 0)
	var last int64
	for i := range 50 {
		base, err := produce(t, p0, 3)
		if err != nil {
			t.Fatal(err)
		}
		if base != int64(i*3) {
			t.Fatalf("batch %d at offset %d", i, base)
		}
		last = base + 3
	}
	if hw := p0.Group.HighWatermark(); hw != last {
		t.Fatalf("high watermark %d, want %d", hw, last)
	}
	stop()

	// After a restart the topic, its data and its high watermark are back.
	s, stop = running(t, cfg)
	p0 = waitLeader(t, s, "orders", 0)
	deadline := time.Now().Add(10 * time.Second)
	for p0.Group.HighWatermark() != last && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if hw := p0.Group.HighWatermark(); hw != last {
		t.Fatalf("high watermark after restart %d, want %d", hw, last)
	}
	bs, err := p0.Log.ReadRecords(0, 1<<20, last)
	if err != nil || len(bs) != 50 {
		t.Fatalf("read back %d batches: %v", len(bs), err)
	}
	if base, err := produce(t, p0, 1); err != nil || base != last {
		t.Fatalf("first offset after restart %d (%v), want %d", base, err, last)
	}

	// Deleting the topic stops its partitions and removes their data; a new
	// topic of the same name starts empty.
	if _, err := s.ProposeMeta(ctx, &meta.Command{Op: meta.OpDeleteTopic, Topic: "orders"}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "logs", "orders-0")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("partition directory not removed after delete")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.ProposeMeta(ctx, &meta.Command{Op: meta.OpCreateTopic, Topic: "orders", Replicas: [][]int32{{1}}}); err != nil {
		t.Fatal(err)
	}
	p0 = waitLeader(t, s, "orders", 0)
	if base, err := produce(t, p0, 1); err != nil || base != 0 {
		t.Fatalf("recreated topic: first offset %d (%v)", base, err)
	}
	stop()
}

func TestCorruptPartitionGoesOfflineOthersServe(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s, stop := running(t, cfg)
	for _, name := range []string{"a", "b"} {
		if _, err := s.ProposeMeta(context.Background(), &meta.Command{Op: meta.OpCreateTopic, Topic: name, Replicas: [][]int32{{1}}}); err != nil {
			t.Fatal(err)
		}
		p := waitLeader(t, s, name, 0)
		for range 200 {
			if _, err := produce(t, p, 50); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop()
	// Damage a sealed segment header of "a".
	segs, _ := filepath.Glob(filepath.Join(dir, "logs", "a-0", "*.log"))
	if len(segs) < 2 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	f, _ := os.OpenFile(segs[0], os.O_RDWR, 0)
	_, _ = f.WriteAt([]byte{0xFF, 0xFF}, 20)
	_ = f.Close()

	s, stop = running(t, cfg)
	defer stop()
	if off := s.Offline(); off["a-0"] == nil || len(off) != 1 {
		t.Fatalf("offline partitions: %v", off)
	}
	// Reported like any offline partition; the broker stays ready.
	if h, ok := s.Readiness(); !ok || len(h.Partitions.Offline) != 1 || !strings.HasPrefix(h.Partitions.Offline[0], "a-0: ") {
		t.Fatalf("readiness with a corrupt partition: %v %+v", ok, h)
	}
	if !s.PartitionOffline("a", 0) || s.PartitionOffline("b", 0) {
		t.Fatal("PartitionOffline disagrees with Offline")
	}
	b := waitLeader(t, s, "b", 0)
	if _, err := produce(t, b, 1); err != nil {
		t.Fatalf("the healthy partition must keep serving: %v", err)
	}
}

// TestDiskFullPartitionRecovers: a partition whose disk fills fails its
// produce requests with an error, keeps everything acknowledged, and serves
// again by itself once space is freed (its supervisor reopens the log).
func TestDiskFullPartitionRecovers(t *testing.T) {
	mnt := testfs.SmallExt4(t, 32)
	filler := filepath.Join(mnt, "filler")
	testfs.Fill(t, filler, 20<<20)
	cfg := testConfig(filepath.Join(mnt, "data"))
	cfg.SegmentBytes = 1 << 20
	s, stop := running(t, cfg)
	defer stop()
	if _, err := s.ProposeMeta(context.Background(), &meta.Command{Op: meta.OpCreateTopic, Topic: "t", Replicas: [][]int32{{1}}}); err != nil {
		t.Fatal(err)
	}
	p := waitLeader(t, s, "t", 0)
	var acked int64
	var failure error
	for range 100_000 {
		base, err := produce(t, p, 500)
		if err != nil {
			failure = err
			break
		}
		acked = base + 500
	}
	if failure == nil || acked == 0 {
		t.Fatalf("no failure after filling the disk (acked %d)", acked)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// The supervisor reopens the log; the partition serves again with every
	// acknowledged record.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if q, ok := s.Partition("t", 0); ok && q.Group.Status().IsLeader && q.Group.HighWatermark() >= acked {
			if _, err := produce(t, q, 1); err == nil {
				if bs, err := q.Log.ReadRecords(0, 1<<30, acked); err != nil || len(bs) == 0 || bs[len(bs)-1].EndOffset != acked {
					t.Fatalf("acknowledged records after recovery: %v", err)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition did not recover after space was freed (first failure: %v)", failure)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
