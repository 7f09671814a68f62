package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// startGateway serves a gateway on a loopback port until the test ends.
func startGateway(t *testing.T, cfg GatewayConfig) (*Gateway, string) {
	t.Helper()
	g, err := NewGateway(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; g.Close() })
	return g, "http://" + ln.Addr().String()
}

func post(t *testing.T, url, body string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: response is not JSON: %q", url, b)
	}
	return resp.StatusCode, out, resp.Header
}

// fetchAt reads the record at partition/offset.
func fetchAt(t *testing.T, addr, topic string, p int32, off int64) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(off)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no record at %s/%d@%d", topic, p, off)
		}
		var got *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if got == nil && r.Offset == off {
				got = r
			}
		})
		if got != nil {
			return got
		}
	}
}

func stored(t *testing.T, addr, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func TestGatewayRoutes(t *testing.T) {
	bcfg := testbroker.Config(t.TempDir())
	b := testbroker.Start(t, bcfg)
	cfg := DefaultGatewayConfig()
	cfg.Brokers, cfg.Topic, cfg.Acks, cfg.MaxBodyBytes = []string{b.Addr}, "gw", "all", 64<<10
	g, url := startGateway(t, cfg)

	// /produce: the answer names where the record is stored.
	code, out, _ := post(t, url+"/produce", `{"key":"k","value":"hello","headers":{"h":"v"}}`)
	if code != 200 {
		t.Fatalf("/produce: %d %v", code, out)
	}
	rec := fetchAt(t, b.Addr, "gw", int32(out["partition"].(float64)), int64(out["offset"].(float64)))
	if string(rec.Value) != "hello" || string(rec.Key) != "k" || len(rec.Headers) != 1 || string(rec.Headers[0].Value) != "v" {
		t.Fatalf("stored %+v", rec)
	}
	// Bytes through value_b64.
	code, out, _ = post(t, url+"/produce", `{"value_b64":"AP8B"}`)
	if code != 200 {
		t.Fatalf("/produce b64: %d %v", code, out)
	}
	if rec := fetchAt(t, b.Addr, "gw", int32(out["partition"].(float64)), int64(out["offset"].(float64))); !bytes.Equal(rec.Value, []byte{0, 0xff, 1}) {
		t.Fatalf("value_b64 stored as %v", rec.Value)
	}

	// /produce/batch waits for every record.
	before := stored(t, b.Addr, "gw")
	var batch []string
	for i := range 50 {
		batch = append(batch, fmt.Sprintf(`{"value":"v%d"}`, i))
	}
	code, out, _ = post(t, url+"/produce/batch", "["+strings.Join(batch, ",")+"]")
	if code != 200 || out["produced"].(float64) != 50 || out["errors"].(float64) != 0 {
		t.Fatalf("/produce/batch: %d %v", code, out)
	}
	if n := stored(t, b.Addr, "gw"); n != before+50 {
		t.Fatalf("the broker stores %d records, want %d", n, before+50)
	}

	// Fire and forget: answered at once, every record arrives.
	before = stored(t, b.Addr, "gw")
	for range 10 {
		if code, out, _ := post(t, url+"/produce/fire/batch", "["+strings.Join(batch, ",")+"]"); code != 200 || out["produced"].(float64) != 50 {
			t.Fatalf("fire: %d %v", code, out)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for stored(t, b.Addr, "gw") != before+500 || g.Stats().FirePending != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("fired 500: the broker stores %d more, gateway %+v", stored(t, b.Addr, "gw")-before, g.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := g.Stats(); s.Produced != 2+50+500 || s.Errors != 0 {
		t.Fatalf("gateway counters %+v", s)
	}

	// Bad input: a JSON error and a 4xx, nothing stored.
	before = stored(t, b.Addr, "gw")
	for _, c := range []struct {
		route, body string
		code        int
		msg         string
	}{
		{"/produce", `{"value":`, 400, "bad JSON"},
		{"/produce", `{"key":"only"}`, 400, "missing value"},
		{"/produce", `{"value":"a","value_b64":"YQ=="}`, 400, "not both"},
		{"/produce", `{"value_b64":"***"}`, 400, "value_b64"},
		{"/produce/batch", `[]`, 400, "empty batch"},
		{"/produce/batch", `[{"value":"a"},{"nope":1}]`, 400, "record 1: missing value"},
		{"/produce/fire/batch", `{"value":"not an array"}`, 400, "bad JSON"},
		{"/produce/batch", `[{"value":"` + strings.Repeat("x", 70<<10) + `"}]`, 413, "body larger than"},
	} {
		code, out, _ := post(t, url+c.route, c.body)
		if code != c.code || !strings.Contains(fmt.Sprint(out["error"]), c.msg) {
			t.Errorf("%s %.40q: %d %v, want %d with %q", c.route, c.body, code, out, c.code, c.msg)
		}
	}
	if n := stored(t, b.Addr, "gw"); n != before {
		t.Fatalf("bad requests stored %d records", n-before)
	}
	for _, path := range []string{"/health", "/metrics", "/metrics/prometheus"} {
		resp, err := http.Get(url + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/metrics/prometheus" && !strings.Contains(string(body), "chronik_perf_ingestor_produced_total 552") {
			t.Fatalf("prometheus metrics:\n%s", body)
		}
	}
}

// TestFireBufferFullAnswers429: fired records that cannot be delivered
// stay pending; a batch that does not fit is refused with 429 and
// Retry-After, and every failed delivery is counted.
func TestFireBufferFullAnswers429(t *testing.T) {
	bcfg := testbroker.Config(t.TempDir())
	bcfg.AutoCreateTopics = false
	b := testbroker.Start(t, bcfg)
	cfg := DefaultGatewayConfig()
	cfg.Brokers, cfg.Topic, cfg.FireBufferRecords, cfg.DeliveryTimeout = []string{b.Addr}, "missing", 100, 3*time.Second
	g, url := startGateway(t, cfg)
	var batch []string
	for i := range 100 {
		batch = append(batch, fmt.Sprintf(`{"value":"v%d"}`, i))
	}
	body := "[" + strings.Join(batch, ",") + "]"
	if code, out, _ := post(t, url+"/produce/fire/batch", body); code != 200 {
		t.Fatalf("first fire: %d %v", code, out)
	}
	code, out, hdr := post(t, url+"/produce/fire/batch", body)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(out["error"]), "buffer full") {
		t.Fatalf("second fire: %d %v %v", code, out, hdr)
	}
	deadline := time.Now().Add(30 * time.Second)
	for g.Stats().FirePending != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("fired records never finished: %+v", g.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := g.Stats(); s.Errors != 100 || s.Produced != 0 || s.Rejected != 1 {
		t.Fatalf("counters %+v: want the 100 fired records counted as failed and one rejected batch", s)
	}
	// With the buffer free again, a fire is accepted.
	if code, _, _ := post(t, url+"/produce/fire/batch", body); code != 200 {
		t.Fatalf("fire after the buffer drained: %d", code)
	}
}

func TestStages(t *testing.T) {
	st, err := ParseStages("10s:10,10s:30,5s:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at   time.Duration
		want int
		done bool
	}{{0, 0, false}, {5 * time.Second, 5, false}, {10 * time.Second, 10, false}, {15 * time.Second, 20, false}, {22500 * time.Millisecond, 15, false}, {25 * time.Second, 0, true}} {
		if got, done := TargetAt(st, c.at); got != c.want || done != c.done {
			t.Errorf("at %v: %d VUs (done %v), want %d (%v)", c.at, got, done, c.want, c.done)
		}
	}
	sc := Scale(Profiles["stress"].Stages, 0.01, 0.1)
	if sc[0].Target != 2 || sc[4].Target != 80 || sc[0].Duration != 3*time.Second || sc[6].Target != 0 {
		t.Fatalf("scaled stress: %+v", sc)
	}
	for _, bad := range []string{"", "10s", "x:1", "10s:-1"} {
		if _, err := ParseStages(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
