package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/meta"
)

// metadataCodes asks a real client's Metadata for topic and returns each
// partition's error code.
func metadataCodes(t *testing.T, cl *kgo.Client, topic string) map[int32]int16 {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	out := map[int32]int16{}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			out[p.Partition] = p.ErrorCode
			if p.ErrorCode == kerr.KafkaStorageError.Code && (p.Leader != -1 || len(p.OfflineReplicas) != 1) {
				t.Fatalf("offline partition %d: leader %d offline replicas %v", p.Partition, p.Leader, p.OfflineReplicas)
			}
		}
	}
	return out
}

// listOffsetsCode asks for a partition's end offset and returns the
// partition's error code.
func listOffsetsCode(t *testing.T, cl *kgo.Client, topic string, index int32) int16 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = index, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Straight to the broker: the client's own routing would answer for it
	// from the metadata (no leader) without asking.
	kresp, err := cl.Broker(1).Request(ctx, req)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	resp := kresp.(*kmsg.ListOffsetsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("list offsets: %+v", resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// TestFatalPartitionOpenFailureRetried: a partition whose first open fails
// for real (its group marker replaced by a directory, so reading it gives
// EISDIR) does not stop start-up; it is offline with its reason in
// /readyz (which stays ready: the rest serve), Metadata answers it
// KAFKA_STORAGE_ERROR, chronik_partitions{state="offline"} is 1, and its
// neighbour produces and consumes. Once the cause is repaired, the
// supervisor's retry opens it without a restart, with its data.
func TestFatalPartitionOpenFailureRetried(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Metrics = "127.0.0.1:0"
	s, stop := running(t, cfg)
	if _, err := s.ProposeMeta(context.Background(), &meta.Command{Op: meta.OpCreateTopic, Topic: "t", Replicas: [][]int32{{1}, {1}}}); err != nil {
		t.Fatal(err)
	}
	for i := range int32(2) {
		if _, err := produce(t, waitLeader(t, s, "t", i), 10); err != nil {
			t.Fatal(err)
		}
	}
	stop()

	marker := filepath.Join(dir, "logs", "t-1", groupMarker)
	content, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(marker, 0o755); err != nil {
		t.Fatal(err)
	}

	s, stop = running(t, cfg)
	defer stop()
	if err := s.Offline()["t-1"]; err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("t-1 offline reason: %v (offline: %v)", err, s.Offline())
	}
	h, code := readyz(t, s.MetricsAddr().String())
	if code != 200 || len(h.Partitions.Offline) != 1 || !strings.HasPrefix(h.Partitions.Offline[0], "t-1: ") ||
		!strings.Contains(h.Partitions.Offline[0], "is a directory") {
		t.Fatalf("/readyz: %d %+v", code, h)
	}
	t.Logf("/readyz offline: %q", h.Partitions.Offline)
	if v := scrape(t, s.MetricsAddr().String())[`chronik_partitions{state="offline"}`]; v != 1 {
		t.Fatalf(`chronik_partitions{state="offline"} = %v, want 1`, v)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if codes := metadataCodes(t, cl, "t"); codes[0] != 0 || codes[1] != kerr.KafkaStorageError.Code {
		t.Fatalf("metadata error codes by partition: %v", codes)
	}
	if code := listOffsetsCode(t, cl, "t", 1); code != kerr.KafkaStorageError.Code {
		t.Fatalf("ListOffsets of the offline partition: error code %d, want KAFKA_STORAGE_ERROR", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: 0, Value: []byte("still here")}).FirstErr(); err != nil {
		t.Fatalf("produce to the healthy partition: %v", err)
	}
	got := 0
	for got < 11 { // 10 records from before plus the new one
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 11 records from the healthy partition", got)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch: %v", e.Err)
		}
		got += fs.NumRecords()
	}

	// Repair; the retry (1 s doubling) brings it back.
	repaired := time.Now()
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker, content, 0o644); err != nil {
		t.Fatal(err)
	}
	p := waitLeader(t, s, "t", 1)
	if hw := p.Group.HighWatermark(); hw < 10 {
		// The high watermark comes back once the leader's first entry commits.
		deadline := time.Now().Add(10 * time.Second)
		for p.Group.HighWatermark() < 10 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if base, err := produce(t, p, 1); err != nil || base != 10 {
		t.Fatalf("produce after repair: offset %d (%v), want 10", base, err)
	}
	t.Logf("t-1 serving again %s after the repair", time.Since(repaired).Round(time.Millisecond))
	if off := s.Offline(); len(off) != 0 {
		t.Fatalf("still offline: %v", off)
	}
	if codes := metadataCodes(t, cl, "t"); codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("metadata error codes after repair: %v", codes)
	}
	if code := listOffsetsCode(t, cl, "t", 1); code != 0 {
		t.Fatalf("ListOffsets after repair: error code %d", code)
	}
	if v := scrape(t, s.MetricsAddr().String())[`chronik_partitions{state="offline"}`]; v != 0 {
		t.Fatalf(`chronik_partitions{state="offline"} = %v after repair, want 0`, v)
	}
	if h, _ := readyz(t, s.MetricsAddr().String()); len(h.Partitions.Offline) != 0 || h.Partitions.Serving != 2 {
		t.Fatalf("/readyz after repair: %+v", h)
	}
}

// TestFatalRunReturnsCriticalTaskError: when a critical task fails while
// the server runs (here the Kafka listener, whose socket is closed under
// it: nothing can accept again), Run returns that task's error instead of
// nil, and ready goes false.
func TestFatalRunReturnsCriticalTaskError(t *testing.T) {
	s := New(testConfig(t.TempDir()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
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
	if err := (*s.listener.Load()).Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), "kafka-listener") {
			t.Fatalf("Run returned %v, want the kafka-listener's error", err)
		}
		t.Logf("Run returned: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its listener failed")
	}
	if s.Ready() {
		t.Fatal("ready after a fatal error")
	}
}
