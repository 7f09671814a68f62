package perf

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/bench"
)

// SentHeader is the record header the load generator stamps with its send
// time (microseconds since the epoch, decimal); the drain derives
// end-to-end latency from it. Records from `chronik bench` (the time in
// the first 8 payload bytes) are recognised too.
const SentHeader = "sent_us"

// DrainConfig configures the drain.
type DrainConfig struct {
	Brokers []string
	Topic   string
	Listen  string
	// Group joins this consumer group; empty: every partition is assigned
	// from the beginning, as the original consumer did.
	Group  string
	Logger *slog.Logger
}

// Drain consumes a topic and exports what it read.
type Drain struct {
	cfg   DrainConfig
	cl    *kgo.Client
	log   *slog.Logger
	reg   *prometheus.Registry
	start time.Time

	consumed, bytes, errs atomic.Int64
	e2e                   *bench.Recorder
	e2eHist               prometheus.Histogram
}

// NewDrain connects the consumer (it starts reading in Run).
func NewDrain(ctx context.Context, cfg DrainConfig) (*Drain, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.FetchMaxWait(100 * time.Millisecond), kgo.FetchMaxBytes(64 << 20)}
	if cfg.Group != "" {
		opts = append(opts, kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(cfg.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	} else {
		// Every partition from the beginning; the topic is created (with
		// the broker's defaults) when it does not exist yet.
		admCl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
		if err != nil {
			return nil, err
		}
		defer admCl.Close()
		adm := kadm.NewClient(admCl)
		var parts map[int32]kgo.Offset
		for {
			ends, err := adm.ListEndOffsets(ctx, cfg.Topic)
			if err == nil && ends.Error() == nil {
				parts = map[int32]kgo.Offset{}
				ends.Each(func(o kadm.ListedOffset) { parts[o.Partition] = kgo.NewOffset().AtStart() })
				break
			}
			if _, cerr := adm.CreateTopic(ctx, -1, -1, nil, cfg.Topic); cerr != nil && ctx.Err() != nil {
				return nil, errors.Join(err, cerr)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: parts}))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Drain{cfg: cfg, cl: cl, log: log, reg: prometheus.NewRegistry(), e2e: bench.NewRecorder(4), start: time.Now()}
	d.e2eHist = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chronik_perf_consumer_e2e_latency_seconds", Help: "Send time (stamped by the load generator) to arrival here.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)})
	elapsed := func() float64 { return time.Since(d.start).Seconds() }
	d.reg.MustRegister(d.e2eHist,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chronik_perf_consumer_consumed_total", Help: "Records consumed."}, func() float64 { return float64(d.consumed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chronik_perf_consumer_bytes_total", Help: "Value bytes consumed."}, func() float64 { return float64(d.bytes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chronik_perf_consumer_errors_total", Help: "Fetch errors."}, func() float64 { return float64(d.errs.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronik_perf_consumer_elapsed_seconds", Help: "Seconds since the drain started."}, elapsed),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronik_perf_consumer_rate_msg_per_sec", Help: "Mean records per second since start."}, func() float64 { return float64(d.consumed.Load()) / elapsed() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronik_perf_consumer_rate_mb_per_sec", Help: "Mean MB per second since start."}, func() float64 { return float64(d.bytes.Load()) / 1e6 / elapsed() }),
	)
	return d, nil
}

// Run consumes until ctx ends.
func (d *Drain) Run(ctx context.Context) error {
	defer d.cl.Close()
	for ctx.Err() == nil {
		fs := d.cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) {
				d.errs.Add(1)
				d.log.Warn("fetch", "err", err)
			}
		})
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			d.consumed.Add(1)
			d.bytes.Add(int64(len(r.Value)))
			if sent, ok := sentTime(r, now); ok {
				lat := now.Sub(sent)
				d.e2e.Record(int(r.Partition), lat)
				d.e2eHist.Observe(lat.Seconds())
			}
		})
	}
	return nil
}

// sentTime finds the send stamp of a record, if it carries one.
func sentTime(r *kgo.Record, now time.Time) (time.Time, bool) {
	for _, h := range r.Headers {
		if h.Key == SentHeader {
			us, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.UnixMicro(us), true
		}
	}
	if len(r.Value) >= 8 {
		// chronik bench round-trip payloads; plausible within a day only.
		t := time.UnixMicro(int64(binary.LittleEndian.Uint64(r.Value)))
		if d := now.Sub(t); d >= 0 && d < 24*time.Hour {
			return t, true
		}
	}
	return time.Time{}, false
}

// DrainStats is the JSON of GET /metrics (the original's fields, then
// end-to-end latency in milliseconds when records carried a send time).
type DrainStats struct {
	Consumed      int64   `json:"consumed"`
	Bytes         int64   `json:"bytes"`
	Errors        int64   `json:"errors"`
	ElapsedSecs   float64 `json:"elapsed_secs"`
	RateMsgPerSec float64 `json:"rate_msg_per_sec"`
	RateMBPerSec  float64 `json:"rate_mb_per_sec"`
	E2ESamples    int64   `json:"e2e_samples"`
	E2EP50Ms      float64 `json:"e2e_p50_ms"`
	E2EP99Ms      float64 `json:"e2e_p99_ms"`
	E2EMaxMs      float64 `json:"e2e_max_ms"`
}

// Stats reads the counters.
func (d *Drain) Stats() DrainStats {
	el := time.Since(d.start).Seconds()
	s := DrainStats{Consumed: d.consumed.Load(), Bytes: d.bytes.Load(), Errors: d.errs.Load(), ElapsedSecs: el}
	s.RateMsgPerSec, s.RateMBPerSec = float64(s.Consumed)/el, float64(s.Bytes)/1e6/el
	h, _ := d.e2e.Snapshot()
	if h.TotalCount() > 0 {
		s.E2ESamples = h.TotalCount()
		s.E2EP50Ms, s.E2EP99Ms, s.E2EMaxMs = float64(h.ValueAtQuantile(50))/1000, float64(h.ValueAtQuantile(99))/1000, float64(h.Max())/1000
	}
	return s
}

// Handler is the drain's HTTP routes.
func (d *Drain) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, d.Stats()) })
	mux.Handle("GET /metrics/prometheus", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	return mux
}

// Serve runs the HTTP server on ln until ctx ends.
func (d *Drain) Serve(ctx context.Context, ln net.Listener) error {
	return serveHTTP(ctx, ln, d.Handler())
}
