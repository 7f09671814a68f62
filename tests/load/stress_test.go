package load

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/perf"
	"github.com/chronik-go/chronik/internal/testbroker"
)

// TestStressProfileLosesNothing runs the original's stress profile, scaled
// down (VUs × 0.01, time × 0.04: about 35 s, up to 80 VUs sending
// blocking batches of 100 × 256 B), through gateway (acks=all) → broker →
// drain, and checks end to end that nothing is lost: what the load
// generator counts as produced equals what the broker stores and what the
// drain consumes, with zero errors.
func TestStressProfileLosesNothing(t *testing.T) {
	cfg := testbroker.Config(t.TempDir())
	cfg.NumPartitions = 3
	b := testbroker.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	gcfg := perf.DefaultGatewayConfig()
	gcfg.Brokers, gcfg.Topic, gcfg.Acks = []string{b.Addr}, "stress", "all"
	g, err := perf.NewGateway(gcfg)
	if err != nil {
		t.Fatal(err)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gctx, gstop := context.WithCancel(ctx)
	defer gstop()
	go func() { _ = g.Serve(gctx, gln) }()
	defer g.Close()

	d, err := perf.NewDrain(ctx, perf.DrainConfig{Brokers: []string{b.Addr}, Topic: "stress"})
	if err != nil {
		t.Fatal(err)
	}
	dctx, dstop := context.WithCancel(ctx)
	drained := make(chan struct{})
	go func() { defer close(drained); _ = d.Run(dctx) }()
	defer func() { dstop(); <-drained }()

	p := perf.Profiles["stress"]
	p.Stages = perf.Scale(p.Stages, 0.01, 0.04)
	lcfg := perf.LoadConfig{URL: "http://" + gln.Addr().String(), Profile: p, Timeout: 30 * time.Second, ReportInterval: 10 * time.Second}
	if testing.Verbose() {
		lcfg.Progress = os.Stderr
	}
	res, err := perf.RunLoad(ctx, lcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stress: %d requests, %d messages (%.0f msg/s), %d errors, batch p50 %.1f ms p95 %.1f ms max %.1f ms, up to %d VUs, %.0f s",
		res.Requests, res.Messages, res.MsgPerSec, res.Errors, float64(res.Latency.P50)/1000, float64(res.Latency.P95)/1000, float64(res.Latency.Max)/1000, res.MaxVUs, res.DurationSec)
	if res.Errors != 0 || res.FailedReqs != 0 {
		t.Fatalf("errors: %d (%v)", res.Errors, res.ErrorKinds)
	}
	if res.Messages == 0 || res.Messages != res.Requests*100 {
		t.Fatalf("%d messages in %d requests of 100", res.Messages, res.Requests)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "stress")
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	ends.Each(func(o kadm.ListedOffset) { stored += o.Offset })
	if stored != res.Messages || g.Stats().Produced != res.Messages {
		t.Fatalf("load generator %d, gateway %d, broker stores %d", res.Messages, g.Stats().Produced, stored)
	}
	deadline := time.Now().Add(time.Minute)
	for d.Stats().Consumed < stored {
		if time.Now().After(deadline) {
			t.Fatalf("the drain consumed %d of %d", d.Stats().Consumed, stored)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s := d.Stats()
	if s.Consumed != stored || s.Errors != 0 || s.E2ESamples != stored {
		t.Fatalf("drain %+v, stored %d", s, stored)
	}
	t.Logf("drain: %d consumed, end-to-end p50 %.1f ms p99 %.1f ms", s.Consumed, s.E2EP50Ms, s.E2EP99Ms)
}
