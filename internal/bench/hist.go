package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range and precision. Every sample is recorded: a value above
// histMaxMicros is recorded as histMaxMicros and counted in Clamped (the
// report says so), a value below 1 µs as 1 µs.
const (
	histMinMicros = 1
	histMaxMicros = int64(time.Hour / time.Microsecond)
	histSigFigs   = 3
)

// Precision is the sentence every report carries about its latencies.
const Precision = "HDR histogram, 1 µs to 1 h, 3 significant digits (each percentile within 0.1% of the exact sample); every sample recorded"

func newHDR() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
}

// Recorder collects latency samples from many goroutines without dropping
// any: it is sharded, each shard a histogram behind its own mutex, and a
// writer always waits for its shard's lock (never a try-lock).
type Recorder struct {
	shards []recShard
}

type recShard struct {
	mu      sync.Mutex
	h       *hdrhistogram.Histogram
	clamped int64
	_       [40]byte // keep shards on separate cache lines
}

// NewRecorder makes a recorder with n shards (at least 1).
func NewRecorder(n int) *Recorder {
	n = max(n, 1)
	r := &Recorder{shards: make([]recShard, n)}
	for i := range r.shards {
		r.shards[i].h = newHDR()
	}
	return r
}

// Record adds one sample to shard (any int: it is reduced modulo the
// number of shards).
func (r *Recorder) Record(shard int, d time.Duration) {
	if shard < 0 {
		shard = -shard
	}
	s := &r.shards[shard%len(r.shards)]
	v := d.Microseconds()
	s.mu.Lock()
	if v > histMaxMicros {
		v = histMaxMicros
		s.clamped++
	}
	_ = s.h.RecordValue(max(v, histMinMicros)) // in range by construction
	s.mu.Unlock()
}

// Snapshot merges every shard into one new histogram (the shards keep
// their samples) and returns it with the number of clamped samples.
func (r *Recorder) Snapshot() (*hdrhistogram.Histogram, int64) {
	out := newHDR()
	var clamped int64
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		clamped += s.clamped
		s.mu.Unlock()
	}
	return out, clamped
}

// Latency is a histogram summarised for reports; values in microseconds.
type Latency struct {
	Count   int64   `json:"count"`
	Min     int64   `json:"min_us"`
	Mean    float64 `json:"mean_us"`
	P50     int64   `json:"p50_us"`
	P90     int64   `json:"p90_us"`
	P95     int64   `json:"p95_us"`
	P99     int64   `json:"p99_us"`
	P999    int64   `json:"p999_us"`
	Max     int64   `json:"max_us"`
	Clamped int64   `json:"clamped,omitempty"`
	// Curve is the percentile distribution for plots: (percentile, µs).
	Curve []CurvePoint `json:"curve,omitempty"`
}

// CurvePoint is one point of a latency percentile plot.
type CurvePoint struct {
	Percentile float64 `json:"percentile"`
	Micros     int64   `json:"us"`
}

// curvePercentiles are the plotted points: denser toward the tail.
var curvePercentiles = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96.25, 97.5, 98.125, 98.75, 99, 99.5, 99.75, 99.875, 99.9, 99.95, 99.99, 99.995, 99.999, 100}

// Summarise reads a histogram into a Latency.
func Summarise(h *hdrhistogram.Histogram, clamped int64) Latency {
	l := Latency{Count: h.TotalCount(), Clamped: clamped}
	if l.Count == 0 {
		return l
	}
	l.Min, l.Mean, l.Max = h.Min(), h.Mean(), h.Max()
	l.P50, l.P90, l.P95 = h.ValueAtQuantile(50), h.ValueAtQuantile(90), h.ValueAtQuantile(95)
	l.P99, l.P999 = h.ValueAtQuantile(99), h.ValueAtQuantile(99.9)
	for _, p := range curvePercentiles {
		l.Curve = append(l.Curve, CurvePoint{Percentile: p, Micros: h.ValueAtQuantile(p)})
	}
	return l
}
