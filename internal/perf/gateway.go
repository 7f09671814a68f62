// Package perf is the performance harness: `chronik gateway` (HTTP →
// Kafka), `chronik drain` (a consumer that exports what it reads) and
// `chronik loadtest` (virtual users with ramping stages, in place of k6).
// All three speak Kafka through franz-go and work against any broker.
package perf

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/kafkaopt"
)

// GatewayConfig configures the HTTP gateway.
type GatewayConfig struct {
	Brokers []string
	Topic   string // default topic when a record names none
	Listen  string // host:port
	Acks    string // 0, 1, all
	// MaxBodyBytes bounds a request body (413 above it).
	MaxBodyBytes int64
	// FireBufferRecords bounds the fired records queued and not yet
	// delivered; a fire batch that does not fit gets 429.
	FireBufferRecords int64
	// DeliveryTimeout gives up on a record after this long.
	DeliveryTimeout time.Duration
	Linger          time.Duration
	Compression     string
	Logger          *slog.Logger
}

// DefaultGatewayConfig mirrors the original ingestor: linger 5 ms, snappy,
// 10 s delivery timeout, acks=1.
func DefaultGatewayConfig() GatewayConfig {
	return GatewayConfig{Brokers: []string{"localhost:9092"}, Topic: "perf-test", Listen: ":8080", Acks: "1",
		MaxBodyBytes: 16 << 20, FireBufferRecords: 1_000_000, DeliveryTimeout: 10 * time.Second,
		Linger: 5 * time.Millisecond, Compression: "snappy"}
}

// InRecord is one record in a request body.
type InRecord struct {
	Topic    string            `json:"topic,omitempty"`
	Key      *string           `json:"key,omitempty"`
	Value    *string           `json:"value,omitempty"`
	ValueB64 *string           `json:"value_b64,omitempty"`
	KeyB64   *string           `json:"key_b64,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
}

// Gateway is a running gateway.
type Gateway struct {
	cfg GatewayConfig
	cl  *kgo.Client
	log *slog.Logger
	reg *prometheus.Registry

	produced, errors, rejected atomic.Int64
	firePending                atomic.Int64
	// Failure logging is summarised: at most one line a second.
	failMu    sync.Mutex
	failLast  time.Time
	failQuiet int64
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// NewGateway connects the producer.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(cfg.Topic), kgo.ProducerLinger(cfg.Linger),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout), kgo.ProducerBatchMaxBytes(1 << 20), kgo.AllowAutoTopicCreation(),
		// The fire buffer is enforced here (429), so the client never blocks
		// on it; synchronous routes add at most their in-flight records.
		kgo.MaxBufferedRecords(int(cfg.FireBufferRecords) + 1_000_000)}
	acks, err := kafkaopt.ProducerAcks(cfg.Acks)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_ACKS: %w", err)
	}
	codec, err := kafkaopt.Compression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	opts = append(append(opts, acks...), kgo.ProducerBatchCompression(codec))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{cfg: cfg, cl: cl, log: log, reg: prometheus.NewRegistry()}
	g.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_perf_ingestor_requests_total", Help: "HTTP requests by route and status code."}, []string{"route", "code"})
	g.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chronik_perf_ingestor_request_duration_seconds", Help: "HTTP request time by route (for synchronous routes: until every record is acknowledged).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route"})
	g.reg.MustRegister(g.requests, g.latency,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chronik_perf_ingestor_produced_total", Help: "Records acknowledged by Kafka."}, func() float64 { return float64(g.produced.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chronik_perf_ingestor_errors_total", Help: "Records that failed (delivery error or rejected input)."}, func() float64 { return float64(g.errors.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chronik_perf_ingestor_rejected_total", Help: "Fire batches answered 429 because the producer buffer was full."}, func() float64 { return float64(g.rejected.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronik_perf_ingestor_fire_pending", Help: "Fired records queued and not yet acknowledged."}, func() float64 { return float64(g.firePending.Load()) }),
	)
	return g, nil
}

// Close flushes what is queued (up to the delivery timeout) and closes.
func (g *Gateway) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.DeliveryTimeout+time.Second)
	defer cancel()
	_ = g.cl.Flush(ctx)
	g.cl.Close()
}

// Handler is the gateway's HTTP routes.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /produce", g.timed("/produce", g.produceOne))
	mux.HandleFunc("POST /produce/batch", g.timed("/produce/batch", g.produceBatch))
	mux.HandleFunc("POST /produce/fire/batch", g.timed("/produce/fire/batch", g.fireBatch))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, g.Stats()) })
	mux.Handle("GET /metrics/prometheus", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
	return mux
}

// GatewayStats is the JSON of GET /metrics.
type GatewayStats struct {
	Produced    int64 `json:"produced"`
	Errors      int64 `json:"errors"`
	Rejected    int64 `json:"rejected_batches"`
	FirePending int64 `json:"fire_pending"`
}

// Stats reads the counters.
func (g *Gateway) Stats() GatewayStats {
	return GatewayStats{Produced: g.produced.Load(), Errors: g.errors.Load(), Rejected: g.rejected.Load(), FirePending: g.firePending.Load()}
}

// Serve runs the HTTP server on ln until ctx ends.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	return serveHTTP(ctx, ln, g.Handler())
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

func (g *Gateway) timed(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: 200}
		r.Body = http.MaxBytesReader(sw, r.Body, g.cfg.MaxBodyBytes)
		h(sw, r)
		g.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		g.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
}

// httpError answers with a JSON error body.
func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body into v; it answers 413 or 400 itself and
// returns false when the body is unusable.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit))
		return false
	case err != nil:
		httpError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		httpError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return false
	}
	return true
}

// record turns an InRecord into a Kafka record.
func (g *Gateway) record(in InRecord) (*kgo.Record, error) {
	rec := &kgo.Record{Topic: in.Topic}
	if rec.Topic == "" {
		rec.Topic = g.cfg.Topic
	}
	v, err := TextOrBase64(in.Value, in.ValueB64, "value")
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, errors.New("missing value (or value_b64)")
	}
	rec.Value = v
	if rec.Key, err = TextOrBase64(in.Key, in.KeyB64, "key"); err != nil {
		return nil, err
	}
	for k, v := range in.Headers {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return rec, nil
}

// TextOrBase64 reads a field given as text or as base64 (name_b64); nil
// when neither is given. The gateway's bodies and chronik produce's JSON
// lines share this form.
func TextOrBase64(text, b64 *string, name string) ([]byte, error) {
	switch {
	case text != nil && b64 != nil:
		return nil, fmt.Errorf("give %s or %s_b64, not both", name, name)
	case text != nil:
		return []byte(*text), nil
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("%s_b64: %w", name, err)
		}
		return b, nil
	}
	return nil, nil
}

func (g *Gateway) records(w http.ResponseWriter, in []InRecord) ([]*kgo.Record, bool) {
	if len(in) == 0 {
		httpError(w, http.StatusBadRequest, "empty batch")
		return nil, false
	}
	recs := make([]*kgo.Record, len(in))
	for i, r := range in {
		rec, err := g.record(r)
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("record %d: %v", i, err))
			return nil, false
		}
		recs[i] = rec
	}
	return recs, true
}

func (g *Gateway) produceOne(w http.ResponseWriter, r *http.Request) {
	var in InRecord
	if !decode(w, r, &in) {
		return
	}
	rec, err := g.record(in)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	res := g.cl.ProduceSync(r.Context(), rec)
	out, err := res.First()
	if err != nil {
		g.errors.Add(1)
		g.logFailure("produce failed", rec.Topic, err)
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	g.produced.Add(1)
	writeJSON(w, 200, map[string]any{"partition": out.Partition, "offset": out.Offset})
}

// produceBatch waits for every delivery (concurrently) and answers
// {"produced","errors"}.
func (g *Gateway) produceBatch(w http.ResponseWriter, r *http.Request) {
	var in []InRecord
	if !decode(w, r, &in) {
		return
	}
	recs, ok := g.records(w, in)
	if !ok {
		return
	}
	var wg sync.WaitGroup
	var produced, failed atomic.Int64
	var firstErr atomic.Value
	wg.Add(len(recs))
	for _, rec := range recs {
		g.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			produced.Add(1)
		})
	}
	wg.Wait()
	g.produced.Add(produced.Load())
	g.errors.Add(failed.Load())
	resp := map[string]any{"produced": produced.Load(), "errors": failed.Load()}
	if e, ok := firstErr.Load().(string); ok {
		resp["error"] = e
		g.log.Warn("batch records failed", "failed", failed.Load(), "first", e)
	}
	writeJSON(w, 200, resp)
}

// fireBatch queues the records and answers at once; delivery is counted
// in the background. The whole batch is refused with 429 when it does not
// fit in the fire buffer: nothing is queued that cannot be delivered.
func (g *Gateway) fireBatch(w http.ResponseWriter, r *http.Request) {
	var in []InRecord
	if !decode(w, r, &in) {
		return
	}
	recs, ok := g.records(w, in)
	if !ok {
		return
	}
	n := int64(len(recs))
	for {
		cur := g.firePending.Load()
		if cur+n > g.cfg.FireBufferRecords && cur > 0 {
			g.rejected.Add(1)
			w.Header().Set("Retry-After", "1")
			httpError(w, http.StatusTooManyRequests, fmt.Sprintf("producer buffer full (%d of %d records pending): retry later", cur, g.cfg.FireBufferRecords))
			return
		}
		if g.firePending.CompareAndSwap(cur, cur+n) {
			break
		}
	}
	for _, rec := range recs {
		g.cl.Produce(context.Background(), rec, func(rec *kgo.Record, err error) {
			g.firePending.Add(-1)
			if err != nil {
				g.errors.Add(1)
				g.logFailure("fired record failed", rec.Topic, err)
				return
			}
			g.produced.Add(1)
		})
	}
	writeJSON(w, 200, map[string]any{"produced": n, "errors": 0}) // the original's answer
}

// logFailure logs a delivery failure, or counts it when a line was
// logged less than a second ago (the next line says how many were not).
func (g *Gateway) logFailure(msg, topic string, err error) {
	g.failMu.Lock()
	defer g.failMu.Unlock()
	if time.Since(g.failLast) < time.Second {
		g.failQuiet++
		return
	}
	g.log.Warn(msg, "topic", topic, "err", err, "failures_not_logged_since_last_line", g.failQuiet, "failed_total", g.errors.Load())
	g.failLast, g.failQuiet = time.Now(), 0
}

// serveHTTP serves h on ln until ctx ends.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
