package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/dashcheck"
	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/testbroker"
)

// acked is what the producer was told: value → (partition, offset).
type acked struct {
	mu   sync.Mutex
	recs map[string][2]int64
}

// count is how many records were acknowledged so far.
func (a *acked) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.recs)
}

// progress waits until 200 more records are acknowledged (the producer
// goes on after what just happened), failing after a minute.
func (a *acked) progress(t *testing.T, what string) {
	t.Helper()
	n := a.count()
	deadline := time.Now().Add(60 * time.Second)
	for a.count() < n+200 {
		if time.Now().After(deadline) {
			t.Fatalf("no acks=all progress after %s (%d acknowledged)", what, a.count())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// produceUntil runs an idempotent acks=all producer (franz-go) until stop
// closes, one record at a time per in-flight slot, and records every
// acknowledgement. It returns how many sends failed for good.
func produceUntil(t *testing.T, c *cluster, topic string, stop <-chan struct{}, a *acked) (failed int64) {
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(3*time.Minute),
		kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(64))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var f atomic.Int64
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		select {
		case <-stop:
			wg.Wait()
			return f.Load()
		default:
		}
		v := fmt.Sprintf("v%07d", i)
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				if f.Add(1) <= 3 {
					t.Errorf("acks=all produce failed for good: %v", err)
				}
				return
			}
			a.mu.Lock()
			a.recs[v] = [2]int64{int64(r.Partition), r.Offset}
			a.mu.Unlock()
		})
		time.Sleep(500 * time.Microsecond)
	}
}

// readAll consumes every partition of topic from the start up to its end
// offsets and returns value → (partition, offset), failing on a value seen
// twice.
func readAll(t *testing.T, c *cluster, topic string) map[string][2]int64 {
	t.Helper()
	adm := kadm.NewClient(c.client())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	must(t, err, "end offsets")
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	cl := c.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	out := map[string][2]int64{}
	next := map[int32]int64{}
	done := func() bool {
		for p, end := range want {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s back: %v (at %v of %v)", topic, ctx.Err(), next, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if prev, dup := out[string(r.Value)]; dup {
				t.Errorf("value %s stored twice: partition %d offset %d and partition %d offset %d", r.Value, prev[0], prev[1], r.Partition, r.Offset)
			}
			out[string(r.Value)] = [2]int64{int64(r.Partition), r.Offset}
			next[r.Partition] = r.Offset + 1
		})
	}
	return out
}

// checkNothingLost compares what was acknowledged with what was read.
func checkNothingLost(t *testing.T, a *acked, read map[string][2]int64) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	lost := 0
	for v, at := range a.recs {
		got, ok := read[v]
		switch {
		case !ok:
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %s (partition %d offset %d) is gone", v, at[0], at[1])
			}
		case got != at:
			t.Errorf("acknowledged %s at partition %d offset %d, read at partition %d offset %d", v, at[0], at[1], got[0], got[1])
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost", lost, len(a.recs))
	}
}

// TestClusterFailoverLosesNothing: three nodes, RF 3, min.insync.replicas
// 2, an idempotent acks=all producer writing throughout; the leader of a
// partition is killed with SIGKILL and restarted, then a follower, then a
// leader is frozen with SIGSTOP past the election timeout and thawed.
// Every acknowledged record must be read back exactly once at the offset
// it was acknowledged with, and every partition must have a leader again.
func TestClusterFailoverLosesNothing(t *testing.T) {
	c := startCluster(t, 3, "--min-insync-replicas", "2", "--replica-lag-time-max-ms", "2000")
	const topic = "orders"
	createTopic(t, c.client(), topic, 3, 3, nil)
	a := &acked{recs: map[string][2]int64{}}
	stop := make(chan struct{})
	failedc := make(chan int64, 1)
	go func() { failedc <- produceUntil(t, c, topic, stop, a) }()
	progress := func(what string) { t.Helper(); a.progress(t, what) }
	progress("start")

	// (a) SIGKILL the leader of partition 0, then bring it back.
	l := c.node(c.leaderOf(topic, 0))
	t.Logf("kill -9 node %d (leader of %s-0)", l.id, topic)
	c.kill(l)
	progress("killing the leader")
	c.restart(l)
	progress("restarting the old leader")

	// (b) SIGKILL a follower of partition 0, then bring it back.
	lead := c.leaderOf(topic, 0)
	var f *node
	for _, nd := range c.nodes {
		if int32(nd.id) != lead {
			f = nd
			break
		}
	}
	t.Logf("kill -9 node %d (a follower of %s-0)", f.id, topic)
	c.kill(f)
	progress("killing a follower")
	c.restart(f)
	progress("restarting the follower")

	// (c) SIGSTOP the leader of partition 1 past the election timeout.
	s := c.node(c.leaderOf(topic, 1))
	t.Logf("SIGSTOP node %d (leader of %s-1) for 4 s", s.id, topic)
	c.signal(s, syscall.SIGSTOP)
	time.Sleep(4 * time.Second)
	c.signal(s, syscall.SIGCONT)
	progress("thawing the frozen leader")

	close(stop)
	if failed := <-failedc; failed > 0 {
		t.Fatalf("%d acks=all sends failed for good", failed)
	}
	for p := int32(0); p < 3; p++ {
		c.leaderOf(topic, p)
	}
	read := readAll(t, c, topic)
	checkNothingLost(t, a, read)
	t.Logf("%d acknowledged, %d read back, 0 lost, 0 duplicated", len(a.recs), len(read))
}

// rawProduce sends one acks=all batch to a partition's leader (kgo routes a
// produce request by partition) and returns its error code; retriable
// leadership errors are retried until deadline.
func rawProduce(t *testing.T, cl *kgo.Client, topic string, timeout time.Duration) int16 {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, int32(timeout.Milliseconds())
	batch := records.Build(0, time.Now().UnixMilli(), []records.Record{{Value: []byte("x")}})
	// Produce v13 names topics by id (asked until a live node answers:
	// the client may try a dead one first).
	var md kadm.Metadata
	for start := time.Now(); ; {
		mdCtx, mdCancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		md, err = kadm.NewClient(cl).Metadata(mdCtx, topic)
		mdCancel()
		if err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("metadata: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, TopicID: md.Topics[topic].ID, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
		resp, err := req.RequestWith(ctx, cl)
		cancel()
		var code int16
		if err != nil {
			code = -1
		} else {
			code = resp.Topics[0].Partitions[0].ErrorCode
		}
		retriable := code == kerr.NotLeaderForPartition.Code || code == kerr.LeaderNotAvailable.Code || code == -1
		if !retriable || time.Now().After(deadline) {
			return code
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterAcksAllNeedsItsReplicas: with min.insync.replicas=3 and one of
// three nodes down, acks=all is refused with NOT_ENOUGH_REPLICAS once the
// node has left the ISR; with two of three nodes down nothing is
// acknowledged at all; once the nodes are back, acks=all is served again.
func TestClusterAcksAllNeedsItsReplicas(t *testing.T) {
	c := startCluster(t, 3, "--replica-lag-time-max-ms", "1000")
	cl := c.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	createTopic(t, cl, "strict", 1, 3, map[string]*string{"min.insync.replicas": str("3")})
	createTopic(t, cl, "quorum", 1, 3, map[string]*string{"min.insync.replicas": str("2")})
	if code := rawProduce(t, cl, "strict", 10*time.Second); code != 0 {
		t.Fatalf("acks=all with every replica up: error %d", code)
	}
	// One node down, not the leader of either topic's partition.
	ls, lq := c.leaderOf("strict", 0), c.leaderOf("quorum", 0)
	var down *node
	for _, nd := range c.nodes {
		if int32(nd.id) != ls && int32(nd.id) != lq {
			down = nd
			break
		}
	}
	if down == nil {
		down = c.node(ls%3 + 1) // both led by one node: any other
	}
	c.kill(down)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code := rawProduce(t, cl, "strict", 3*time.Second)
		if code == kerr.NotEnoughReplicas.Code {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("min.insync.replicas=3 with a node down: error %d, want NOT_ENOUGH_REPLICAS (19)", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := rawProduce(t, cl, "quorum", 10*time.Second); code != 0 {
		t.Fatalf("min.insync.replicas=2 with two of three up: error %d", code)
	}
	// The operator's view: `chronik cluster info` lists both partitions as
	// under-replicated, without the dead node in their ISR.
	var live *node
	for _, nd := range c.nodes {
		if nd != down {
			live = nd
			break
		}
	}
	var info struct {
		UnderReplicated []struct {
			Topic string  `json:"topic"`
			ISR   []int32 `json:"isr"`
		} `json:"under_replicated"`
	}
	var out []byte
	deadline = time.Now().Add(15 * time.Second)
	for {
		var err error
		out, err = exec.Command(testbroker.Binary(t), "cluster", "info", "-o", "json", "-b", live.kafka).Output()
		must(t, err, "chronik cluster info")
		must(t, json.Unmarshal(out, &info), "cluster info json")
		if len(info.UnderReplicated) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster info lists %d under-replicated partitions, want 2 (strict-0, quorum-0):\n%s", len(info.UnderReplicated), out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, u := range info.UnderReplicated {
		if slices.Contains(u.ISR, int32(down.id)) || len(u.ISR) != 2 {
			t.Fatalf("%s: ISR %v with node %d down", u.Topic, u.ISR, down.id)
		}
	}
	// Two nodes down: nothing may be acknowledged.
	var second *node
	for _, nd := range c.nodes {
		if nd != down {
			second = nd
			break
		}
	}
	c.kill(second)
	for range 3 {
		if code := rawProduce(t, cl, "quorum", 3*time.Second); code == 0 {
			t.Fatal("acks=all was acknowledged with two of three nodes down")
		}
	}
	c.restart(down)
	c.restart(second)
	deadline = time.Now().Add(60 * time.Second)
	for {
		code := rawProduce(t, cl, "strict", 5*time.Second)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acks=all after every node is back: error %d", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (c *cluster) stop(nd *node) {
	c.t.Helper()
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("node %d did not stop within 30 s of SIGTERM:\n%s", nd.id, nd.output())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		c.t.Fatalf("node %d exited with status %d after SIGTERM:\n%s", nd.id, code, nd.output())
	}
}

// TestClusterRollingAndColdRestart: under an idempotent acks=all producer,
// every node is stopped with SIGTERM and started again in turn (a rolling
// restart), then all three are stopped and started together (a cold
// restart). Nothing acknowledged is lost or duplicated, and the cluster
// serves again after each.
func TestClusterRollingAndColdRestart(t *testing.T) {
	c := startCluster(t, 3, "--min-insync-replicas", "2")
	const topic = "rolling"
	createTopic(t, c.client(), topic, 3, 3, nil)
	a := &acked{recs: map[string][2]int64{}}
	stop := make(chan struct{})
	failedc := make(chan int64, 1)
	go func() { failedc <- produceUntil(t, c, topic, stop, a) }()
	progress := func(what string) { t.Helper(); a.progress(t, what) }
	progress("start")
	for _, nd := range c.nodes {
		t.Logf("rolling restart: node %d", nd.id)
		c.stop(nd)
		if out := nd.output(); strings.Contains(out, "moving leadership away") && !strings.Contains(out, "leadership moved away before stopping") {
			t.Fatalf("node %d stopped without handing over its leaderships:\n%s", nd.id, out)
		}
		for _, line := range strings.Split(nd.output(), "\n") {
			if _, msg, ok := strings.Cut(line, "msg="); ok && (strings.Contains(msg, "leadership moved away") || strings.Contains(msg, "leaderships not moved")) {
				t.Logf("node %d: msg=%s", nd.id, msg)
			}
		}
		progress(fmt.Sprintf("stopping node %d", nd.id))
		c.restart(nd)
		progress(fmt.Sprintf("restarting node %d", nd.id))
		nd.waitReady(t)
		// What a rolling restart waits for before the next node: no
		// partition with a replica out of sync.
		deadline := time.Now().Add(60 * time.Second)
		for {
			under := 0.0
			for _, o := range c.nodes {
				under += o.metric(t, "chronik_under_replicated_partitions")
			}
			if under == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v partitions still under-replicated 60 s after node %d restarted", under, nd.id)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	close(stop)
	if failed := <-failedc; failed > 0 {
		t.Fatalf("%d acks=all sends failed for good", failed)
	}
	t.Logf("cold restart of all three nodes")
	for _, nd := range c.nodes {
		c.stop(nd)
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	for _, nd := range c.nodes {
		c.waitUp(nd)
	}
	for p := int32(0); p < 3; p++ {
		c.leaderOf(topic, p)
	}
	read := readAll(t, c, topic)
	checkNothingLost(t, a, read)
	t.Logf("%d acknowledged, %d read back after a rolling and a cold restart, 0 lost, 0 duplicated", len(a.recs), len(read))
}

// leadersPreferred reports whether every partition of topic is led by its
// preferred (first) replica, and the leader count per node.
func leadersPreferred(t *testing.T, c *cluster, topic string) (bool, map[int32]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	md, err := kadm.NewClient(c.client()).Metadata(ctx, topic)
	if err != nil {
		return false, nil
	}
	per := map[int32]int{}
	ok := true
	for _, p := range md.Topics[topic].Partitions {
		per[p.Leader]++
		if len(p.Replicas) == 0 || p.Leader != p.Replicas[0] {
			ok = false
		}
	}
	return ok, per
}

// TestClusterLeadersReturnToPreferred: leaders start on their preferred
// replicas (spread evenly over the nodes); when a node dies its partitions
// fail over, and when it is back and in sync leadership returns to it.
func TestClusterLeadersReturnToPreferred(t *testing.T) {
	// Nodes 1 and 2 share a rack: every replica set of two must include
	// node 3, the other rack (rack-aware placement, broker.rack).
	racks := map[int]string{1: "rack-a", 2: "rack-a", 3: "rack-b"}
	c := startClusterWith(t, 3, func(id int) []string { return []string{"--broker-rack", racks[id]} },
		"--leader-imbalance-check-interval-seconds", "1")
	const topic = "spread"
	createTopic(t, c.client(), topic, 6, 3, nil)
	createTopic(t, c.client(), "racks", 6, 2, nil)
	md, err := kadm.NewClient(c.client()).Metadata(context.Background(), "racks")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range md.Brokers {
		if b.Rack == nil || *b.Rack != racks[int(b.NodeID)] {
			t.Fatalf("Metadata reports broker %d in rack %v, configured %q", b.NodeID, b.Rack, racks[int(b.NodeID)])
		}
	}
	for _, p := range md.Topics["racks"].Partitions {
		if len(p.Replicas) != 2 || !slices.Contains(p.Replicas, 3) {
			t.Fatalf("partition %d has replicas %v: both on rack-a", p.Partition, p.Replicas)
		}
	}
	waitPreferred := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			ok, per := leadersPreferred(t, c, topic)
			if ok {
				for id, n := range per {
					if n != 2 {
						t.Fatalf("%s: node %d leads %d of 6 partitions, want 2 each: %v", what, id, n, per)
					}
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: leaders not on their preferred replicas after 60 s: %v", what, per)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitPreferred("after creation")
	n1 := c.nodes[0]
	c.kill(n1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, per := leadersPreferred(t, c, topic)
		if per != nil && per[int32(n1.id)] == 0 && per[-1] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions of the dead node did not fail over: %v", per)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.restart(n1)
	waitPreferred("after the node came back")
	// The dashboard's cluster rows (replication, transport) name metrics
	// that a cluster node exports, after this test's node failure.
	panels, err := dashcheck.Load(filepath.Join("..", "..", "deploy", "grafana", "chronik.json"))
	must(t, err, "dashboard")
	var rows []dashcheck.Panel
	for _, p := range panels {
		if dashcheck.ClusterRow(p.Row) {
			rows = append(rows, p)
		}
	}
	if len(rows) < 6 {
		t.Fatalf("the dashboard has %d panels in its cluster rows", len(rows))
	}
	exposed, err := dashcheck.Exposed(c.nodes[1].metrics)
	must(t, err, "metrics")
	problems, checked := dashcheck.Check(rows, exposed)
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("dashboard: %d cluster panels, %d metric references checked against node 2's /metrics", len(rows), checked)
}

// TestClusterNotLeaderNamesTheLeader: a produce or fetch sent to a
// follower is refused with NOT_LEADER_OR_FOLLOWER and, from Produce v10
// and Fetch v12/v16 (KIP-951), names the current leader and its address,
// so the client need not ask for metadata first.
func TestClusterNotLeaderNamesTheLeader(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.client()
	createTopic(t, cl, "kip951", 1, 3, nil)
	leader := c.leaderOf("kip951", 0)
	var follower int32
	for _, nd := range c.nodes {
		if int32(nd.id) != leader {
			follower = int32(nd.id)
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, "kip951")
	must(t, err, "metadata")
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "kip951", TopicID: md.Topics["kip951"].ID,
		Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: records.Build(0, time.Now().UnixMilli(), []records.Record{{Value: []byte("x")}})}}}}
	resp, err := req.RequestWith(ctx, cl.Broker(int(follower)))
	must(t, err, "produce to a follower")
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to follower %d: error %d, want NOT_LEADER_OR_FOLLOWER", follower, p.ErrorCode)
	}
	if p.CurrentLeader.LeaderID != leader || p.CurrentLeader.LeaderEpoch <= 0 {
		t.Fatalf("current leader %+v, want node %d with its epoch", p.CurrentLeader, leader)
	}
	found := false
	for _, b := range resp.Brokers {
		if b.NodeID == leader && b.Host+":"+fmt.Sprint(b.Port) == c.node(leader).kafka {
			found = true
		}
	}
	if !found {
		t.Fatalf("node endpoints %+v do not give leader %d's address %s", resp.Brokers, leader, c.node(leader).kafka)
	}
	// The same for a consumer fetching from a follower (Fetch v12+ names
	// the leader, v16+ its address).
	freq := kmsg.NewPtrFetchRequest()
	freq.ReplicaID, freq.MaxWaitMillis, freq.MaxBytes = -1, 0, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = "kip951", md.Topics["kip951"].ID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 0, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	fresp, err := freq.RequestWith(ctx, cl.Broker(int(follower)))
	must(t, err, "fetch from a follower")
	if fresp.Version < 16 {
		t.Fatalf("fetch answered at version %d, want 16+", fresp.Version)
	}
	fpr := fresp.Topics[0].Partitions[0]
	if fpr.ErrorCode != kerr.NotLeaderForPartition.Code || fpr.CurrentLeader.LeaderID != leader || fpr.CurrentLeader.LeaderEpoch <= 0 {
		t.Fatalf("fetch from follower %d: error %d, current leader %+v; want NOT_LEADER_OR_FOLLOWER naming %d", follower, fpr.ErrorCode, fpr.CurrentLeader, leader)
	}
	if len(fresp.Brokers) != 1 || fresp.Brokers[0].NodeID != leader || fresp.Brokers[0].Host+":"+fmt.Sprint(fresp.Brokers[0].Port) != c.node(leader).kafka {
		t.Fatalf("fetch node endpoints %+v, want leader %d at %s", fresp.Brokers, leader, c.node(leader).kafka)
	}
}

// TestClusterElectLeaders: with automatic balancing off, a partition whose
// preferred replica came back stays led elsewhere until ElectLeaders
// (preferred) moves it; asked again, the election is not needed; an
// unknown partition is named; an unclean election is never needed while a
// leader exists.
func TestClusterElectLeaders(t *testing.T) {
	c := startCluster(t, 3, "--auto-leader-rebalance=false")
	cl := c.client()
	adm := kadm.NewClient(cl)
	createTopic(t, cl, "elect", 1, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	md, err := adm.Metadata(ctx, "elect")
	must(t, err, "metadata")
	pref := md.Topics["elect"].Partitions[0].Replicas[0]
	// Make sure the preferred replica does not lead: kill and restart it
	// if it does.
	if c.leaderOf("elect", 0) == pref {
		c.kill(c.node(pref))
		deadline := time.Now().Add(30 * time.Second)
		for c.leaderOf("elect", 0) == pref {
			if time.Now().After(deadline) {
				t.Fatal("no failover")
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.restart(c.node(pref))
	}
	// Wait for the preferred replica to be in sync again.
	deadline := time.Now().Add(60 * time.Second)
	for {
		md, err := adm.Metadata(ctx, "elect")
		if err == nil && slices.Contains(md.Topics["elect"].Partitions[0].ISR, pref) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("preferred replica %d not back in sync", pref)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l := c.leaderOf("elect", 0); l == pref {
		t.Fatalf("leadership returned to %d without an election although balancing is off", pref)
	}
	res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{"elect": {0: {}}})
	must(t, err, "elect leaders")
	if r := res["elect"][0]; r.Err != nil {
		t.Fatalf("preferred election: %v %s", r.Err, r.ErrMessage)
	}
	if l := c.leaderOf("elect", 0); l != pref {
		t.Fatalf("after the preferred election node %d leads, want %d", l, pref)
	}
	res, err = adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{"elect": {0: {}}, "nope": {0: {}}})
	must(t, err, "elect leaders again")
	if r := res["elect"][0]; !errors.Is(r.Err, kerr.ElectionNotNeeded) {
		t.Fatalf("second preferred election: %v, want ELECTION_NOT_NEEDED", r.Err)
	}
	if r := res["nope"][0]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", r.Err)
	}
	res, err = adm.ElectLeaders(ctx, kadm.ElectLiveReplica, kadm.TopicsSet{"elect": {0: {}}})
	must(t, err, "unclean election")
	if r := res["elect"][0]; !errors.Is(r.Err, kerr.ElectionNotNeeded) {
		t.Fatalf("unclean election with a leader: %v, want ELECTION_NOT_NEEDED", r.Err)
	}
}

// TestClusterFailoverTime measures, over repeated kill -9 of a partition's
// leader, the time from the kill to the first acks=all produce the
// successor acknowledges (franz-go producer with a 100 ms metadata age and
// short retry backoff, as a latency-sensitive client is set up). The
// figures go to the log and to CHRONIK_FAILOVER_REPORT for
// docs/PERFORMANCE.md; the test asserts only that every failover happens
// and nothing acknowledged is lost.
func TestClusterFailoverTime(t *testing.T) {
	kills := 10
	if testing.Short() {
		kills = 3
	}
	c := startCluster(t, 3, "--min-insync-replicas", "2")
	const topic = "failover"
	createTopic(t, c.client(), topic, 1, 3, nil)
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }), kgo.RecordDeliveryTimeout(2*time.Minute), kgo.ProducerLinger(0))
	a := &acked{recs: map[string][2]int64{}}
	seq := 0
	produce := func(ctx context.Context) error {
		seq++
		v := fmt.Sprintf("f%06d", seq)
		r, err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).First()
		if err == nil {
			a.mu.Lock()
			a.recs[v] = [2]int64{int64(r.Partition), r.Offset}
			a.mu.Unlock()
		}
		return err
	}
	var took []time.Duration
	for i := range kills {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		for range 20 {
			must(t, produce(ctx), "produce before the kill")
		}
		l := c.node(c.leaderOf(topic, 0))
		start := time.Now()
		c.kill(l)
		must(t, produce(ctx), fmt.Sprintf("first produce after killing leader %d", l.id))
		took = append(took, time.Since(start))
		cancel()
		t.Logf("kill %d: leader %d killed, first acks=all acknowledgement after %v", i+1, l.id, took[i].Round(time.Millisecond))
		c.restart(l)
		l.waitReady(t)
	}
	slices.Sort(took)
	report := fmt.Sprintf("failover: %d kill -9 of the leader (3 nodes, RF 3, min.insync.replicas 2): kill to first acks=all acknowledgement median %v, min %v, max %v",
		kills, took[len(took)/2].Round(time.Millisecond), took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	t.Log(report)
	if path := os.Getenv("CHRONIK_FAILOVER_REPORT"); path != "" {
		must(t, os.WriteFile(path, []byte(report+"\n"), 0o644), "write report")
	}
	checkNothingLost(t, a, readAll(t, c, topic))
}

// TestClusterWipedNodeRefusesToStart: a node whose data directory was lost
// while the cluster knows it must not come back as an empty voter (its
// vote could elect a leader without records it had acknowledged): it exits
// with a clear error, and the two others keep serving acks=all.
func TestClusterWipedNodeRefusesToStart(t *testing.T) {
	c := startCluster(t, 3, "--min-insync-replicas", "2")
	cl := c.client(kgo.DefaultProduceTopic("keep"), kgo.RequiredAcks(kgo.AllISRAcks()))
	createTopic(t, cl, "keep", 1, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(), "produce")
	victim := c.nodes[2]
	c.kill(victim)
	must(t, os.RemoveAll(victim.dir), "wipe the data directory")
	must(t, os.MkdirAll(victim.dir, 0o755), "recreate it empty")
	c.start(victim)
	victim.mu.Lock()
	done := victim.done
	victim.mu.Unlock()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the wiped node did not refuse to start:\n%s", victim.output())
	}
	victim.mu.Lock()
	code := victim.cmd.ProcessState.ExitCode()
	victim.mu.Unlock()
	if code == 0 || !strings.Contains(victim.output(), "data directory is empty, but the running cluster already registered this node id") {
		t.Fatalf("wiped node exited with status %d:\n%s", code, victim.output())
	}
	must(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(), "acks=all with the two healthy nodes")
}

// TestClusterNodeBehindRetentionInstallsSnapshot: a node is away while
// retention on the others deletes the segments it would need, and while
// topics created meanwhile make the metadata log compact itself; back, it
// installs the leaders' snapshots (metadata state; log start and producer
// state of the partition) and replicates from there, knows every topic,
// then leads again (preferred-leader balancing) and serves every
// acknowledged record after the log start at its offset.
func TestClusterNodeBehindRetentionInstallsSnapshot(t *testing.T) {
	c := startCluster(t, 3, "--retention-check-interval-ms", "300", "--leader-imbalance-check-interval-seconds", "1",
		"--metadata-log-segment-bytes", "4096", "--metadata-snapshot-bytes", "4096")
	const topic = "behind"
	cl := c.client()
	createTopic(t, cl, topic, 1, 3, map[string]*string{"segment.bytes": str("65536"), "retention.bytes": str("131072")})
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	md, err := adm.Metadata(ctx, topic)
	must(t, err, "metadata")
	pref := md.Topics[topic].Partitions[0].Replicas[0]
	waitLeader := func(want func(int32) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !want(c.leaderOf(topic, 0)) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: leader is %d", what, c.leaderOf(topic, 0))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitLeader(func(l int32) bool { return l == pref }, "the preferred replica leading after creation")
	away := c.node(pref)
	c.kill(away)
	waitLeader(func(l int32) bool { return l > 0 && l != pref }, "failover")
	// About 1.5 MiB with 1 KiB values: many 64 KiB segments, retention
	// keeps 128 KiB.
	a := &acked{recs: map[string][2]int64{}}
	p := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))
	filler := strings.Repeat("x", 1000)
	for i := range 1500 {
		v := fmt.Sprintf("v%07d", i)
		r := p.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v + filler)})
		if err := r.FirstErr(); err != nil {
			t.Fatalf("acks=all produce with one node away: %v", err)
		}
		a.recs[v] = [2]int64{0, r[0].Record.Offset}
	}
	var start int64
	deadline := time.Now().Add(60 * time.Second)
	for start < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("retention did not move the log start (at %d)", start)
		}
		time.Sleep(200 * time.Millisecond)
		if s, err := adm.ListStartOffsets(ctx, topic); err == nil {
			start = s[topic][0].Offset
		}
	}
	t.Logf("log start offset %d of %d while node %d was away", start, len(a.recs), pref)
	// The leader reports how far behind the away node is.
	leader := c.node(c.leaderOf(topic, 0))
	if lag := leader.metric(t, fmt.Sprintf(`chronik_replica_max_lag_entries{peer="%d"}`, pref)); lag < 1000 {
		t.Fatalf("leader node %d reports node %d behind by %v entries after 1500 appends without it", leader.id, pref, lag)
	}
	for i := range 20 {
		createTopic(t, cl, fmt.Sprintf("meanwhile-%02d", i), 1, 3, nil)
	}
	c.restart(away)
	waitLeader(func(l int32) bool { return l == pref }, "the returned node leading again")
	for _, group := range []string{"group=__chronik_metadata-0", "group=" + topic + "-0"} {
		installed := false
		for _, line := range strings.Split(away.output(), "\n") {
			installed = installed || strings.Contains(line, "installing a snapshot from the leader") && strings.Contains(line, group)
		}
		if !installed {
			t.Fatalf("node %d caught up %s without installing a snapshot", pref, group)
		}
	}
	// It knows every topic created while it was away, from its own state.
	deadline = time.Now().Add(30 * time.Second)
	for {
		resp, err := c.client().Broker(int(pref)).Request(ctx, kmsg.NewPtrMetadataRequest())
		n := 0
		if err == nil {
			for _, tp := range resp.(*kmsg.MetadataResponse).Topics {
				if tp.Topic != nil && strings.HasPrefix(*tp.Topic, "meanwhile-") {
					n++
				}
			}
		}
		if n == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d lists %d of the 20 topics created while it was away (%v)", pref, n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Served by the node that installed the snapshot.
	s, err := adm.ListStartOffsets(ctx, topic)
	must(t, err, "start offsets")
	e, err := adm.ListEndOffsets(ctx, topic)
	must(t, err, "end offsets")
	newStart, end := s[topic][0].Offset, e[topic][0].Offset
	if newStart < start || end != int64(len(a.recs)) {
		t.Fatalf("node %d leads with log [%d, %d); before it returned [%d, %d)", pref, newStart, end, start, len(a.recs))
	}
	read := readAll(t, c, topic)
	for v, at := range a.recs {
		if at[1] < newStart {
			continue
		}
		got, ok := read[v+filler]
		if !ok || got != at {
			t.Fatalf("acknowledged %s at offset %d: read %v (found %v)", v, at[1], got, ok)
		}
	}
	t.Logf("node %d installed the snapshot, leads, and serves [%d, %d) with every acknowledged record at its offset", pref, newStart, end)
	// And it still takes writes from the same (idempotent) producer.
	if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte("after"), Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce to the node that installed the snapshot: %v", err)
	}
}
