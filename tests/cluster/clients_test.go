package cluster

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// failoverClient is one real Kafka client as the failover test drives it.
type failoverClient struct {
	name, version string
	// idempotent: the client's idempotent producer is used, so a record
	// stored twice is a failure; otherwise a retried batch may be stored
	// twice (Kafka semantics) and duplicates are only counted.
	idempotent bool
	// caveat is a footnote the doc must carry whatever the outcome.
	caveat string
	// produce sends records keyed "k%07d" (value = key) to topic through
	// bootstrap until stop closes, reporting every delivery to d as the
	// client reports it, and returns once the client has flushed.
	produce func(t *testing.T, bootstrap, topic string, stop <-chan struct{}, d *deliveries) error
	// consume reads topic from the beginning of every partition up to ends
	// through bootstrap, as the client delivers the records.
	consume func(t *testing.T, bootstrap, topic string, ends map[int32]int64) ([]readRec, error)
}

// readRec is one record as a client read it.
type readRec struct {
	key       string
	partition int32
	offset    int64
}

// deliveries is what a producer was told, record by record.
type deliveries struct {
	mu      sync.Mutex
	acked   map[string][2]int64 // key → partition, offset (-1: the client does not say)
	perPart map[int32]int
	failed  map[string]string // key → the client's error, for records it gave up on
	twice   int               // acknowledgements of a key already acknowledged
	// sent counts the records handed to the client (keys below it). Once
	// the leader is killed, killAt freezes it: a partition-0 record with a
	// key at or above killAt was sent after the kill, so its acknowledgement
	// came from a new leader, not from a response already on its way.
	sent, killAt, p0AfterKill int
}

func newDeliveries() *deliveries {
	return &deliveries{acked: map[string][2]int64{}, perPart: map[int32]int{}, failed: map[string]string{}, killAt: -1}
}

// sentUpTo records that keys below n have been handed to the client.
func (d *deliveries) sentUpTo(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sent = max(d.sent, n)
}

func (d *deliveries) markKill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.killAt = d.sent
}

func (d *deliveries) ack(key string, partition int32, offset int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.acked[key]; ok {
		d.twice++
		return
	}
	d.acked[key] = [2]int64{int64(partition), offset}
	d.perPart[partition]++
	if i, err := strconv.Atoi(strings.TrimPrefix(key, "k")); err == nil && partition == 0 && d.killAt >= 0 && i >= d.killAt {
		d.p0AfterKill++
	}
}

func (d *deliveries) fail(key, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failed[key] = msg
}

// counts returns the records acknowledged, and those of partition 0 sent
// after the kill.
func (d *deliveries) counts() (total, p0AfterKill int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.acked), d.p0AfterKill
}

// outcome is one client's row of the cluster table.
type outcome struct {
	version                       string
	idempotent                    bool
	cell                          string // pass | FAIL
	why                           string // the first failure, for a FAIL cell
	foot                          []string
	acked, read, dups, gaveUp, p0 int
}

var updateDoc = flag.Bool("update", false, "rewrite docs/COMPATIBILITY-CLUSTER.md from this run")

// Numbers of the scenario. They are progress marks, not speeds: each wait
// has a generous deadline and only the count matters.
const (
	failoverPartitions = 3
	ackedBeforeKill    = 300 // records acknowledged before the leader is killed
	p0AfterKill        = 50  // partition-0 records acknowledged by the new leader
	ackedAfterRestart  = 200 // records acknowledged after the old leader is back
	progressDeadline   = 60 * time.Second
)

// TestClusterClientsThroughFailover: every real client of the compat matrix
// bootstraps from one node, produces with acks=all (idempotently where it
// can) while the leader of partition 0 of its topic is killed with SIGKILL
// and later restarted, then consumes its topic from the beginning through
// another node. Every record the client was told is acknowledged must be
// read back, at the offset it was given where the client says one, and
// exactly once when the producer is idempotent. The outcome is the table
// of docs/COMPATIBILITY-CLUSTER.md (-update rewrites it; a run of every
// client that passes fails when the file differs).
func TestClusterClientsThroughFailover(t *testing.T) {
	clients := failoverClients(t)
	c := startCluster(t, 3, "--min-insync-replicas", "2")
	out := map[string]*outcome{}
	for _, fc := range clients {
		o := &outcome{version: fc.version, idempotent: fc.idempotent}
		out[fc.name] = o
		if fc.caveat != "" {
			o.foot = append(o.foot, fc.caveat)
		}
		if !fc.idempotent {
			o.foot = append(o.foot, "no idempotent producer: a batch retried after the failover may be stored twice, as Kafka allows "+
				"for such a producer; duplicates are counted in the test log, not failed on")
		}
		ok := t.Run(topicSlug(fc.name), func(t *testing.T) { runFailover(t, c, fc, o) })
		if ok {
			o.cell = "pass"
		} else {
			o.cell = "FAIL"
			if o.why == "" {
				o.why = "see the test log"
			}
		}
		t.Logf("%s: %s; acknowledged %d (partition 0: %d), read back %d, duplicates %d, gave up %d", fc.name, o.cell, o.acked, o.p0, o.read, o.dups, o.gaveUp)
	}
	doc := renderClusterDoc(out)
	path := filepath.Join("..", "..", "docs", "COMPATIBILITY-CLUSTER.md")
	switch {
	case *updateDoc:
		must(t, os.WriteFile(path, []byte(doc), 0o644), "write "+path)
	case !t.Failed() && len(out) == len(clients):
		old, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(old, []byte(doc)) {
			t.Errorf("docs/COMPATIBILITY-CLUSTER.md differs from this run; run make cluster-doc\n--- observed:\n%s", doc)
		}
	}
}

// topicSlug turns a client name into a topic and subtest name.
func topicSlug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(strings.Fields(s)[0]))
}

// runFailover is the scenario for one client on the shared cluster.
func runFailover(t *testing.T, shared *cluster, fc failoverClient, o *outcome) {
	// The same nodes, seen from the subtest: the harness fails and cleans
	// up through its t, which must be the test running this goroutine.
	c := &cluster{t: t, nodes: shared.nodes}
	failf := func(format string, args ...any) {
		t.Helper()
		if o.why == "" {
			o.why = fmt.Sprintf(format, args...)
		}
		t.Fatalf(format, args...)
	}
	topic := "failover-" + topicSlug(fc.name)
	createTopic(t, c.client(), topic, failoverPartitions, 3, map[string]*string{"min.insync.replicas": str("2")})
	leader := c.node(c.leaderOf(topic, 0))
	// Bootstrap from a node that is not the one killed: the test is about
	// following a leader, not about a dead seed (a client given one seed
	// that dies before it has learned the others cannot recover, by design).
	var boot *node
	for _, nd := range c.nodes {
		if nd != leader {
			boot = nd
			break
		}
	}
	d := newDeliveries()
	stop := make(chan struct{})
	stopped := false
	stopOnce := func() {
		if !stopped {
			stopped = true
			close(stop)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- fc.produce(t, boot.kafka, topic, stop, d) }()
	finished := false
	defer func() {
		if !finished {
			stopOnce()
			select {
			case <-errc:
			case <-time.After(3 * time.Minute):
			}
		}
		if !leader.running() {
			c.restart(leader)
		}
	}()
	wait := func(what string, cond func(total, p0 int) bool) {
		t.Helper()
		deadline := time.Now().Add(progressDeadline)
		for {
			total, p0 := d.counts()
			if cond(total, p0) {
				return
			}
			select {
			case err := <-errc:
				finished = true
				failf("%s: producer ended %s: %v", fc.name, what, err)
			default:
			}
			if time.Now().After(deadline) {
				failf("%s: %s: %d acknowledged (%d of partition 0 sent after the kill) after %v", fc.name, what, total, p0, progressDeadline)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("before the kill", func(total, _ int) bool { return total >= ackedBeforeKill })
	t.Logf("kill -9 node %d (leader of %s-0); %s bootstraps from node %d", leader.id, topic, fc.name, boot.id)
	c.kill(leader)
	d.markKill()
	killed := time.Now()
	wait("partition 0 acknowledged no records sent after its leader was killed", func(_, p0 int) bool { return p0 >= p0AfterKill })
	t.Logf("partition 0 acknowledged %d records sent after the kill within %v; its leader is now node %d",
		p0AfterKill, time.Since(killed).Round(10*time.Millisecond), c.leaderOf(topic, 0))
	c.restart(leader)
	total, _ := d.counts()
	wait("after the old leader restarted", func(n, _ int) bool { return n >= total+ackedAfterRestart })
	stopOnce()
	select {
	case err := <-errc:
		finished = true
		if err != nil {
			failf("%s: producer: %v", fc.name, err)
		}
	case <-time.After(3 * time.Minute):
		failf("%s: producer did not finish within 3 min of being told to stop", fc.name)
	}

	for p := int32(0); p < failoverPartitions; p++ {
		c.leaderOf(topic, p)
	}
	ends := endOffsets(t, c, topic)
	stored := int64(0)
	for _, e := range ends {
		stored += e
	}
	// Consume through the restarted node: it must serve metadata again.
	read, err := fc.consume(t, leader.kafka, topic, ends)
	d.mu.Lock()
	defer d.mu.Unlock()
	o.acked, o.read, o.gaveUp, o.p0 = len(d.acked), len(read), len(d.failed), d.perPart[0]
	if err != nil {
		failf("%s: consume: %v", fc.name, err)
	}
	// Every copy of each key: a producer without idempotence may store a
	// retried batch twice, and its acknowledgement names one of the copies.
	seen := map[string][]readRec{}
	for _, r := range read {
		if len(seen[r.key]) > 0 {
			o.dups++
		}
		seen[r.key] = append(seen[r.key], r)
	}
	if int64(len(read)) != stored {
		failf("%s read %d records, the partitions hold %d (end offsets %v)", fc.name, len(read), stored, ends)
	}
	if d.twice > 0 {
		failf("%s acknowledged %d records twice", fc.name, d.twice)
	}
	lost := 0
	keys := make([]string, 0, len(d.acked))
	for k := range d.acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		at := d.acked[k]
		copies := seen[k]
		if len(copies) == 0 {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %s (partition %d offset %d) was not read back", k, at[0], at[1])
			}
			continue
		}
		if !slices.ContainsFunc(copies, func(r readRec) bool {
			return int64(r.partition) == at[0] && (at[1] < 0 || r.offset == at[1])
		}) {
			failf("acknowledged %s at partition %d offset %d, read at partition %d offset %d (%d copies)",
				k, at[0], at[1], copies[0].partition, copies[0].offset, len(copies))
		}
	}
	if lost > 0 {
		failf("%d of %d acknowledged records not read back", lost, len(d.acked))
	}
	if o.dups > 0 && fc.idempotent {
		failf("idempotent producer: %d records stored twice", o.dups)
	}
	if len(d.failed) > 0 {
		var sample string
		for k, msg := range d.failed {
			sample = k + ": " + msg
			break
		}
		t.Logf("%s gave up on %d records (not acknowledged, so not required), e.g. %s", fc.name, len(d.failed), sample)
	}
}

// endOffsets lists a topic's end offsets, retrying while a partition is
// between leaders: a node that has just restarted may win an election after
// the metadata named another leader, and LEADER_NOT_AVAILABLE or
// NOT_LEADER_OR_FOLLOWER are retriable answers in the meantime.
func endOffsets(t *testing.T, c *cluster, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(c.client())
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lo, err := adm.ListEndOffsets(ctx, topic)
		cancel()
		if err == nil {
			err = lo.Error()
		}
		if err == nil {
			ends := map[int32]int64{}
			lo.Each(func(l kadm.ListedOffset) { ends[l.Partition] = l.Offset })
			return ends
		}
		if time.Now().After(deadline) {
			t.Fatalf("end offsets of %s: %v", topic, err)
		}
		t.Logf("end offsets of %s: %v (retrying)", topic, err)
		time.Sleep(200 * time.Millisecond)
	}
}

func (nd *node) running() bool {
	nd.mu.Lock()
	done := nd.done
	nd.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// renderClusterDoc writes the cluster table. Only what is stable from run to
// run goes in (counts go to the test log): the file is compared on a run.
func renderClusterDoc(out map[string]*outcome) string {
	var b strings.Builder
	b.WriteString("# Client compatibility: cluster failover\n\n")
	b.WriteString("<!-- Code generated by go test ./tests/cluster -run TestClusterClients -update (make cluster-doc). DO NOT EDIT. -->\n\n")
	b.WriteString("The cluster column of [COMPATIBILITY.md](COMPATIBILITY.md). `TestClusterClientsThroughFailover` starts three\n")
	b.WriteString("`chronik server` processes (RF 3, one Raft group per partition). Each client gets its own topic (3 partitions,\n")
	b.WriteString("replication factor 3, min.insync.replicas 2), bootstraps from one node and produces with acks=all, idempotently\n")
	fmt.Fprintf(&b, "where the client can. After %d acknowledgements the leader of partition 0 is killed with SIGKILL; the client keeps\n", ackedBeforeKill)
	fmt.Fprintf(&b, "producing until partition 0 has acknowledged %d records sent after the kill (*failover*); the killed node is\n", p0AfterKill)
	fmt.Fprintf(&b, "restarted and the client produces %d more. Then the client consumes its topic from the beginning, bootstrapping from\n", ackedAfterRestart)
	b.WriteString("the restarted node. *pass* means every record the client reported as acknowledged was read back by the client, at\n")
	b.WriteString("the partition and offset it was given where the client reports offsets, the client read every stored record, and,\n")
	b.WriteString("for an idempotent producer, none twice. The bootstrap node is never the one killed. Counts of each run are in the\n")
	b.WriteString("test log.\n\n")
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteString("| client | idempotent producer | produce and consume through a leader failover |\n|---|---|---|\n")
	var foots, fails []string
	for _, n := range names {
		o := out[n]
		cell := o.cell
		if cell == "pass" && len(o.foot) > 0 {
			cell = "pass*"
			foots = append(foots, fmt.Sprintf("- %s: %s", n, strings.Join(o.foot, "; ")))
		}
		if cell == "FAIL" {
			fails = append(fails, fmt.Sprintf("- %s: %s", n, o.why))
		}
		idem := "no"
		if o.idempotent {
			idem = "yes"
		}
		fmt.Fprintf(&b, "| %s (%s) | %s | %s |\n", n, o.version, idem, cell)
	}
	if len(foots) > 0 {
		b.WriteString("\npass* (passed with a caveat):\n\n" + strings.Join(foots, "\n") + "\n")
	}
	if len(fails) > 0 {
		b.WriteString("\nWhy FAIL:\n\n" + strings.Join(fails, "\n") + "\n")
	}
	return b.String()
}
