package broker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// quotaRate is the producer byte rate the limited clients get.
const quotaRate = 64 << 10

// quotaBroker starts a broker for the quota tests. Kafka's default window
// (11 samples of 1 s) lets a fresh client burst about 10 s of its quota
// before the first throttle, and each sample that expires can release
// another burst, so over 20 s the manager lets through 1.1–1.3× the quota
// (on a simulated clock, depending on the request size) even though the
// long-run rate converges to it (TestManagerHoldsTheRate in internal/quota). Two samples of 1 s keep the burst to
// about one second, so that 20 s measure the steady state the quota
// promises.
func quotaBroker(t *testing.T) (*testbroker.Broker, *kadm.Client) {
	t.Helper()
	cfg := testbroker.Config(t.TempDir())
	cfg.QuotaWindowNum, cfg.QuotaWindowSizeSeconds = 2, 1
	b := testbroker.Start(t, cfg)
	return b, kadm.NewClient(client(t, b.Addr))
}

func setProduceQuota(t *testing.T, adm *kadm.Client, clientID string, rate float64) {
	t.Helper()
	res, err := adm.AlterClientQuotas(ctxT(t), []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &clientID}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: rate}},
	}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("set quota: %v %+v", err, res)
	}
}

// quotaHooks counts a franz-go client's throttles and the record-batch
// bytes acknowledged before a deadline (what the broker charges).
type quotaHooks struct {
	deadline   atomic.Int64
	throttles  atomic.Int64
	throttleNs atomic.Int64
	acked      atomic.Int64
}

func (h *quotaHooks) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	h.throttles.Add(1)
	h.throttleNs.Add(int64(d))
}

func (h *quotaHooks) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	if time.Now().UnixNano() < h.deadline.Load() {
		h.acked.Add(int64(m.CompressedBytes))
	}
}

// TestQuotaProduceThrottlesOnlyTheLimitedClient: two franz-go producers
// write as fast as they are let. The one whose client id has a producer
// byte rate of 64 KiB/s is held to it over 20 s and sees throttle_time_ms;
// the other, three times faster and without a quota, gets throttle 0 in
// every response and every record acknowledged.
func TestQuotaProduceThrottlesOnlyTheLimitedClient(t *testing.T) {
	b, adm := quotaBroker(t)
	createTopic(t, adm, "q-limited", 1, nil)
	createTopic(t, adm, "q-free", 1, nil)
	setProduceQuota(t, adm, "limited", quotaRate)

	const run = 20 * time.Second
	value := make([]byte, 1000)
	limHooks, freeHooks := &quotaHooks{}, &quotaHooks{}
	opts := func(id, topic string, h *quotaHooks) []kgo.Opt {
		return []kgo.Opt{kgo.ClientID(id), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(16 << 10),
			kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(64), kgo.WithHooks(h)}
	}
	lim := client(t, b.Addr, opts("limited", "q-limited", limHooks)...)
	free := client(t, b.Addr, opts("free", "q-free", freeHooks)...)
	start := time.Now()
	deadline := start.Add(run)
	limHooks.deadline.Store(deadline.UnixNano())
	freeHooks.deadline.Store(deadline.Add(time.Hour).UnixNano())

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var wg sync.WaitGroup
	var limErrs, freeSent, freeAcked, freeErrs atomic.Int64
	wg.Add(2)
	go func() { // the limited producer: as fast as the broker lets it
		defer wg.Done()
		for ctx.Err() == nil {
			lim.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil && ctx.Err() == nil {
					limErrs.Add(1)
				}
			})
		}
	}()
	go func() { // the free producer: 200 records (~200 KiB) a second
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			<-tick.C
			freeSent.Add(1)
			free.Produce(context.Background(), &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					freeErrs.Add(1)
					return
				}
				freeAcked.Add(1)
			})
		}
	}()
	wg.Wait()
	if err := free.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)

	got := float64(limHooks.acked.Load()) / run.Seconds()
	t.Logf("limited: %.0f B/s acknowledged over %v (quota %d B/s, %.2fx), %d throttled responses, %v throttle in all",
		got, run, quotaRate, got/quotaRate, limHooks.throttles.Load(), time.Duration(limHooks.throttleNs.Load()).Round(time.Millisecond))
	t.Logf("free: %d records sent, %d acknowledged, %d throttled responses, %.0f B/s", freeSent.Load(), freeAcked.Load(), freeHooks.throttles.Load(),
		float64(freeHooks.acked.Load())/elapsed.Seconds())
	if got > 1.2*quotaRate {
		t.Errorf("the limited client wrote %.0f B/s, more than 20%% over its quota of %d B/s", got, quotaRate)
	}
	if got < 0.5*quotaRate {
		t.Errorf("the limited client wrote only %.0f B/s against a quota of %d B/s", got, quotaRate)
	}
	if limHooks.throttles.Load() == 0 {
		t.Error("the limited client never saw throttle_time_ms > 0")
	}
	if limErrs.Load() != 0 {
		t.Errorf("the limited client had %d failed records (throttling must not fail requests)", limErrs.Load())
	}
	if n := freeHooks.throttles.Load(); n != 0 {
		t.Errorf("the client without a quota saw %d throttled responses", n)
	}
	if freeErrs.Load() != 0 || freeAcked.Load() != freeSent.Load() {
		t.Errorf("the client without a quota: %d sent, %d acknowledged, %d failed", freeSent.Load(), freeAcked.Load(), freeErrs.Load())
	}
	if float64(freeHooks.acked.Load())/elapsed.Seconds() < 2*quotaRate {
		t.Errorf("the client without a quota wrote only %.0f B/s", float64(freeHooks.acked.Load())/elapsed.Seconds())
	}
}

// storedBatchBytes reads a one-partition topic from the start and returns
// the record-batch bytes (what the producer quota charges) of the batches
// that start below end.
func storedBatchBytes(t *testing.T, addr, topic string, end int64) int64 {
	t.Helper()
	var bytes, records int64
	h := &fetchBytes{fn: func(m kgo.FetchBatchMetrics) {
		if records < end {
			bytes += int64(m.CompressedBytes)
		}
		records += int64(m.NumRecords)
	}}
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond), kgo.WithHooks(h))
	ctx := ctxT(t)
	var got int64
	for got < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", got, end, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { got = max(got, r.Offset+1) })
	}
	cl.Close() // hooks ran on this goroutine's polls; stop before reading
	return bytes
}

type fetchBytes struct{ fn func(kgo.FetchBatchMetrics) }

func (h *fetchBytes) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.fn(m)
}

func endOffset(t *testing.T, adm *kadm.Client, topic string) int64 {
	t.Helper()
	offs, err := adm.ListEndOffsets(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := offs.Lookup(topic, 0)
	return o.Offset
}

// scrapeCounter returns a sample's value from the broker's /metrics.
func scrapeCounter(t *testing.T, b *testbroker.Broker, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

const pyProducer = `
import json, os, sys, time
from confluent_kafka import Producer
bootstrap, topic, client_id, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
throttles = []
p = Producer({'bootstrap.servers': bootstrap, 'client.id': client_id, 'batch.size': 16384, 'linger.ms': 5,
              'max.in.flight.requests.per.connection': 1, 'queue.buffering.max.messages': 200,
              'throttle_cb': lambda ev: throttles.append(ev.throttle_time)})
value = b'x' * 1000
end = time.time() + secs
while time.time() < end:
    try:
        p.produce(topic, value)
    except BufferError:
        p.poll(0.05)
        continue
    p.poll(0)
print(json.dumps({'throttles': len(throttles), 'throttle_s': sum(throttles)}), flush=True)
os._exit(0)  # do not wait for what is still queued: the measurement ends here
`

// TestQuotaKcatAndConfluentPythonObeyThrottle: librdkafka clients (kcat,
// confluent-kafka-python), each with a client id limited to 64 KiB/s,
// produce as fast as they can for 20 s; what the broker stored stays
// within 20% over the quota, and the broker counted throttled responses.
func TestQuotaKcatAndConfluentPythonObeyThrottle(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: make test installs it (make compat-tools; apt-get install kcat)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import confluent_kafka").Run(); err != nil {
		t.Fatal("confluent-kafka-python is not installed: make test installs it (make compat-tools; apt-get install python3-confluent-kafka)")
	}
	b, adm := quotaBroker(t)
	for _, n := range []string{"q-kcat", "q-py"} {
		createTopic(t, adm, n, 1, nil)
		setProduceQuota(t, adm, n, quotaRate)
	}
	const run = 20 * time.Second
	type outcome struct {
		took time.Duration
		end  int64
		note string
	}
	var wg sync.WaitGroup
	var kcatOut, pyOut outcome
	wg.Add(2)
	go func() { // kcat reads lines from stdin as fast as we write them
		defer wg.Done()
		cmd := exec.Command(kcat, "-b", b.Addr, "-P", "-t", "q-kcat", "-X", "client.id=q-kcat", "-X", "batch.size=16384",
			"-X", "linger.ms=5", "-X", "max.in.flight.requests.per.connection=1", "-X", "queue.buffering.max.messages=200")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Error(err)
			return
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return
		}
		line := []byte(strings.Repeat("k", 999) + "\n")
		var fed sync.WaitGroup
		fed.Add(1)
		go func() {
			defer fed.Done()
			for {
				if _, err := stdin.Write(line); err != nil {
					return // kcat is gone
				}
			}
		}()
		time.Sleep(run)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		kcatOut.took = time.Since(start)
		kcatOut.end = endOffset(t, adm, "q-kcat")
		_ = cmd.Wait()
		_ = stdin.Close()
		fed.Wait()
		// kcat prints librdkafka's "throttled request for Nms" lines.
		n := strings.Count(stderr.String(), "throttled request for") - strings.Count(stderr.String(), "throttled request for 0ms")
		kcatOut.note = strconv.Itoa(n) + " throttles reported by librdkafka"
		if n == 0 {
			t.Errorf("kcat reported no throttle:\n%s", stderr.String())
		}
	}()
	go func() {
		defer wg.Done()
		start := time.Now()
		out, err := exec.Command("/usr/bin/python3", "-c", pyProducer, b.Addr, "q-py", "q-py", strconv.Itoa(int(run.Seconds()))).Output()
		pyOut.took = time.Since(start)
		pyOut.end = endOffset(t, adm, "q-py")
		if err != nil {
			t.Errorf("python producer: %v %s", err, out)
		}
		var r struct {
			Throttles int     `json:"throttles"`
			Seconds   float64 `json:"throttle_s"`
		}
		if json.Unmarshal(out, &r) != nil || r.Throttles == 0 {
			t.Errorf("confluent-kafka-python saw no throttle: %s", out)
		}
		pyOut.note = strings.TrimSpace(string(out))
	}()
	wg.Wait()
	for _, c := range []struct {
		name, topic string
		o           outcome
	}{{"kcat", "q-kcat", kcatOut}, {"confluent-kafka-python", "q-py", pyOut}} {
		bytes := storedBatchBytes(t, b.Addr, c.topic, c.o.end)
		rate := float64(bytes) / c.o.took.Seconds()
		t.Logf("%s: %d records, %d batch bytes in %v: %.0f B/s (quota %d B/s, %.2fx) %s", c.name, c.o.end, bytes, c.o.took.Round(time.Millisecond),
			rate, quotaRate, rate/quotaRate, c.o.note)
		if rate > 1.2*quotaRate {
			t.Errorf("%s wrote %.0f B/s, more than 20%% over its quota of %d B/s", c.name, rate, quotaRate)
		}
		if rate < 0.5*quotaRate {
			t.Errorf("%s wrote only %.0f B/s against a quota of %d B/s", c.name, rate, quotaRate)
		}
	}
	n := scrapeCounter(t, b, `chronik_quota_throttled_responses_total{type="produce"}`)
	s := scrapeCounter(t, b, `chronik_quota_throttle_seconds_total{type="produce"}`)
	t.Logf("broker: %.0f throttled produce responses, %.1f s of throttle", n, s)
	if n == 0 {
		t.Error("the broker throttled no produce response")
	}
}

type fetchHooks struct {
	deadline  int64
	throttles atomic.Int64
	bytes     atomic.Int64
}

func (h *fetchHooks) OnBrokerThrottle(_ kgo.BrokerMetadata, _ time.Duration, _ bool) {
	h.throttles.Add(1)
}

func (h *fetchHooks) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	if time.Now().UnixNano() < h.deadline {
		h.bytes.Add(int64(m.CompressedBytes))
	}
}

// TestQuotaFetchThrottlesOnlyTheLimitedConsumer: two consumers read the
// same 2 MiB topic from the start. The one limited to 128 KiB/s of
// consumer_byte_rate gets throttled responses and reads at most 20% over
// its quota for 8 s; the other reads everything at once, never throttled.
func TestQuotaFetchThrottlesOnlyTheLimitedConsumer(t *testing.T) {
	b, adm := quotaBroker(t)
	createTopic(t, adm, "q-read", 1, nil)
	const limit = 128 << 10
	slow := "slow-reader"
	res, err := adm.AlterClientQuotas(ctxT(t), []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &slow}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: limit}},
	}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("set quota: %v %+v", err, res)
	}
	// Batches of 16 KiB: a single batch larger than the quota lets a
	// consumer read in one window could never be read (the first batch
	// is always sent whole, KIP-74, and would be throttled every time).
	prod := client(t, b.Addr, kgo.DefaultProduceTopic("q-read"), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(16<<10))
	value := make([]byte, 1000)
	const n = 2048
	for range n {
		prod.Produce(ctxT(t), &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := prod.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	const run = 8 * time.Second
	read := func(id string, h *fetchHooks, until func(got int) bool) int {
		cl := client(t, b.Addr, kgo.ClientID(id), kgo.ConsumeTopics("q-read"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxBytes(64<<10), kgo.FetchMaxPartitionBytes(64<<10), kgo.FetchMaxWait(100*time.Millisecond), kgo.WithHooks(h))
		ctx, cancel := context.WithTimeout(context.Background(), run)
		defer cancel()
		got := 0
		for !until(got) && ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			for _, e := range fs.Errors() {
				if ctx.Err() == nil {
					t.Errorf("%s: %v", id, e.Err)
				}
			}
			got += fs.NumRecords()
		}
		cl.Close()
		return got
	}
	var wg sync.WaitGroup
	slowHooks := &fetchHooks{deadline: time.Now().Add(run).UnixNano()}
	freeHooks := &fetchHooks{deadline: time.Now().Add(time.Hour).UnixNano()}
	var freeGot int
	wg.Add(1)
	go func() {
		defer wg.Done()
		freeGot = read("free-reader", freeHooks, func(got int) bool { return got >= n })
	}()
	read(slow, slowHooks, func(int) bool { return false })
	wg.Wait()
	rate := float64(slowHooks.bytes.Load()) / run.Seconds()
	t.Logf("limited consumer: %.0f B/s over %v (quota %d B/s, %.2fx), %d throttled responses; free consumer: %d of %d records, %d throttled",
		rate, run, limit, rate/limit, slowHooks.throttles.Load(), freeGot, n, freeHooks.throttles.Load())
	if rate > 1.2*limit || rate < 0.5*limit {
		t.Errorf("the limited consumer read %.0f B/s against a quota of %d B/s", rate, limit)
	}
	if slowHooks.throttles.Load() == 0 {
		t.Error("the limited consumer never saw throttle_time_ms > 0")
	}
	if freeGot != n || freeHooks.throttles.Load() != 0 {
		t.Errorf("the consumer without a quota read %d of %d records with %d throttles", freeGot, n, freeHooks.throttles.Load())
	}
}

type throttleHook struct {
	n      atomic.Int64
	maxDur atomic.Int64
}

func (h *throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	h.n.Add(1)
	for {
		cur := h.maxDur.Load()
		if int64(d) <= cur || h.maxDur.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// TestQuotaRequestPercentageThrottles: a client id with a tiny
// request_percentage is throttled on plain Metadata requests, never for
// longer than one window sample (Kafka's cap for request quotas); another
// client doing the same is not.
func TestQuotaRequestPercentageThrottles(t *testing.T) {
	b, adm := quotaBroker(t)
	busy := "busy"
	res, err := adm.AlterClientQuotas(ctxT(t), []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &busy}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "request_percentage", Value: 1e-6}},
	}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("set quota: %v %+v", err, res)
	}
	busyHook, freeHook := &throttleHook{}, &throttleHook{}
	busyCl := client(t, b.Addr, kgo.ClientID(busy), kgo.WithHooks(busyHook))
	freeCl := client(t, b.Addr, kgo.ClientID("idle"), kgo.WithHooks(freeHook))
	// DescribeCluster: a request the client never answers from a cache.
	deadline := time.Now().Add(10 * time.Second)
	for busyHook.n.Load() < 3 && time.Now().Before(deadline) {
		for _, cl := range []*kgo.Client{busyCl, freeCl} {
			if _, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctxT(t), cl); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("busy: %d throttled responses, longest %v; idle: %d", busyHook.n.Load(), time.Duration(busyHook.maxDur.Load()), freeHook.n.Load())
	if busyHook.n.Load() == 0 {
		t.Fatal("the client over its request quota was never throttled")
	}
	if d := time.Duration(busyHook.maxDur.Load()); d > time.Second {
		t.Errorf("request throttle %v exceeds one window sample (1s)", d)
	}
	if freeHook.n.Load() != 0 {
		t.Errorf("the client without a quota was throttled %d times", freeHook.n.Load())
	}
}
