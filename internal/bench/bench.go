// Package bench is `chronik bench`: a Kafka load generator on franz-go that
// measures any Kafka-compatible system. It runs a closed loop (N messages
// in flight, as the original chronik-bench) or an open loop at a fixed
// offered rate, records every latency sample in HDR histograms (sharded,
// merged at the end: nothing is dropped) and reports a table, JSON, CSV
// and an offline HTML page.
package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/kafkaopt"
)

// Modes.
const (
	ModeProduce   = "produce"
	ModeConsume   = "consume"
	ModeRoundTrip = "round-trip"
	ModeMetadata  = "metadata"
)

// Config is one benchmark run; the CLI flags map onto it one to one.
type Config struct {
	Brokers     []string
	Topic       string
	Mode        string
	Concurrency int // closed loop: messages (or requests) in flight
	MessageSize int
	Duration    time.Duration // 0: until MessageCount or interrupted
	Warmup      time.Duration // the same load, not measured, before the run
	// MessageCount stops after this many messages in total (0: no limit).
	MessageCount int64
	// RateLimit is the global offered rate in messages per second (0: as
	// fast as the loop allows). OpenLoop sends at exactly that rate
	// whatever the latency; latency is then measured from each message's
	// intended send time.
	RateLimit float64
	OpenLoop  bool

	Acks           string // 0, 1, -1 or all
	Idempotent     bool
	Compression    string
	LingerMs       int
	BatchSize      int
	MaxInflight    int // produce requests in flight per broker (non-idempotent)
	RequestTimeout time.Duration
	MessageTimeout time.Duration

	CreateTopic       bool
	DeleteTopicAfter  bool
	Partitions        int32
	ReplicationFactor int16

	KeyPattern     string // random, sequential, fixed, none
	PayloadPattern string // random, zeros, text

	// ConsumerGroup makes consume mode join this group; empty: assign
	// every partition directly.
	ConsumerGroup string

	ReportInterval time.Duration
	Progress       io.Writer // live progress lines; nil: none
	Label          string    // names the run in reports and comparisons
}

// Defaults are the original chronik-bench defaults.
func Defaults() Config {
	return Config{
		Brokers: []string{"localhost:9092"}, Topic: "chronik-bench", Mode: ModeProduce,
		Concurrency: 64, MessageSize: 1024, Duration: 60 * time.Second, Warmup: 5 * time.Second,
		Acks: "1", Compression: "none", BatchSize: 16384, MaxInflight: 5,
		RequestTimeout: 30 * time.Second, MessageTimeout: 60 * time.Second,
		Partitions: 1, ReplicationFactor: 1, KeyPattern: "random", PayloadPattern: "random",
		ReportInterval: 5 * time.Second,
	}
}

func (c *Config) validate() error {
	switch c.Mode {
	case ModeProduce, ModeConsume, ModeRoundTrip, ModeMetadata:
	default:
		return fmt.Errorf("unknown mode %q (produce, consume, round-trip, metadata)", c.Mode)
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.MessageSize < 0 || (c.Mode == ModeRoundTrip && c.MessageSize < 8) {
		return fmt.Errorf("message size %d too small (round-trip needs 8 bytes for the timestamp)", c.MessageSize)
	}
	if c.OpenLoop && c.RateLimit <= 0 {
		return errors.New("an open loop needs --rate-limit (the offered rate)")
	}
	if c.RateLimit < 0 {
		return errors.New("rate limit must not be negative")
	}
	if _, err := acksOpt(c.Acks, c.Idempotent); err != nil {
		return err
	}
	if _, err := kafkaopt.Compression(c.Compression); err != nil {
		return err
	}
	switch c.KeyPattern {
	case "random", "sequential", "fixed", "none":
	default:
		return fmt.Errorf("unknown key pattern %q (random, sequential, fixed, none)", c.KeyPattern)
	}
	switch c.PayloadPattern {
	case "random", "zeros", "text":
	default:
		return fmt.Errorf("unknown payload pattern %q (random, zeros, text)", c.PayloadPattern)
	}
	// No duration and no count: the run lasts until the caller's context
	// ends (Ctrl-C), as the original's -d 0.
	return nil
}

func acksOpt(acks string, idempotent bool) (kgo.Acks, error) {
	a, err := kafkaopt.Acks(acks)
	if err == nil && idempotent && !kafkaopt.IsAll(acks) {
		err = errors.New("an idempotent producer needs acks=all")
	}
	return a, err
}

// counters are what every mode counts while it runs.
type counters struct {
	msgs, bytes, failed, inflight atomic.Int64
	issued                        atomic.Int64
	errMu                         sync.Mutex
	errs                          map[string]int64
}

func (c *counters) fail(err error) {
	c.failed.Add(1)
	key := err.Error()
	var ke *kerr.Error
	if errors.As(err, &ke) {
		key = ke.Message
	}
	c.errMu.Lock()
	if c.errs == nil {
		c.errs = map[string]int64{}
	}
	if len(c.errs) < 32 || c.errs[key] > 0 {
		c.errs[key]++
	} else {
		c.errs["other"]++
	}
	c.errMu.Unlock()
}

// claim takes one message from the -n budget; false when it is spent.
func (c *counters) claim(limit int64) bool {
	if limit <= 0 {
		return true
	}
	return c.issued.Add(1) <= limit
}

// runner is one run's state.
type runner struct {
	cfg     Config
	cl      *kgo.Client
	adm     *kadm.Client
	c       *counters
	lat     *Recorder // produce acks, request latency or record age
	e2e     *Recorder // round-trip only
	measure atomic.Bool
	payload []byte // shared read-only payload source
	keySeq  atomic.Int64
	// measuredFrom is when the measured phase began (µs since the epoch).
	measuredFrom atomic.Int64
	timeline     []Tick
}

// Run executes cfg until its duration or message count is reached or ctx
// ends, and returns the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts, err := clientOpts(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	shards := min(max(cfg.Concurrency, runtime.GOMAXPROCS(0)), 4*runtime.GOMAXPROCS(0), 64)
	r := &runner{cfg: cfg, cl: cl, adm: kadm.NewClient(cl), c: &counters{}, lat: NewRecorder(shards), payload: makePayload(cfg)}
	if cfg.Mode == ModeRoundTrip {
		r.e2e = NewRecorder(shards)
	}
	if err := r.prepareTopic(ctx); err != nil {
		return nil, err
	}
	if cfg.DeleteTopicAfter {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_, _ = r.adm.DeleteTopics(dctx, cfg.Topic)
		}()
	}
	switch cfg.Mode {
	case ModeProduce:
		return r.produce(ctx)
	case ModeConsume:
		return r.consume(ctx)
	case ModeRoundTrip:
		return r.roundTrip(ctx)
	default:
		return r.metadata(ctx)
	}
}

func clientOpts(cfg Config) ([]kgo.Opt, error) {
	acks, err := acksOpt(cfg.Acks, cfg.Idempotent)
	if err != nil {
		return nil, err
	}
	codec, err := kafkaopt.Compression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(acks),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(time.Duration(cfg.LingerMs) * time.Millisecond),
		kgo.ProducerBatchMaxBytes(int32(max(cfg.BatchSize, 1024))),
		kgo.ProduceRequestTimeout(cfg.RequestTimeout),
		kgo.RecordDeliveryTimeout(cfg.MessageTimeout),
		kgo.MaxBufferedRecords(max(cfg.Concurrency*2, 10000)),
		kgo.AllowAutoTopicCreation(),
	}
	if !cfg.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(max(cfg.MaxInflight, 1)))
	}
	return opts, nil
}

func (r *runner) prepareTopic(ctx context.Context) error {
	if !r.cfg.CreateTopic || r.cfg.Mode == ModeMetadata {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := r.adm.CreateTopic(cctx, r.cfg.Partitions, r.cfg.ReplicationFactor, nil, r.cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", r.cfg.Topic, err)
	}
	return nil
}

func makePayload(cfg Config) []byte {
	n := max(cfg.MessageSize, 8)
	b := make([]byte, 2*n)
	switch cfg.PayloadPattern {
	case "zeros":
	case "text":
		const words = "the quick brown fox jumps over the lazy dog chronik streams kafka records "
		for i := range b {
			b[i] = words[i%len(words)]
		}
	default:
		rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		for i := 0; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
		}
	}
	return b
}

// record builds message i; when stamp is set its first 8 bytes carry
// sent as microseconds since the epoch (little-endian, as the original).
func (r *runner) record(i int64, sent time.Time, stamp bool) *kgo.Record {
	size := r.cfg.MessageSize
	off := int(uint64(i*7919) % uint64(size+1))
	var v []byte
	if stamp {
		v = make([]byte, size)
		copy(v, r.payload[off:off+size])
		binary.LittleEndian.PutUint64(v, uint64(sent.UnixMicro()))
	} else {
		v = r.payload[off : off+size : off+size]
	}
	rec := &kgo.Record{Value: v}
	switch r.cfg.KeyPattern {
	case "random":
		rec.Key = strconv.AppendUint(make([]byte, 0, 20), rand.Uint64(), 36)
	case "sequential":
		rec.Key = strconv.AppendInt(make([]byte, 0, 20), r.keySeq.Add(1), 10)
	case "fixed":
		rec.Key = fixedKey
	}
	return rec
}

var fixedKey = []byte("chronik-bench-key")

// done records a produce completion.
func (r *runner) done(shard int, from time.Time, size int, err error) {
	r.c.inflight.Add(-1)
	if !r.measure.Load() {
		return
	}
	if err != nil {
		r.c.fail(err)
		return
	}
	r.lat.Record(shard, time.Since(from))
	r.c.msgs.Add(1)
	r.c.bytes.Add(int64(size))
}

// producePhase drives the load until ctx ends or the message budget is
// spent, then waits for everything in flight.
func (r *runner) producePhase(ctx context.Context, limit int64, stamp bool) {
	cfg := r.cfg
	var pacer *Pacer
	if cfg.RateLimit > 0 {
		pacer = NewPacer(time.Now(), cfg.RateLimit, limit)
	}
	// Records are produced with a context that outlives the phase: a
	// record already handed to the client is waited for, not abandoned.
	if cfg.OpenLoop {
		r.openLoop(ctx, pacer, stamp)
	} else {
		var wg sync.WaitGroup
		for w := range cfg.Concurrency {
			wg.Go(func() { r.closedWorker(ctx, w, pacer, limit, stamp) })
		}
		wg.Wait()
	}
	fctx, cancel := context.WithTimeout(context.Background(), cfg.MessageTimeout+5*time.Second)
	defer cancel()
	_ = r.cl.Flush(fctx)
}

func (r *runner) closedWorker(ctx context.Context, w int, pacer *Pacer, limit int64, stamp bool) {
	done := make(chan error, 1)
	for i := int64(w); ctx.Err() == nil; i += int64(r.cfg.Concurrency) {
		var from time.Time
		if pacer != nil {
			due, ok := pacer.Take(ctx)
			if !ok {
				return
			}
			from = due
		} else {
			if !r.c.claim(limit) {
				return
			}
			from = time.Now()
		}
		rec := r.record(i, from, stamp)
		r.c.inflight.Add(1)
		r.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) { done <- err })
		r.done(w, from, len(rec.Value), <-done)
	}
}

// openLoop sends each message at its due time from one dispatcher; it
// never waits for acknowledgements, so a slow broker shows as latency
// (from the due time), not as a lower offered rate.
func (r *runner) openLoop(ctx context.Context, pacer *Pacer, stamp bool) {
	for ctx.Err() == nil && !pacer.Exhausted() {
		first, n := pacer.DueBy(time.Now(), 4096)
		for i := first; i < first+n; i++ {
			due := pacer.Due(i)
			rec := r.record(i, due, stamp)
			size := len(rec.Value)
			shard := int(i)
			r.c.inflight.Add(1)
			r.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) { r.done(shard, due, size, err) })
		}
		if n == 0 {
			wait := time.Until(pacer.Due(first))
			if wait > 0 {
				select {
				case <-time.After(min(wait, 5*time.Millisecond)):
				case <-ctx.Done():
				}
			}
		}
	}
}

// phases runs warm-up (not measured) then the measured phase of fn.
func (r *runner) phases(ctx context.Context, fn func(ctx context.Context, limit int64)) (start time.Time, elapsed time.Duration) {
	if r.cfg.Warmup > 0 && ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, r.cfg.Warmup)
		fn(wctx, 0)
		cancel()
		r.c.issued.Store(0)
	}
	mctx, cancel := ctx, context.CancelFunc(func() {})
	if r.cfg.Duration > 0 {
		mctx, cancel = context.WithTimeout(ctx, r.cfg.Duration)
	}
	defer cancel()
	start = time.Now()
	r.measuredFrom.Store(start.UnixMicro())
	r.measure.Store(true)
	stop := r.watch(mctx, start)
	fn(mctx, r.cfg.MessageCount)
	elapsed = time.Since(start)
	stop()
	return start, elapsed
}

func (r *runner) produce(ctx context.Context) (*Result, error) {
	start, elapsed := r.phases(ctx, func(ctx context.Context, limit int64) { r.producePhase(ctx, limit, false) })
	res := r.result(start, elapsed)
	res.LatencyKind = r.produceLatencyKind()
	return res, nil
}

func (r *runner) produceLatencyKind() string {
	if r.cfg.RateLimit > 0 {
		return "produce: intended send time → acknowledgement (open to coordinated omission: no)"
	}
	return "produce: send → acknowledgement"
}

func (r *runner) metadata(ctx context.Context) (*Result, error) {
	start, elapsed := r.phases(ctx, func(ctx context.Context, limit int64) {
		var pacer *Pacer
		if r.cfg.RateLimit > 0 {
			pacer = NewPacer(time.Now(), r.cfg.RateLimit, limit)
		}
		var wg sync.WaitGroup
		for w := range r.cfg.Concurrency {
			wg.Go(func() {
				for ctx.Err() == nil {
					from := time.Now()
					if pacer != nil {
						due, ok := pacer.Take(ctx)
						if !ok {
							return
						}
						from = due
					} else if !r.c.claim(limit) {
						return
					}
					req := kmsg.NewPtrMetadataRequest()
					t := kmsg.NewMetadataRequestTopic()
					t.Topic = kmsg.StringPtr(r.cfg.Topic)
					req.Topics = append(req.Topics, t)
					r.c.inflight.Add(1)
					resp, err := req.RequestWith(context.Background(), r.cl)
					if err == nil && len(resp.Topics) == 1 {
						err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
					}
					r.done(w, from, 0, err)
				}
			})
		}
		wg.Wait()
	})
	res := r.result(start, elapsed)
	res.LatencyKind = "metadata: request → response"
	return res, nil
}

// watch samples the counters every second for the timeline and prints a
// progress line every report interval; the returned func stops it.
func (r *runner) watch(ctx context.Context, start time.Time) func() {
	stopc := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var lastM, lastB, lastE int64
		lastReport, lastRM, lastRB := start, int64(0), int64(0)
		sample := func(now time.Time) {
			m, b, e := r.c.msgs.Load(), r.c.bytes.Load(), r.c.failed.Load()
			r.timeline = append(r.timeline, Tick{Second: int(now.Sub(start).Round(time.Second) / time.Second), Messages: m - lastM, Bytes: b - lastB, Errors: e - lastE})
			lastM, lastB, lastE = m, b, e
			if r.cfg.Progress != nil && r.cfg.ReportInterval > 0 && now.Sub(lastReport) >= r.cfg.ReportInterval-50*time.Millisecond {
				secs := now.Sub(lastReport).Seconds()
				h, _ := r.lat.Snapshot()
				fmt.Fprintf(r.cfg.Progress, "[%5.0fs] %s msg/s  %.2f MB/s  in-flight %d  errors %d  p99 %s\n",
					now.Sub(start).Seconds(), group3(int64(float64(m-lastRM)/secs)), float64(b-lastRB)/secs/1e6,
					r.c.inflight.Load(), e, fmtMicros(h.ValueAtQuantile(99)))
				lastReport, lastRM, lastRB = now, m, b
			}
		}
		for {
			select {
			case now := <-tick.C:
				sample(now)
			case <-stopc:
				return
			}
		}
	})
	return func() { close(stopc); wg.Wait() }
}

// fmtMicros prints a latency in µs or ms.
func fmtMicros(us int64) string {
	if us >= 10_000_000 {
		return strconv.FormatFloat(float64(us)/1e6, 'f', 2, 64) + " s"
	}
	if us < 1000 {
		return strconv.FormatInt(us, 10) + " µs"
	}
	return strconv.FormatFloat(float64(us)/1000, 'f', 2, 64) + " ms"
}

// group3 prints n with thousands separators.
func group3(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
