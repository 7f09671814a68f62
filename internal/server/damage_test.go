package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

// produceValues sends n records with values "<topic>-<i>" through a real
// client, acks=all, uncompressed (so that the segment count does not depend
// on how batches compress), and waits for all of them.
func produceValues(t *testing.T, addr, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Synchronous chunks of 200 records make batches of a known size
	// (about 15 KB), so that the log has several segments of several
	// batches each whatever the timing.
	for lo := 0; lo < n; lo += 200 {
		recs := make([]*kgo.Record, 0, 200)
		for i := lo; i < min(lo+200, n); i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: value(topic, i)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
}

// checkpointPos returns the position up to which the checkpoint of a log
// directory vouches for segment path (docs/format/checkpoint.md): recovery
// does not re-read the bytes before it.
func checkpointPos(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	base := binary.LittleEndian.Uint64(b[16:])
	if want := fmt.Sprintf("%020d.log", base); want != filepath.Base(path) {
		t.Fatalf("checkpoint is for %s, not %s", want, filepath.Base(path))
	}
	return int(binary.LittleEndian.Uint32(b[24:]))
}

// value is record i's value: its name padded to 64 bytes.
func value(topic string, i int) []byte {
	return fmt.Appendf(nil, "%-64s", fmt.Sprintf("%s-%d", topic, i))
}

// damageSegment inverts eight bytes in the middle of the first limit bytes
// of a partition's segment file (0: the whole file) and returns the Kafka base offset of the entry frame they
// fall in, read from the frame headers (docs/format/segment.md) before
// the damage: a reader must get every record before it.
func damageSegment(t *testing.T, path string, limit int) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const segmentHeader, frameHeader = 64, 48
	if limit == 0 {
		limit = len(b)
	}
	at := (segmentHeader + limit) / 2
	base := int64(-1)
	for pos := segmentHeader; pos+frameHeader <= len(b); {
		size := 8 + int(binary.LittleEndian.Uint32(b[pos:]))
		if at >= pos && at < pos+size {
			if b[pos+9] != 1 || binary.LittleEndian.Uint32(b[pos+36:]) == 0 {
				at = pos + size + frameHeader + 8 // not a record entry: damage the next frame's payload instead
			} else {
				base = int64(binary.LittleEndian.Uint64(b[pos+28:]))
				break
			}
		}
		pos += size
	}
	if base < 0 || at+8 > len(b) {
		t.Fatalf("no record frame at the middle of %s", path)
	}
	for i := at; i < at+8; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return base
}

// fetchCode sends one Fetch for topic's partition 0 at offset straight to
// the broker and returns the partition's error code.
func fetchCode(t *testing.T, cl *kgo.Client, s *Server, topic string, offset int64) int16 {
	t.Helper()
	tp, ok := s.meta.Topic(topic)
	if !ok {
		t.Fatalf("no topic %s", topic)
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes, req.ReplicaID = 100, 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, tp.ID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, offset, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kresp, err := cl.Broker(1).Request(ctx, req)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch: %+v", resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// waitOffline polls until the partition is offline.
func waitOffline(t *testing.T, s *Server, name string) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.Offline()[name]; err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not offline; offline: %v", name, s.Offline())
	return nil
}

// checkOfflineEverywhere: Metadata, ListOffsets, Fetch, /readyz and the
// gauge all say that topic's partition 0 is offline for corruption.
func checkOfflineEverywhere(t *testing.T, s *Server, cl *kgo.Client, topic string, offset int64) {
	t.Helper()
	if codes := metadataCodes(t, cl, topic); codes[0] != kerr.KafkaStorageError.Code {
		t.Fatalf("metadata error code %d for %s-0, want KAFKA_STORAGE_ERROR", codes[0], topic)
	}
	if code := listOffsetsCode(t, cl, topic, 0); code != kerr.KafkaStorageError.Code {
		t.Fatalf("ListOffsets: error code %d, want KAFKA_STORAGE_ERROR", code)
	}
	for _, o := range []int64{0, offset} {
		if code := fetchCode(t, cl, s, topic, o); code != kerr.KafkaStorageError.Code {
			t.Fatalf("Fetch at %d: error code %d, want KAFKA_STORAGE_ERROR", o, code)
		}
	}
	h, code := readyz(t, s.MetricsAddr().String())
	if code != 200 || len(h.Partitions.Offline) != 1 || !strings.HasPrefix(h.Partitions.Offline[0], topic+"-0: ") ||
		!strings.Contains(h.Partitions.Offline[0], "corrupt") {
		t.Fatalf("/readyz: %d %+v", code, h)
	}
	t.Logf("/readyz offline: %q", h.Partitions.Offline)
	if v := scrape(t, s.MetricsAddr().String())[`chronik_partitions{state="offline"}`]; v != 1 {
		t.Fatalf(`chronik_partitions{state="offline"} = %v, want 1`, v)
	}
}

// checkServes: the other topic still takes a record and returns all of them.
func checkServes(t *testing.T, addr, topic string, n int) {
	t.Helper()
	produceValues(t, addr, topic, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := 0
	for got < n+1 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records from %s", got, n+1, topic)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s: %v", topic, e.Err)
		}
		got += fs.NumRecords()
	}
}

// TestCompatDamagedSegmentServesPrefixThenStorageError reproduces issue 12
// item 5: records produced by a real client to two topics, the broker
// stopped, eight bytes flipped in the middle of a sealed segment or of the
// active one (before its checkpoint, so recovery does not scan them), the
// broker restarted. A consumer from the beginning gets every record before
// the damaged batch, then KAFKA_STORAGE_ERROR instead of waiting; the
// partition is offline in Metadata, ListOffsets, Fetch, /readyz and the
// gauge; the other topic produces and consumes.
func TestCompatDamagedSegmentServesPrefixThenStorageError(t *testing.T) {
	const n = 20000
	for _, which := range []string{"sealed", "active"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir)
			cfg.Metrics = "127.0.0.1:0"
			s, stop := running(t, cfg)
			for _, name := range []string{"dmg", "ok"} {
				if _, err := s.ProposeMeta(context.Background(), &meta.Command{Op: meta.OpCreateTopic, Topic: name, Replicas: [][]int32{{1}}}); err != nil {
					t.Fatal(err)
				}
				waitLeader(t, s, name, 0)
				produceValues(t, s.Addr().String(), name, n)
			}
			stop()

			segs, _ := filepath.Glob(filepath.Join(dir, "logs", "dmg-0", "*.log"))
			if len(segs) < 3 {
				t.Fatalf("want several segments, got %d", len(segs))
			}
			victim, limit := segs[len(segs)/2], 0
			if which == "active" {
				victim = segs[len(segs)-1]
				limit = checkpointPos(t, victim)
				fi, _ := os.Stat(victim)
				t.Logf("active segment %d bytes, checkpoint at %d", fi.Size(), limit)
			}
			damagedBase := damageSegment(t, victim, limit)
			t.Logf("damaged %s; the batch at offset %d", filepath.Base(victim), damagedBase)

			s, stop = running(t, cfg)
			defer stop()
			if off := s.Offline(); len(off) != 0 {
				t.Fatalf("offline at start-up: %v (the damage is before the checkpoint)", off)
			}
			waitLeader(t, s, "dmg", 0)
			addr := s.Addr().String()
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.KeepRetryableFetchErrors(),
				kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"dmg": {0: kgo.NewOffset().AtStart()}}))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			next := int64(0)
			var fetchErr error
			for fetchErr == nil {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("no fetch error after %d records (the user's hang)", next)
				}
				for _, e := range fs.Errors() {
					switch {
					case errors.Is(e.Err, kerr.KafkaStorageError):
						fetchErr = e.Err
					case kerr.IsRetriable(e.Err):
						// Kept by KeepRetryableFetchErrors, but not ours: a
						// restarted partition is briefly without a leader.
					default:
						t.Fatalf("fetch: %v", e.Err)
					}
				}
				fs.EachRecord(func(r *kgo.Record) {
					if r.Offset != next || string(r.Value) != string(value("dmg", int(next))) {
						t.Fatalf("record at %d = %q, want offset %d", r.Offset, r.Value, next)
					}
					next++
				})
			}
			if next != damagedBase {
				t.Fatalf("consumed %d records, want %d (every record before the damaged batch)", next, damagedBase)
			}
			t.Logf("consumed the valid prefix of %d records, then %v", next, fetchErr)

			reason := waitOffline(t, s, "dmg-0")
			t.Logf("offline: %v", reason)
			checkOfflineEverywhere(t, s, cl, "dmg", damagedBase)
			checkServes(t, addr, "ok", n)
		})
	}
}

// TestCompatScrubTakesIdlePartitionOffline: damage in a sealed segment
// that no client reads is found by the background scrub, which takes the
// partition offline as a read would and counts it; the rest serves.
func TestCompatScrubTakesIdlePartitionOffline(t *testing.T) {
	const n = 20000
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Metrics = "127.0.0.1:0"
	s, stop := running(t, cfg)
	for _, name := range []string{"idle", "ok"} {
		if _, err := s.ProposeMeta(context.Background(), &meta.Command{Op: meta.OpCreateTopic, Topic: name, Replicas: [][]int32{{1}}}); err != nil {
			t.Fatal(err)
		}
		waitLeader(t, s, name, 0)
		produceValues(t, s.Addr().String(), name, n)
	}
	stop()
	segs, _ := filepath.Glob(filepath.Join(dir, "logs", "idle-0", "*.log"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	damagedBase := damageSegment(t, segs[1], 0)

	cfg.ScrubBytesPerSecond = 1 << 30
	s, stop = running(t, cfg)
	defer stop()
	reason := waitOffline(t, s, "idle-0")
	t.Logf("offline without a reader: %v", reason)
	m := scrape(t, s.MetricsAddr().String())
	if m["chronik_scrub_damage_found_total"] != 1 || m["chronik_scrub_bytes_total"] <= 0 {
		t.Fatalf("scrub metrics: damage %v bytes %v", m["chronik_scrub_damage_found_total"], m["chronik_scrub_bytes_total"])
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	checkOfflineEverywhere(t, s, cl, "idle", damagedBase)
	checkServes(t, s.Addr().String(), "ok", n)
}
