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

// TestCrashBrokerKill9GroupCommits: several groups commit offsets
// continuously (and a consumer group member consumes and commits) while the
// broker is killed with SIGKILL and restarted, with a small rewrite
// threshold so that the offsets log is also rewritten between crashes.
// Afterwards every acknowledged commit is there (a group's offset is at
// least its last acknowledged commit, and never one that was not sent), and
// the consumer group re-forms and resumes from its commits.
func TestCrashBrokerKill9GroupCommits(t *testing.T) {
	const kills, groups, parts = 15, 4, 4
	dir, addr := t.TempDir(), testbroker.FreePort(t)
	extra := []string{"--offsets-topic-partitions", "3", "--offsets-rewrite-after-records", "300", "--group-initial-rebalance-delay-ms", "0"}
	p := testbroker.StartProcess(t, dir, addr, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if r, err := adm.CreateTopic(ctx, parts, 1, nil, "crashg"); err != nil || r.Err != nil {
		t.Fatalf("create topic: %v %v", err, r.Err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("crashg"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	// Small batches, so that the slow consumer below commits many times.
	const total = 10000
	for i := 0; i < total; i += 20 {
		var recs []*kgo.Record
		for j := range 20 {
			recs = append(recs, &kgo.Record{Value: []byte(strconv.Itoa(i + j))})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	prod.Close()

	type key struct {
		group string
		part  int32
	}
	var (
		mu             sync.Mutex
		acked, sent    = map[key]int64{}, map[key]int64{}
		okN, failN     int
		wg             sync.WaitGroup
		stop           = make(chan struct{})
		consumedBefore = map[string]bool{}
	)
	for g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "committer-" + strconv.Itoa(g)
			for i := int64(1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				os := kadm.Offsets{}
				for part := range int32(parts) {
					os.Add(kadm.Offset{Topic: "crashg", Partition: part, At: i, LeaderEpoch: -1})
				}
				mu.Lock()
				for part := range int32(parts) {
					sent[key{name, part}] = i
				}
				mu.Unlock()
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				r, err := adm.CommitOffsets(cctx, name, os)
				ccancel()
				mu.Lock()
				if err == nil && r.Error() == nil {
					okN++
					for part := range int32(parts) {
						acked[key{name, part}] = i
					}
				} else {
					failN++
				}
				mu.Unlock()
			}
		}()
	}
	// A consumer group member consumes slowly and commits what it processed.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("members"), kgo.ConsumeTopics("crashg"), kgo.SessionTimeout(6*time.Second),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxBytes(2000), kgo.FetchMaxPartitionBytes(500))
			if err != nil {
				continue
			}
			for {
				select {
				case <-stop:
					cl.Close()
					return
				default:
				}
				pctx, pcancel := context.WithTimeout(ctx, time.Second)
				fs := cl.PollFetches(pctx)
				pcancel()
				if fs.IsClientClosed() {
					break
				}
				fs.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					consumedBefore[string(r.Value)] = true
					mu.Unlock()
				})
				_ = cl.CommitUncommittedOffsets(ctx)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	for range kills {
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		p.Kill()
		p = testbroker.StartProcess(t, dir, addr, extra...)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// One more crash with nothing in flight, then check.
	p.Kill()
	p = testbroker.StartProcess(t, dir, addr, extra...)
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for g := range groups {
		name := "committer-" + strconv.Itoa(g)
		var offs kadm.OffsetResponses
		for deadline := time.Now().Add(30 * time.Second); ; {
			if offs, err = adm.FetchOffsets(ctx, name); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("fetch offsets of %s: %v", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for part := range int32(parts) {
			k := key{name, part}
			o, ok := offs.Lookup("crashg", part)
			switch {
			case !ok && acked[k] > 0, ok && o.At < acked[k]:
				lost++
				t.Errorf("%s partition %d: committed %d, but %d was acknowledged", name, part, o.At, acked[k])
			case ok && o.At > sent[k]:
				t.Errorf("%s partition %d: committed %d, which was never sent (last %d)", name, part, o.At, sent[k])
			}
		}
	}
	// The consumer group re-forms and resumes after its commits.
	var members kadm.OffsetResponses
	for deadline := time.Now().Add(30 * time.Second); ; {
		if members, err = adm.FetchOffsets(ctx, "members"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetch offsets of members: %v\n%s", err, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var committed int64
	members.Each(func(o kadm.OffsetResponse) { committed += o.At })
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("members"), kgo.ConsumeTopics("crashg"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rest := 0
	for int64(rest) < total-committed {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("the re-formed group read %d of the %d records after its commits", rest, total-committed)
		}
		rest += fs.NumRecords()
	}
	// Nothing before the commits comes again.
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	rest += cl.PollFetches(pctx).NumRecords()
	pcancel()
	if int64(rest) != total-committed {
		t.Fatalf("the re-formed group read %d records; %d were after its commits", rest, total-committed)
	}
	if committed == 0 || committed == total {
		t.Fatalf("the group had committed %d of %d records before the end: the test did not exercise resuming", committed, total)
	}
	starts, err := adm.ListStartOffsets(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	var dropped int64
	starts.Each(func(o kadm.ListedOffset) { dropped += o.Offset })
	if dropped == 0 {
		t.Fatal("the offsets log was never rewritten: the test did not exercise compaction across crashes")
	}
	t.Logf("crash: %d kill -9 of the broker; %d commits acknowledged, %d failed; %d acknowledged commits lost; the consumer group had committed %d of %d records and resumed with the other %d; %d offsets records dropped by rewrites",
		kills+1, okN, failN, lost, committed, total, rest, dropped)
	if okN < 200 {
		t.Fatalf("only %d commits acknowledged: the committers barely ran", okN)
	}
}
