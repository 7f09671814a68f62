// Package crash kills real broker processes with SIGKILL while real clients
// use them, restarts them, and checks what users were promised.
package crash

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// TestCrashBrokerKill9IdempotentProducer: an idempotent acks=all producer
// (franz-go) writes continuously while the broker is killed with SIGKILL at
// random moments and restarted on the same address and data directory.
// Afterwards every acknowledged record is present, and no record — acknowledged
// or not — appears twice.
func TestCrashBrokerKill9IdempotentProducer(t *testing.T) {
	const kills = 22
	dir, addr := t.TempDir(), testbroker.FreePort(t)
	p := testbroker.StartProcess(t, dir, addr)
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if r, err := kadm.NewClient(admin).CreateTopic(ctx, 3, 1, nil, "crash"); err != nil || r.Err != nil {
		t.Fatalf("create topic: %v %v", err, r.Err)
	}
	admin.Close()

	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("crash"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(5000), kgo.RecordDeliveryTimeout(3*time.Minute), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		failed int
		wg     sync.WaitGroup
		stop   = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := strconv.Itoa(i)
			prod.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				acked[string(r.Value)] = true
			})
		}
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for k := range kills {
		time.Sleep(time.Duration(50+rng.IntN(500)) * time.Millisecond)
		p.Kill()
		if k%4 == 3 {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // clients retry against a dead broker
		}
		p = testbroker.StartProcess(t, dir, addr)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := prod.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	prod.Close()

	// Read everything back.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("crash"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	seen := map[string]int{}
	var n int64
	for n < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", n, total)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch: %v", e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			n++
		})
	}
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for v, c := range seen {
		if c > 1 {
			dups++
			if dups < 5 {
				t.Errorf("record %s appears %d times", v, c)
			}
		}
	}
	lost := 0
	for v := range acked {
		if seen[v] == 0 {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged record %s is missing", v)
			}
		}
	}
	t.Logf("crash: %d kill -9 of the broker; %d records acknowledged, %d stored, %d failed deliveries, %d duplicates, %d lost", kills, len(acked), n, failed, dups, lost)
	if dups > 0 || lost > 0 {
		t.Fatalf("%d duplicated and %d lost records", dups, lost)
	}
	if len(acked) < 1000 {
		t.Fatalf("only %d records acknowledged: the producer barely ran", len(acked))
	}
}
