package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// TestRecorderKeepsEverySample records from many goroutines into few
// shards and checks the merged histogram against the exact samples.
func TestRecorderKeepsEverySample(t *testing.T) {
	r := NewRecorder(3)
	const workers, each = 16, 5000
	samples := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range each {
				us := int64(1 + rng.ExpFloat64()*2000) // a long tail, µs
				samples[w] = append(samples[w], us)
				r.Record(w, time.Duration(us)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	h, clamped := r.Snapshot()
	if h.TotalCount() != workers*each || clamped != 0 {
		t.Fatalf("merged %d samples (%d clamped), recorded %d", h.TotalCount(), clamped, workers*each)
	}
	all := slices.Concat(samples...)
	slices.Sort(all)
	l := Summarise(h, clamped)
	for _, c := range []struct {
		name string
		got  int64
		q    float64
	}{{"p50", l.P50, 0.5}, {"p90", l.P90, 0.9}, {"p99", l.P99, 0.99}, {"p99.9", l.P999, 0.999}, {"max", l.Max, 1}} {
		exact := all[min(int(math.Ceil(c.q*float64(len(all))))-1, len(all)-1)]
		if diff := math.Abs(float64(c.got-exact)) / float64(exact); diff > 0.001 {
			t.Errorf("%s = %d µs, exact %d µs (off by %.3f%%, precision promises 0.1%%)", c.name, c.got, exact, 100*diff)
		}
	}
	// A snapshot does not consume: a second one sees the same samples.
	if h2, _ := r.Snapshot(); h2.TotalCount() != h.TotalCount() {
		t.Fatalf("second snapshot has %d samples, first %d", h2.TotalCount(), h.TotalCount())
	}
}

func TestRecorderClampsInsteadOfDropping(t *testing.T) {
	r := NewRecorder(1)
	r.Record(0, 2*time.Hour)
	r.Record(0, 0)
	r.Record(-5, time.Millisecond)
	h, clamped := r.Snapshot()
	if h.TotalCount() != 3 || clamped != 1 {
		t.Fatalf("count %d clamped %d, want 3 and 1", h.TotalCount(), clamped)
	}
	if l := Summarise(h, clamped); l.Max < histMaxMicros*999/1000 || l.Min != 1 {
		t.Fatalf("min %d max %d", l.Min, l.Max)
	}
}

// TestPacerIsOneGlobalRate: many workers share one rate; every slot is
// taken once, at or after its due time, and due times are evenly spaced.
func TestPacerIsOneGlobalRate(t *testing.T) {
	const rate, n, workers = 2000.0, 400, 8
	start := time.Now()
	p := NewPacer(start, rate, n)
	var mu sync.Mutex
	var dues []time.Time
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				due, ok := p.Take(context.Background())
				if !ok {
					return
				}
				if now := time.Now(); now.Before(due) {
					t.Errorf("slot returned %v before it was due", due.Sub(now))
				}
				mu.Lock()
				dues = append(dues, due)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(dues) != n {
		t.Fatalf("%d slots taken, limit %d", len(dues), n)
	}
	slices.SortFunc(dues, func(a, b time.Time) int { return a.Compare(b) })
	for i, d := range dues {
		if want := start.Add(time.Duration(i) * time.Second / rate); !d.Equal(want) {
			t.Fatalf("slot %d due %v after start, want %v", i, d.Sub(start), want.Sub(start))
		}
	}
	// The rate is global: n slots at 2000/s cannot finish before the last
	// one is due, however many workers take them.
	if el := time.Since(start); el < time.Duration(n-1)*time.Second/rate {
		t.Fatalf("%d slots at %.0f/s took only %v", n, rate, el)
	}
}

func TestPacerDueBy(t *testing.T) {
	start := time.Unix(1000, 0)
	p := NewPacer(start, 100, 25) // a slot every 10 ms
	if first, n := p.DueBy(start.Add(-time.Millisecond), 100); first != 0 || n != 0 {
		t.Fatalf("before start: %d,%d", first, n)
	}
	if first, n := p.DueBy(start.Add(95*time.Millisecond), 100); first != 0 || n != 10 {
		t.Fatalf("at 95 ms: first %d n %d, want 0 and 10 (slots 0..9)", first, n)
	}
	if first, n := p.DueBy(start.Add(95*time.Millisecond), 100); first != 10 || n != 0 {
		t.Fatalf("again at 95 ms: %d,%d", first, n)
	}
	if first, n := p.DueBy(start.Add(time.Second), 4); first != 10 || n != 4 {
		t.Fatalf("burst capped: %d,%d", first, n)
	}
	if _, n := p.DueBy(start.Add(time.Hour), 100); n != 11 || !p.Exhausted() {
		t.Fatalf("limit: n %d exhausted %v", n, p.Exhausted())
	}
}

func sampleResult(label string, rate float64, p99 int64) *Result {
	r := NewRecorder(1)
	for i := range 1000 {
		r.Record(0, time.Duration(100+i)*time.Microsecond)
	}
	r.Record(0, time.Duration(p99)*time.Microsecond)
	h, c := r.Snapshot()
	return &Result{Tool: "chronik bench", Label: label, Mode: ModeRoundTrip, LoadModel: "closed", Started: time.Unix(1700000000, 0).UTC(),
		DurationSec: 10, Topic: "t", Concurrency: 8, MessageSize: 256, Acks: "all", Compression: "none",
		Messages: int64(rate * 10), Bytes: int64(rate * 10 * 256), MsgPerSec: rate, MBPerSec: rate * 256 / 1e6, SuccessRatePct: 100,
		LatencyKind: "produce: send → acknowledgement", Latency: Summarise(h, c), Precision: Precision,
		Timeline: []Tick{{1, 900, 230400, 0}, {2, 1100, 281600, 3}}, Errors: map[string]int64{"NOT_LEADER_FOR_PARTITION": 3}}
}

func TestReports(t *testing.T) {
	a := sampleResult("chronik", 1000, 5000)
	e2e := a.Latency
	a.EndToEnd = &e2e
	dir := t.TempDir()

	var table bytes.Buffer
	a.WriteTable(&table)
	for _, want := range []string{"round-trip (closed loop, 8 in flight)", "acks=all", "10,000 (100.00% succeeded", "1,000 msg/s",
		"p50 ", "p99.9 ", "end to end", "3 significant digits", "3 × NOT_LEADER_FOR_PARTITION"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	var c bytes.Buffer
	if err := a.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(rows) != 2 || len(rows[0]) != len(rows[1]) {
		t.Fatalf("csv: %v %v", rows, err)
	}
	// The original's columns come first, in its order.
	orig := []string{"timestamp", "mode", "duration_secs", "total_messages", "failed_messages", "total_bytes", "throughput_msg_per_sec",
		"throughput_mb_per_sec", "success_rate_pct", "latency_p50_us", "latency_p90_us", "latency_p95_us", "latency_p99_us",
		"latency_p999_us", "latency_max_us", "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
		"latency_p999_ms", "latency_max_ms", "message_size", "concurrency", "compression"}
	if !slices.Equal(rows[0][:len(orig)], orig) {
		t.Fatalf("csv header %v", rows[0])
	}
	if rows[1][3] != "10000" || rows[1][1] != "round-trip" {
		t.Fatalf("csv row %v", rows[1])
	}

	path := filepath.Join(dir, "a.json")
	f, _ := os.Create(path)
	if err := a.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	back, err := ReadResult(path)
	if err != nil || back.Latency.P99 != a.Latency.P99 || back.EndToEnd == nil || len(back.Timeline) != 2 {
		t.Fatalf("json round trip: %+v %v", back, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte(`{"tool":"other"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResult(filepath.Join(dir, "x.json")); err == nil {
		t.Fatal("a foreign JSON file was accepted as a result")
	}

	var h bytes.Buffer
	if err := a.WriteHTML(&h); err != nil {
		t.Fatal(err)
	}
	page := h.String()
	if strings.Count(page, "<svg") != 2 || strings.Count(page, "<polyline") != 4 {
		t.Fatalf("expected two plots (throughput and errors; latency and end-to-end): %d svg, %d lines", strings.Count(page, "<svg"), strings.Count(page, "<polyline"))
	}
	for _, banned := range []string{"http://", "https://", "<script", "src="} {
		if strings.Contains(page, banned) {
			t.Fatalf("the report must work offline; it contains %q", banned)
		}
	}

	b := sampleResult("other", 2000, 20000)
	var cmp bytes.Buffer
	Compare(&cmp, a, b, "chronik", "other")
	out := cmp.String()
	if !strings.Contains(out, "2.00×") || !strings.Contains(out, "msg/s") || !strings.Contains(out, "latency p99") {
		t.Fatalf("compare:\n%s", out)
	}
}

// TestModesAgainstBroker runs every mode briefly against a real broker and
// checks the counts against what the broker stored.
func TestModesAgainstBroker(t *testing.T) {
	b, err := testbroker.Run(testbroker.Config(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	stored := func() int64 {
		ends, err := adm.ListEndOffsets(ctx, "bench")
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}
	base := Defaults()
	base.Brokers, base.Topic, base.Warmup, base.Duration = []string{b.Addr}, "bench", 0, 0
	base.CreateTopic, base.Partitions, base.MessageSize, base.Concurrency = true, 3, 100, 16
	run := func(name string, mod func(*Config)) *Result {
		t.Helper()
		cfg := base
		mod(&cfg)
		res, err := Run(ctx, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Failed != 0 {
			t.Fatalf("%s: %d failed: %v", name, res.Failed, res.Errors)
		}
		return res
	}

	res := run("closed", func(c *Config) { c.MessageCount = 3000; c.Acks = "all" })
	if res.Messages != 3000 || res.Latency.Count != 3000 || res.Bytes != 3000*100 || stored() != 3000 {
		t.Fatalf("closed loop: %d messages, %d samples, %d bytes; broker stores %d", res.Messages, res.Latency.Count, res.Bytes, stored())
	}
	res = run("open", func(c *Config) { c.MessageCount, c.OpenLoop, c.RateLimit = 1000, true, 4000 })
	if res.Messages != 1000 || res.LoadModel != "open" || stored() != 4000 {
		t.Fatalf("open loop: %d messages; broker stores %d", res.Messages, stored())
	}
	if res.DurationSec < 0.24 {
		t.Fatalf("1000 messages offered at 4000/s finished in %.3f s: the rate was not applied", res.DurationSec)
	}
	res = run("round-trip", func(c *Config) { c.Mode, c.MessageCount, c.Warmup = ModeRoundTrip, 800, 300*time.Millisecond })
	if res.Messages != 800 || res.EndToEnd == nil || res.EndToEnd.Count != 800 {
		t.Fatalf("round-trip: %d produced, end-to-end %+v", res.Messages, res.EndToEnd)
	}
	total := stored() // includes the round-trip warm-up
	res = run("consume", func(c *Config) { c.Mode, c.Duration = ModeConsume, time.Minute })
	if res.Messages != total || res.Bytes != total*100 {
		t.Fatalf("consume read %d messages (%d bytes), the topic holds %d", res.Messages, res.Bytes, total)
	}
	res = run("consume group", func(c *Config) { c.Mode, c.Duration, c.ConsumerGroup = ModeConsume, time.Minute, "bench-group" })
	if res.Messages != total {
		t.Fatalf("group consume read %d messages, the topic holds %d", res.Messages, total)
	}
	res = run("metadata", func(c *Config) { c.Mode, c.MessageCount, c.Concurrency = ModeMetadata, 200, 4 })
	if res.Messages != 200 || res.Latency.Count != 200 {
		t.Fatalf("metadata: %d requests, %d samples", res.Messages, res.Latency.Count)
	}
	if _, err := Run(ctx, Config{Mode: "bogus"}); err == nil || !strings.Contains(err.Error(), "unknown mode") {
		t.Fatalf("bad mode: %v", err)
	}
}
