package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterConsumerGroupSurvivesCoordinatorKill: a consumer group commits
// as it consumes; the node coordinating the group (the leader of its
// __consumer_offsets partition) is killed with SIGKILL, later a follower
// of it too. The group finds the new coordinator and resumes from its
// commits: no committed offset ever goes backwards, no record is skipped
// (each partition's offsets arrive without a gap), every record is
// consumed, and a new member of the group afterwards starts at the end.
func TestClusterConsumerGroupSurvivesCoordinatorKill(t *testing.T) {
	c := startCluster(t, 3)
	const topic, group, total = "cg", "cg-group", 3000
	createTopic(t, c.client(), topic, 3, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	for i := range total {
		p.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("r%05d", i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	must(t, p.Flush(ctx), "flush")
	adm := kadm.NewClient(c.client())
	ends, err := adm.ListEndOffsets(ctx, topic)
	must(t, err, "end offsets")

	// Committed offsets as the group's coordinator reports them, watched
	// throughout: never backwards.
	var mu sync.Mutex
	committed := map[int32]int64{}
	watch := func() bool {
		oc, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false // between coordinators
		}
		mu.Lock()
		defer mu.Unlock()
		oc.Each(func(o kadm.OffsetResponse) {
			if o.Err != nil {
				return
			}
			if o.At < committed[o.Partition] {
				t.Errorf("partition %d: committed offset went back from %d to %d", o.Partition, committed[o.Partition], o.At)
			}
			committed[o.Partition] = max(committed[o.Partition], o.At)
		})
		return true
	}
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
				watch()
			}
		}
	}()

	cons := c.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	next := map[int32]int64{} // highest offset seen + 1, per partition
	seen := map[string]bool{}
	killed := 0 // steps of the fault sequence done
	var first *node
	coordinator := func() int32 {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			r := adm.FindGroupCoordinators(ctx, group)
			if r[group].Err == nil && r[group].NodeID > 0 {
				return r[group].NodeID
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("no coordinator for the group")
		return -1
	}
	for len(seen) < total {
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline (fault step %d)", len(seen), total, killed)
		}
		// At most 50 records per poll, each poll committed: the faults
		// land while the group is mid-way.
		fs := cons.PollRecords(ctx, 50)
		fs.EachError(func(tp string, part int32, err error) { t.Logf("fetch %s-%d: %v", tp, part, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset > next[r.Partition] {
				t.Errorf("partition %d: offset %d after %d: records skipped", r.Partition, r.Offset, next[r.Partition]-1)
			}
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
			seen[string(r.Value)] = true
		})
		// Commit what was polled; a commit may fail while the coordinator
		// moves (the records are then consumed again after a rebalance).
		if err := cons.CommitUncommittedOffsets(ctx); err != nil {
			t.Logf("commit: %v", err)
		}
		switch {
		case killed == 0 && len(seen) > total/3:
			first = c.node(coordinator())
			t.Logf("kill -9 node %d (coordinator of %s) after %d records", first.id, group, len(seen))
			c.kill(first)
			killed++
		case killed == 1 && len(seen) > total/2:
			c.restart(first)
			first.waitReady(t)
			killed++
		case killed == 2 && len(seen) > 2*total/3:
			coord := coordinator()
			for _, n := range c.nodes {
				if int32(n.id) != coord {
					t.Logf("kill -9 node %d (a follower; node %d coordinates) after %d records, and restart it", n.id, coord, len(seen))
					c.kill(n)
					c.restart(n)
					break
				}
			}
			killed++
		}
	}
	must(t, cons.CommitUncommittedOffsets(ctx), "final commit")
	close(stopWatch)
	<-watched
	deadline := time.Now().Add(30 * time.Second)
	for !watch() {
		if time.Now().After(deadline) {
			t.Fatal("the group's committed offsets cannot be fetched")
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	ends.Each(func(o kadm.ListedOffset) {
		if committed[o.Partition] != o.Offset {
			t.Errorf("partition %d: committed %d, end offset %d", o.Partition, committed[o.Partition], o.Offset)
		}
	})
	mu.Unlock()
	cons.Close()
	// A new member resumes from the commits: nothing left to consume.
	again := c.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	pctx, pcancel := context.WithTimeout(ctx, 8*time.Second)
	defer pcancel()
	n := 0
	for pctx.Err() == nil {
		again.PollFetches(pctx).EachRecord(func(*kgo.Record) { n++ })
	}
	if n != 0 {
		t.Fatalf("a new member of the group consumed %d records: the group did not resume from its commits", n)
	}
	t.Logf("%d records consumed by a group through two kills (the coordinator, then a follower); commits never went back; a new member starts at the end", total)
}
