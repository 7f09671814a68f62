package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronik-go/chronik/internal/bench"
)

// Stage ramps the number of virtual users linearly to Target over
// Duration (k6's ramping-vus).
type Stage struct {
	Duration time.Duration `json:"duration"`
	Target   int           `json:"target"`
}

// Profile is a built-in load shape with its request mix.
type Profile struct {
	Name   string
	Stages []Stage
	// Every request is a batch of Batch messages of Size bytes to
	// /produce/batch, except every SingleEvery-th iteration (0: never),
	// which sends one message to /produce.
	Batch, Size, SingleEvery int
	// Sleep between a VU's iterations.
	Sleep time.Duration
}

func stages(s ...any) []Stage {
	var out []Stage
	for i := 0; i < len(s); i += 2 {
		out = append(out, Stage{Duration: s[i].(time.Duration), Target: s[i+1].(int)})
	}
	return out
}

const sec, minute = time.Second, time.Minute

// Profiles are the original's k6 scripts: load-test.js, max-load-test.js
// and the stress ConfigMap that its Tests 5–7 ran (100 × 256 B batches).
var Profiles = map[string]Profile{
	"load": {Name: "load", Stages: stages(30*sec, 50, minute, 200, minute, 500, minute, 200, 30*sec, 0),
		Batch: 10, Size: 1024, SingleEvery: 3, Sleep: 10 * time.Millisecond},
	"max-load": {Name: "max-load", Stages: stages(30*sec, 100, minute, 500, 2*minute, 2000, 3*minute, 5000, 2*minute, 2000, minute, 0),
		Batch: 10, Size: 1024},
	"stress": {Name: "stress", Stages: stages(30*sec, 200, minute, 1000, 2*minute, 3000, 5*minute, 5000, 3*minute, 8000, 2*minute, 3000, minute, 0),
		Batch: 100, Size: 256},
}

// ParseStages reads "30s:50,1m:200,30s:0".
func ParseStages(s string) ([]Stage, error) {
	var out []Stage
	for _, part := range strings.Split(s, ",") {
		d, t, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("stage %q: want duration:target, e.g. 30s:50", part)
		}
		dur, err := time.ParseDuration(d)
		if err != nil || dur <= 0 {
			return nil, fmt.Errorf("stage %q: bad duration", part)
		}
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("stage %q: bad target", part)
		}
		out = append(out, Stage{Duration: dur, Target: n})
	}
	if len(out) == 0 {
		return nil, errors.New("no stages")
	}
	return out, nil
}

// Scale multiplies targets by vus and durations by time (targets stay at
// least 1 where they were positive).
func Scale(st []Stage, vus, tm float64) []Stage {
	out := make([]Stage, len(st))
	for i, s := range st {
		t := int(float64(s.Target)*vus + 0.5)
		if s.Target > 0 && t < 1 {
			t = 1
		}
		out[i] = Stage{Duration: time.Duration(float64(s.Duration) * tm), Target: t}
	}
	return out
}

// TargetAt is the number of VUs the stages ask for at t.
func TargetAt(st []Stage, t time.Duration) (vus int, done bool) {
	from := 0
	for _, s := range st {
		if t < s.Duration {
			return from + int(float64(s.Target-from)*float64(t)/float64(s.Duration)), false
		}
		t -= s.Duration
		from = s.Target
	}
	return from, true
}

// LoadConfig is one load test.
type LoadConfig struct {
	URL     string // the gateway, e.g. http://127.0.0.1:8080
	Profile Profile
	Fire    bool          // /produce/fire/batch instead of /produce/batch
	Timeout time.Duration // per request
	Topic   string        // "" : the gateway's default
	// Progress receives a line every ReportInterval (nil: none).
	Progress       io.Writer
	ReportInterval time.Duration
}

// LoadResult is the summary of a run.
type LoadResult struct {
	Profile     string        `json:"profile"`
	Route       string        `json:"route"`
	Stages      []Stage       `json:"stages"`
	DurationSec float64       `json:"duration_secs"`
	MaxVUs      int           `json:"max_vus"`
	Requests    int64         `json:"requests"`
	Messages    int64         `json:"messages"` // acknowledged (or, fired, accepted)
	Errors      int64         `json:"errors"`   // failed requests plus failed records
	FailedReqs  int64         `json:"failed_requests"`
	Throttled   int64         `json:"throttled"` // 429s, retried
	MsgPerSec   float64       `json:"msg_per_sec"`
	Latency     bench.Latency `json:"batch_latency"`
	Timeline    []LoadTick    `json:"timeline"`
	ErrorKinds  map[string]int64
}

// LoadTick is one second of a run.
type LoadTick struct {
	Second   int   `json:"t"`
	VUs      int   `json:"vus"`
	Requests int64 `json:"requests"`
	Messages int64 `json:"messages"`
	Errors   int64 `json:"errors"`
}

type loadRun struct {
	cfg      LoadConfig
	client   *http.Client
	payload  string
	lat      *bench.Recorder
	reqs     atomic.Int64
	msgs     atomic.Int64
	errs     atomic.Int64
	failed   atomic.Int64
	throttle atomic.Int64
	target   atomic.Int64
	errMu    sync.Mutex
	errKinds map[string]int64
}

// RunLoad drives the stages against the gateway and returns the summary.
func RunLoad(ctx context.Context, cfg LoadConfig) (*LoadResult, error) {
	p := cfg.Profile
	if len(p.Stages) == 0 || p.Batch < 1 || p.Size < 1 {
		return nil, errors.New("a profile needs stages, a batch size and a message size")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	maxVUs := 0
	for _, s := range p.Stages {
		maxVUs = max(maxVUs, s.Target)
	}
	tr := &http.Transport{MaxIdleConns: maxVUs + 16, MaxIdleConnsPerHost: maxVUs + 16, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	r := &loadRun{cfg: cfg, client: &http.Client{Transport: tr}, lat: bench.NewRecorder(16), errKinds: map[string]int64{}}
	const hexdigits = "0123456789abcdef"
	var b strings.Builder
	for range p.Size {
		b.WriteByte(hexdigits[rand.IntN(16)])
	}
	r.payload = b.String()

	start := time.Now()
	var wg sync.WaitGroup
	alive := make([]atomic.Bool, maxVUs)
	var timeline []LoadTick
	var lastR, lastM, lastE int64
	lastReport := start
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	nextSecond := start.Add(time.Second)
	for {
		el := time.Since(start)
		n, done := TargetAt(p.Stages, el)
		if ctx.Err() != nil {
			done, n = true, 0
		}
		r.target.Store(int64(n))
		for id := range n {
			if alive[id].CompareAndSwap(false, true) {
				wg.Go(func() {
					defer alive[id].Store(false)
					r.vu(ctx, id)
				})
			}
		}
		now := time.Now()
		if !now.Before(nextSecond) {
			rq, m, e := r.reqs.Load(), r.msgs.Load(), r.errs.Load()
			timeline = append(timeline, LoadTick{Second: len(timeline) + 1, VUs: n, Requests: rq - lastR, Messages: m - lastM, Errors: e - lastE})
			lastR, lastM, lastE = rq, m, e
			nextSecond = nextSecond.Add(time.Second)
			if cfg.Progress != nil && cfg.ReportInterval > 0 && now.Sub(lastReport) >= cfg.ReportInterval {
				secs := now.Sub(lastReport).Seconds()
				var sumR, sumM int64
				for _, t := range timeline[max(len(timeline)-int(secs+0.5), 0):] {
					sumR, sumM = sumR+t.Requests, sumM+t.Messages
				}
				h, _ := r.lat.Snapshot()
				fmt.Fprintf(cfg.Progress, "[%5.0fs] VUs %d  %.0f req/s  %.0f msg/s  errors %d  throttled %d  p95 %.1f ms\n",
					el.Seconds(), n, float64(sumR)/secs, float64(sumM)/secs, e, r.throttle.Load(), float64(h.ValueAtQuantile(95))/1000)
				lastReport = now
			}
		}
		if done {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	wg.Wait()
	el := time.Since(start)
	h, clamped := r.lat.Snapshot()
	res := &LoadResult{Profile: p.Name, Route: r.route(), Stages: p.Stages, DurationSec: el.Seconds(), MaxVUs: maxVUs,
		Requests: r.reqs.Load(), Messages: r.msgs.Load(), Errors: r.errs.Load(), FailedReqs: r.failed.Load(), Throttled: r.throttle.Load(),
		Latency: bench.Summarise(h, clamped), Timeline: timeline, ErrorKinds: r.errKinds}
	res.Latency.Curve = nil
	res.MsgPerSec = float64(res.Messages) / el.Seconds()
	return res, nil
}

func (r *loadRun) route() string {
	if r.cfg.Fire {
		return "/produce/fire/batch"
	}
	return "/produce/batch"
}

func (r *loadRun) fail(kind string, n int64) {
	r.errs.Add(n)
	r.errMu.Lock()
	if len(r.errKinds) < 32 || r.errKinds[kind] > 0 {
		r.errKinds[kind] += n
	}
	r.errMu.Unlock()
}

// vu is one virtual user: it iterates until the target drops below it.
func (r *loadRun) vu(ctx context.Context, id int) {
	p := r.cfg.Profile
	var body bytes.Buffer
	for iter := 0; ctx.Err() == nil && int64(id) < r.target.Load(); iter++ {
		single := p.SingleEvery > 0 && iter%p.SingleEvery == 0
		body.Reset()
		sent := strconv.FormatInt(time.Now().UnixMicro(), 10)
		writeRec := func(i int) {
			body.WriteString(`{"key":"lt-`)
			body.WriteString(strconv.Itoa(id))
			body.WriteByte('-')
			body.WriteString(strconv.Itoa(iter))
			body.WriteByte('-')
			body.WriteString(strconv.Itoa(i))
			body.WriteString(`","value":"`)
			body.WriteString(r.payload)
			body.WriteString(`","headers":{"` + SentHeader + `":"`)
			body.WriteString(sent)
			body.WriteString(`"}`)
			if r.cfg.Topic != "" {
				body.WriteString(`,"topic":`)
				t, _ := json.Marshal(r.cfg.Topic)
				body.Write(t)
			}
			body.WriteByte('}')
		}
		route, n := r.route(), int64(p.Batch)
		if single {
			route, n = "/produce", 1
			writeRec(0)
		} else {
			body.WriteByte('[')
			for i := range p.Batch {
				if i > 0 {
					body.WriteByte(',')
				}
				writeRec(i)
			}
			body.WriteByte(']')
		}
		r.send(ctx, id, route, body.Bytes(), n)
		if p.Sleep > 0 {
			time.Sleep(p.Sleep)
		}
	}
}

// send posts one request; a 429 is waited out (Retry-After) and retried,
// so a throttled batch is delayed, never lost.
func (r *loadRun) send(ctx context.Context, id int, route string, body []byte, n int64) {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		req, _ := http.NewRequestWithContext(rctx, http.MethodPost, r.cfg.URL+route, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := r.client.Do(req)
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return
			}
			r.reqs.Add(1)
			r.failed.Add(1)
			r.fail("request: "+errKind(err), n)
			return
		}
		var out struct {
			Produced int64  `json:"produced"`
			Errors   int64  `json:"errors"`
			Error    string `json:"error"`
		}
		derr := json.NewDecoder(resp.Body).Decode(&out)
		_ = resp.Body.Close()
		cancel()
		took := time.Since(start)
		if resp.StatusCode == http.StatusTooManyRequests {
			r.throttle.Add(1)
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				r.fail("throttled, then stopped", n)
				return
			}
		}
		r.reqs.Add(1)
		r.lat.Record(id, took)
		switch {
		case resp.StatusCode != http.StatusOK || derr != nil:
			r.failed.Add(1)
			r.fail(fmt.Sprintf("HTTP %d %s", resp.StatusCode, out.Error), n)
		case route == "/produce":
			r.msgs.Add(1)
		default:
			r.msgs.Add(out.Produced)
			if out.Errors > 0 {
				r.fail("record: "+out.Error, out.Errors)
			}
		}
		return
	}
}

func errKind(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// WriteSummary prints the result for people.
func (res *LoadResult) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "profile      %s (%s), %d stages, up to %d VUs, %.1f s\n", res.Profile, res.Route, len(res.Stages), res.MaxVUs, res.DurationSec)
	fmt.Fprintf(w, "requests     %d (%d failed, %d throttled and retried)\n", res.Requests, res.FailedReqs, res.Throttled)
	fmt.Fprintf(w, "messages     %d (%.0f msg/s), errors %d\n", res.Messages, res.MsgPerSec, res.Errors)
	l := res.Latency
	fmt.Fprintf(w, "batch        p50 %.1f ms  p90 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms (%d samples, %s)\n",
		ms(l.P50), ms(l.P90), ms(l.P95), ms(l.P99), ms(l.Max), l.Count, "HDR, every request")
	for k, v := range res.ErrorKinds {
		fmt.Fprintf(w, "error        %d × %s\n", v, k)
	}
	if len(res.Timeline) > 0 {
		fmt.Fprintf(w, "throughput over time (msg/s, every %d s):", max(len(res.Timeline)/20, 1))
		step := max(len(res.Timeline)/20, 1)
		for i := 0; i < len(res.Timeline); i += step {
			fmt.Fprintf(w, " %d", res.Timeline[i].Messages)
		}
		fmt.Fprintln(w)
	}
}

func ms(us int64) float64 { return float64(us) / 1000 }
