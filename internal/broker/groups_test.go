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
