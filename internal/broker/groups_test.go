package broker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// groupMember is a kgo group consumer that records what it consumed and
// commits after processing.
type groupMember struct {
	cl *kgo.Client
	mu sync.Mutex
	// got counts each (partition, offset) consumed.
	got map[string]int
}

func startMember(t *testing.T, addr, grp, topic string, opts ...kgo.Opt) *groupMember {
	m := &groupMember{got: map[string]int{}}
	m.cl = client(t, addr, append([]kgo.Opt{kgo.ConsumerGroup(grp), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond), kgo.DisableAutoCommit(), kgo.SessionTimeout(6 * time.Second),
		kgo.HeartbeatInterval(500 * time.Millisecond)}, opts...)...)
	return m
}

// poll consumes once and commits what it got.
func (m *groupMember) poll(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	fs := m.cl.PollFetches(pctx)
	fs.EachRecord(func(r *kgo.Record) {
		m.mu.Lock()
		m.got[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++
		m.mu.Unlock()
	})
	if fs.NumRecords() > 0 {
		return m.cl.CommitUncommittedOffsets(ctx)
	}
	return nil
}

func TestConsumerGroupEagerCooperativeAndKIP848(t *testing.T) {
	cfg := testbroker.Config(t.TempDir())
	cfg.GroupInitialRebalanceMs = 300
	b := testbroker.Start(t, cfg)
	adm := kadm.NewClient(client(t, b.Addr))
	for _, tc := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"eager-range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
		{"cooperative-sticky", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}},
		{"kip848", []kgo.Opt{kgo.ServerSideBalancer()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "grp-" + tc.name
			createTopic(t, adm, topic, 6, nil)
			p := client(t, b.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
			const n = 600
			for i := range n {
				p.Produce(context.Background(), &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
			}
			if err := p.Flush(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t)
			grp := "g-" + tc.name
			members := []*groupMember{startMember(t, b.Addr, grp, topic, tc.opts...), startMember(t, b.Addr, grp, topic, tc.opts...), startMember(t, b.Addr, grp, topic, tc.opts...)}
			total := func() int {
				seen := 0
				for _, m := range members {
					m.mu.Lock()
					seen += len(m.got)
					m.mu.Unlock()
				}
				return seen
			}
			for total() < n {
				if ctx.Err() != nil {
					t.Fatalf("consumed %d of %d", total(), n)
				}
				for _, m := range members {
					if err := m.poll(ctx); err != nil {
						t.Logf("commit: %v", err)
					}
				}
			}
			// Every partition ends with a committed offset at its end.
			offs, err := adm.FetchOffsets(ctx, grp)
			if err != nil {
				t.Fatal(err)
			}
			var committed int64
			offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
			if committed != n {
				t.Fatalf("committed offsets sum to %d, want %d: %v", committed, n, offs)
			}
			dg, err := adm.DescribeGroups(ctx, grp)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("group %s: state %s, %d members", grp, dg[grp].State, len(dg[grp].Members))
		})
	}
}

// TestGroupStateSurvivesRestartAndRewrite commits far more records than
// the offsets partition keeps (so its log is rewritten and the older log
// dropped), restarts the broker, and checks that every committed offset and
// the group come back, and that a member resumes where the group left off.
func TestGroupStateSurvivesRestartAndRewrite(t *testing.T) {
	dir := t.TempDir()
	cfg := testbroker.Config(dir)
	cfg.GroupInitialRebalanceMs, cfg.OffsetsTopicPartitions, cfg.OffsetsRewriteRecords = 0, 1, 50
	b := testbroker.Start(t, cfg)
	cl := client(t, b.Addr)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "st", 2, nil)
	p := client(t, b.Addr, kgo.DefaultProduceTopic("st"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	for i := range 20 {
		p.Produce(context.Background(), &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := p.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// A group outside any membership (generation -1) committing many times.
	ctx := ctxT(t)
	for i := range 300 {
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: "st", Partition: int32(i % 2), At: int64(i), LeaderEpoch: -1, Metadata: fmt.Sprint("commit-", i)})
		r, err := adm.CommitOffsets(ctx, "simple", os)
		if err != nil || r.Error() != nil {
			t.Fatalf("commit %d: %v %v", i, err, r.Error())
		}
	}
	// A real member consumes everything and commits.
	m := startMember(t, b.Addr, "live", "st")
	for {
		if err := m.poll(ctx); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		n := len(m.got)
		m.mu.Unlock()
		if n == 20 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 20", n)
		}
	}
	starts, err := adm.ListStartOffsets(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	start, _ := starts.Lookup("__consumer_offsets", 0)
	ends, _ := adm.ListEndOffsets(ctx, "__consumer_offsets")
	end, _ := ends.Lookup("__consumer_offsets", 0)
	if start.Offset == 0 {
		t.Fatalf("the offsets partition still starts at 0 after %d records: no rewrite dropped the older log", end.Offset)
	}
	t.Logf("offsets partition: log [%d, %d) after 300+ commits", start.Offset, end.Offset)
	m.cl.Close() // leaves the group
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}

	b2 := testbroker.Start(t, cfg)
	adm2 := kadm.NewClient(client(t, b2.Addr))
	ctx = ctxT(t)
	var fetched kadm.OffsetResponses
	for deadline := time.Now().Add(10 * time.Second); ; {
		// COORDINATOR_LOAD_IN_PROGRESS is retried by the client.
		if fetched, err = adm2.FetchOffsets(ctx, "simple"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for part, want := range map[int32]int64{0: 298, 1: 299} {
		o, ok := fetched.Lookup("st", part)
		if !ok || o.At != want || o.Metadata != fmt.Sprint("commit-", want) {
			t.Fatalf("after restart, partition %d: %+v, want offset %d", part, o, want)
		}
	}
	live, err := adm2.FetchOffsets(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	live.Each(func(o kadm.OffsetResponse) { sum += o.At })
	if sum != 20 {
		t.Fatalf("group live committed %d records in all, want 20 after restart", sum)
	}
	// The group re-forms and resumes after what it committed.
	p2 := client(t, b2.Addr, kgo.DefaultProduceTopic("st"))
	if err := p2.ProduceSync(ctx, &kgo.Record{Value: []byte("after-restart")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	m2 := startMember(t, b2.Addr, "live", "st")
	for {
		if err := m2.poll(ctx); err != nil {
			t.Fatal(err)
		}
		m2.mu.Lock()
		n := len(m2.got)
		m2.mu.Unlock()
		if n > 0 {
			if n != 1 {
				t.Fatalf("the re-formed group consumed %d records, want only the new one", n)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the re-formed group consumed nothing")
		}
	}
}

func TestBrokerReportsGroupLag(t *testing.T) {
	b := fastGroupBroker(t)
	cl := client(t, b.Addr)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "lag", 2, nil)
	p := client(t, b.Addr, kgo.DefaultProduceTopic("lag"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Partition: int32(i % 2), Value: []byte("x")})
	}
	if err := p.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "lag", Partition: 0, At: 2, LeaderEpoch: -1})
	os.Add(kadm.Offset{Topic: "lag", Partition: 1, At: 5, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctxT(t), "lagging", os); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}
	lags, err := b.GroupLag(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(lags)
	want := "[{lagging lag 0 2 5 3} {lagging lag 1 5 5 0}]"
	if got != want {
		t.Fatalf("lag %s, want %s", got, want)
	}
}

// TestKIP848RegexSubscriptionMatchesInternalTopics: a KIP-848 member whose
// regex matches __consumer_offsets is assigned its partitions, as Kafka
// does (the broker matches the whole name and leaves no topic starting with
// "__" out), next to the ordinary topics the regex matches.
func TestKIP848RegexSubscriptionMatchesInternalTopics(t *testing.T) {
	b := fastGroupBroker(t)
	adm := kadm.NewClient(client(t, b.Addr))
	createTopic(t, adm, "rx-orders", 2, nil)
	createTopic(t, adm, "other", 1, nil)
	var mu sync.Mutex
	assigned := map[string]int{}
	cl := client(t, b.Addr, kgo.ConsumerGroup("rx"), kgo.ServerSideBalancer(), kgo.ConsumeRegex(),
		kgo.ConsumeTopics(`__consumer_offsets`, `rx-.*`), kgo.DisableAutoCommit(),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			mu.Lock()
			defer mu.Unlock()
			for topic, ps := range m {
				assigned[topic] += len(ps)
			}
		}))
	ctx := ctxT(t)
	for {
		mu.Lock()
		done := assigned["__consumer_offsets"] == 4 && assigned["rx-orders"] == 2
		got := fmt.Sprint(assigned)
		mu.Unlock()
		if done {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("assigned %s; want the 4 partitions of __consumer_offsets and the 2 of rx-orders", got)
		}
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		cl.PollFetches(pctx)
		cancel()
	}
	mu.Lock()
	defer mu.Unlock()
	if assigned["other"] != 0 {
		t.Fatalf("assigned %v: the regex does not match other", assigned)
	}
}
