package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/config"
	"github.com/chronik-go/chronik/internal/meta"
)

// scrape reads /metrics and returns every sample as name{labels} → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	families := gather(t, addr)
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.Counter.GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
				out[key+"_sum"] = m.Histogram.GetSampleSum()
			default:
				out[key] = m.Untyped.GetValue()
			}
		}
	}
	return out
}

func metricsConfig(t *testing.T) *Server {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir, cfg.NodeID, cfg.Bind, cfg.Advertise, cfg.Metrics = t.TempDir(), 1, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.WALProfile, cfg.ProduceProfile = "low", "low-latency"
	cfg.OffsetsTopicPartitions, cfg.OffsetsTopicReplication = 1, 1
	cfg.GroupInitialRebalanceMs, cfg.GroupMinSessionTimeoutMs, cfg.GroupMaxSessionTimeoutMs = 0, 1000, 60000
	cfg.LagPerPartition, cfg.LagMaxSeries = true, 100
	cfg.OffsetsRewriteRecords = 50000
	s, stop := running(t, cfg)
	t.Cleanup(stop)
	return s
}

// TestMetricsCountRealTraffic drives a real client and checks that the
// counters moved by exactly what was sent.
func TestMetricsCountRealTraffic(t *testing.T) {
	s := metricsConfig(t)
	maddr := s.MetricsAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.DefaultProduceTopic("m"), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "m"); err != nil {
		t.Fatal(err)
	}
	before := scrape(t, maddr)
	const n, size = 40, 100
	for i := range n {
		// One record per request: produced one at a time, synchronously.
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: make([]byte, size), Partition: 0}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	// One produce that fails: partition 7 does not exist.
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "m"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = 7
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if _, err := req.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	// Read everything back.
	cons, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.ConsumeTopics("m"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d", got, n)
		}
		got += fs.NumRecords()
	}
	cons.Close()
	after := scrape(t, maddr)
	d := func(k string) float64 { return after[k] - before[k] }
	for _, c := range []struct {
		key  string
		want float64
	}{
		{`chronik_messages_received_total`, n},
		{`chronik_messages_stored_total`, n},
		{`chronik_produce_requests_total{result="success"}`, n},
		{`chronik_produce_requests_total{result="error"}`, 1},
		{`chronik_kafka_requests_total{api="Produce",outcome="ok"}`, n},
		{`chronik_kafka_requests_total{api="Produce",outcome="error"}`, 1},
		{`chronik_kafka_request_duration_seconds{api="Produce"}_count`, n + 1},
		{`chronik_messages_fetched_total`, n},
	} {
		if got := d(c.key); got != c.want {
			t.Errorf("%s moved by %v, want %v", c.key, got, c.want)
		}
	}
	// A 100-byte value makes a batch of about 170 bytes.
	if b := d("chronik_bytes_produced_total"); b < n*size || b > n*(size+100) {
		t.Errorf("chronik_bytes_produced_total moved by %v for %d records of %d bytes", b, n, size)
	}
	if b := d("chronik_bytes_fetched_total"); b < n*size {
		t.Errorf("chronik_bytes_fetched_total moved by %v", b)
	}
	if r := d("chronik_wal_batch_count_total"); r < 1 || d("chronik_wal_fsync_total") < r || d("chronik_wal_batch_writes_count") != r {
		t.Errorf("WAL: %v rounds, %v fsyncs, %v batch samples", r, d("chronik_wal_fsync_total"), d("chronik_wal_batch_writes_count"))
	}
	if w := d(`chronik_wal_writes_total{result="success"}`); w < n {
		t.Errorf("WAL writes moved by %v, want at least one per produce (%d)", w, n)
	}
	if after["chronik_active_connections"] < 1 || after[`chronik_state_count{type="topics"}`] < 1 {
		t.Errorf("connections %v, topics %v", after["chronik_active_connections"], after[`chronik_state_count{type="topics"}`])
	}
	if after[`chronik_partitions{state="serving"}`] < 1 || after["chronik_raft_leader_count"] < 2 || after["chronik_ready"] != 1 {
		t.Errorf("partitions %v leaders %v ready %v", after[`chronik_partitions{state="serving"}`], after["chronik_raft_leader_count"], after["chronik_ready"])
	}
	// Idle again, every local partition's Raft group quiesces (a single
	// voter has nobody to tell).
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := scrape(t, maddr)
		if m["chronik_raft_quiesced_groups"] == m[`chronik_partitions{state="serving"}`] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v of %v serving partitions quiesced", m["chronik_raft_quiesced_groups"], m[`chronik_partitions{state="serving"}`])
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, k := range []string{"go_goroutines", "process_resident_memory_bytes", "chronik_produce_buffer_limit_bytes", "chronik_produce_profile_active"} {
		if _, ok := after[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}

	// An oversized frame is counted and the connection closed.
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 200<<20)
	_, _ = nc.Write(hdr[:])
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(nc); err != nil {
		t.Fatalf("oversized frame: %v", err)
	}
	nc.Close()
	if v := scrape(t, maddr)[`chronik_bad_requests_total{reason="oversized"}`]; v != 1 {
		t.Errorf("oversized frames counted %v, want 1", v)
	}

	// A group: a member joins (a rebalance), commits 10 short of the end.
	grp, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.ConsumerGroup("mg"), kgo.ConsumeTopics("m"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer grp.Close()
	gctx, gcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer gcancel()
	for seen := 0; seen < n; {
		fs := grp.PollFetches(gctx)
		if gctx.Err() != nil {
			t.Fatalf("group consumer got %d records: %v", seen, fs.Err())
		}
		seen += fs.NumRecords()
	}
	var cerr error
	grp.CommitOffsetsSync(gctx, map[string]map[int32]kgo.EpochOffset{"m": {0: {Epoch: -1, Offset: n - 10}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) { cerr = err })
	if cerr != nil {
		t.Fatal(cerr)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		m := scrape(t, maddr)
		lag, glag := m[`chronik_consumer_lag{group="mg",partition="0",topic="m"}`], m[`chronik_consumer_group_lag{group="mg"}`]
		stable := m[`chronik_consumer_groups{protocol="classic",state="Stable"}`]
		if lag == 10 && glag == 10 && stable == 1 && m[`chronik_group_rebalances_total{protocol="classic"}`] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag %v, group lag %v, stable groups %v, rebalances %v", lag, glag, stable, m[`chronik_group_rebalances_total{protocol="classic"}`])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReadyzThroughStartRecoveryAndShutdown: /readyz says why it is not
// ready while a large log recovers, then ready, then not during shutdown.
func TestReadyzThroughStartRecoveryAndShutdown(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Metrics = "127.0.0.1:0"
	// A log worth recovering: 64 partitions holding data.
	s, stop := running(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 64 {
		topic := fmt.Sprintf("r%02d", i)
		if _, err := s.ProposeMeta(ctx, &meta.Command{Op: meta.OpCreateTopic, Topic: topic, Replicas: [][]int32{{1}}}); err != nil {
			t.Fatal(err)
		}
		p := waitLeader(t, s, topic, 0)
		if _, err := produce(t, p, 200); err != nil {
			t.Fatal(err)
		}
	}
	stop()

	// Restart, watching /readyz from the moment its listener exists.
	s2 := New(cfg, s.log)
	rctx, rcancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s2.Run(rctx) }()
	var notReady []Health
	var sawReady bool
	for !sawReady {
		select {
		case err := <-errc:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		addr := s2.MetricsAddr()
		if addr == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		h, code := readyz(t, addr.String())
		switch code {
		case http.StatusServiceUnavailable:
			if h.Status != "not ready" || len(h.Reasons) == 0 {
				t.Fatalf("503 without reasons: %+v", h)
			}
			notReady = append(notReady, h)
		case http.StatusOK:
			sawReady = true
			if h.Status != "ready" || h.Partitions.Serving < 64 || h.Partitions.Opened != h.Partitions.Wanted {
				t.Fatalf("ready too early: %+v", h)
			}
		default:
			t.Fatalf("/readyz answered %d", code)
		}
	}
	if len(notReady) == 0 {
		t.Fatal("/readyz never said 'not ready' while 64 partitions recovered")
	}
	t.Logf("not ready %d times first; first reasons %v, last %v", len(notReady), notReady[0].Reasons, notReady[len(notReady)-1].Reasons)
	// /healthz is alive throughout.
	if resp, err := http.Get("http://" + s2.MetricsAddr().String() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// Shutdown: never ready again.
	maddr := s2.MetricsAddr().String()
	rcancel()
	for {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		h, code := readyz(t, maddr)
		if code == http.StatusOK {
			// Only before the cancel took effect.
			if s2.stopping.Load() {
				t.Fatalf("ready while shutting down: %+v", h)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

func readyz(t *testing.T, addr string) (Health, int) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return Health{}, 0 // listener closing during shutdown
	}
	defer resp.Body.Close()
	var h Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	return h, resp.StatusCode
}
