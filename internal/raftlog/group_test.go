package raftlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/chronik-go/chronik/internal/storage"
	"github.com/chronik-go/chronik/internal/wal"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns: the parent kills it
	}
	goleak.VerifyTestMain(m)
}

// Entry data in tests: base offset (8), count (4), then filler.
func payload(count uint32, filler int) []byte {
	b := make([]byte, 12+filler)
	binary.BigEndian.PutUint32(b[8:], count)
	return b
}

func assign(data []byte) func(int64, uint64) Assignment {
	return func(base int64, _ uint64) Assignment {
		binary.BigEndian.PutUint64(data, uint64(base))
		return Assignment{Count: int64(binary.BigEndian.Uint32(data[8:]))}
	}
}

func meta(data []byte) (storage.EntryMeta, bool, error) {
	if len(data) < 12 {
		return storage.EntryMeta{}, false, errors.New("short")
	}
	return storage.EntryMeta{BaseOffset: int64(binary.BigEndian.Uint64(data)), Count: binary.BigEndian.Uint32(data[8:]), MaxTimestamp: -1}, true, nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// node is one process's worth of components: committer, log, group.
type node struct {
	id     uint64
	dir    string
	c      *wal.Committer
	log    *storage.Log
	g      *Group
	host   *Host
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Election timeout and replica lag of test groups, in 5 ms ticks; a test
// whose steps must not be disturbed by a loaded machine raises them.
var testElectionTicks, testLagTicks = 10, 20

func startNode(t *testing.T, id uint64, dir string, voters []uint64, tr Transport, host *Host) *node {
	t.Helper()
	return startNodeWith(t, id, dir, voters, tr, host, meta)
}

// startNodeWith starts a node whose log derives offsets with mf (nil: the
// entries carry no Kafka offsets, as the metadata group's).
func startNodeWith(t *testing.T, id uint64, dir string, voters []uint64, tr Transport, host *Host, mf storage.MetaFunc) *node {
	t.Helper()
	prof, _ := wal.ProfileByName("low")
	c, err := wal.New(prof)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{id: id, dir: dir, c: c, host: host}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() { defer n.wg.Done(); _ = c.Run(ctx) }()
	n.log, err = storage.Open(dir, c, storage.Options{Meta: mf, Logger: quiet(), SegmentBytes: 32 << 10, RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	n.g, err = NewGroup(Config{GroupID: 7, NodeID: id, Voters: voters, Log: n.log, Meta: mf, Transport: tr, Logger: quiet(), ElectionTicks: testElectionTicks, HeartbeatTicks: 1,
		ForwardProposals: mf == nil, ReplicaLagTicks: testLagTicks})
	if err != nil {
		t.Fatal(err)
	}
	host.Add(n.g)
	n.wg.Add(2)
	go func() { defer n.wg.Done(); _ = n.g.Run(ctx) }()
	go func() { defer n.wg.Done(); _ = host.Run(ctx) }()
	return n
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	n.cancel()
	n.wg.Wait()
	if err := n.log.Close(); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSingleVoterProposeAndRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, 1, dir, []uint64{1}, NoPeers{}, NewHost(10*time.Millisecond))
	waitFor(t, "leadership", func() bool { return n.g.Status().IsLeader })

	const writers, per = 16, 100
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				d := payload(uint32(1+(w+i)%5), 100)
				p := NewProposal(d, assign(d), false)
				r, err := n.g.ProposeWait(context.Background(), p)
				if err != nil {
					t.Errorf("propose: %v", err)
					return
				}
				mu.Lock()
				for o := r.BaseOffset; o < r.BaseOffset+int64(binary.BigEndian.Uint32(d[8:])); o++ {
					if seen[o] {
						t.Errorf("offset %d assigned twice", o)
					}
					seen[o] = true
				}
				mu.Unlock()
				if hw := n.g.HighWatermark(); hw < r.BaseOffset+1 {
					t.Errorf("acknowledged offset %d above high watermark %d", r.BaseOffset, hw)
				}
			}
		}()
	}
	wg.Wait()
	total := int64(len(seen))
	for o := range total {
		if !seen[o] {
			t.Fatalf("offset %d missing: offsets are not contiguous", o)
		}
	}
	if hw := n.g.HighWatermark(); hw != total {
		t.Fatalf("high watermark %d, want %d", hw, total)
	}
	n.stop(t)

	// Restart: the high watermark and the log come back.
	n = startNode(t, 1, dir, []uint64{1}, NoPeers{}, NewHost(10*time.Millisecond))
	defer n.stop(t)
	waitFor(t, "leadership after restart", func() bool { return n.g.Status().IsLeader })
	waitFor(t, "high watermark after restart", func() bool { return n.g.HighWatermark() == total })
	d := payload(1, 10)
	r, err := n.g.ProposeWait(context.Background(), NewProposal(d, assign(d), false))
	if err != nil || r.BaseOffset != total {
		t.Fatalf("first offset after restart %d (%v), want %d", r.BaseOffset, err, total)
	}
}

// memNet routes messages between in-process hosts, encoding them as a
// network transport would; a node can be cut off.
type memNet struct {
	mu    sync.Mutex
	hosts map[uint64]*Host
	down  map[uint64]bool
}

func (m *memNet) Send(group uint64, msgs []*pb.Message) {
	for _, msg := range msgs {
		m.mu.Lock()
		h := m.hosts[msg.GetTo()]
		cut := m.down[msg.GetTo()] || m.down[msg.GetFrom()]
		m.mu.Unlock()
		if h == nil || cut {
			continue
		}
		b, err := proto.Marshal(msg)
		if err != nil {
			panic(err)
		}
		out := &pb.Message{}
		if err := proto.Unmarshal(b, out); err != nil {
			panic(err)
		}
		h.Deliver(group, out)
	}
}

func (m *memNet) setDown(id uint64, down bool) {
	m.mu.Lock()
	m.down[id] = down
	m.mu.Unlock()
}

func TestThreeVotersReplicateAndFailOver(t *testing.T) {
	net := &memNet{hosts: map[uint64]*Host{}, down: map[uint64]bool{}}
	voters := []uint64{1, 2, 3}
	nodes := map[uint64]*node{}
	dirs := map[uint64]string{}
	for _, id := range voters {
		dirs[id] = t.TempDir()
		h := NewHost(5 * time.Millisecond)
		net.mu.Lock()
		net.hosts[id] = h
		net.mu.Unlock()
		nodes[id] = startNode(t, id, dirs[id], voters, net, h)
	}
	defer func() {
		for _, n := range nodes {
			n.stop(t)
		}
	}()
	leader := func() *node {
		for _, n := range nodes {
			if n.g.Status().IsLeader {
				return n
			}
		}
		return nil
	}
	waitFor(t, "a leader", func() bool { return leader() != nil })
	// propose writes k entries through the current leader, following
	// leadership as a client would when an election happens under load
	// (a proposal refused with ErrNotLeader may still commit later, so
	// callers compare high watermarks, not counts).
	propose := func(k int) {
		for i := 0; i < k; {
			var n *node
			waitFor(t, "a leader", func() bool { n = leader(); return n != nil })
			d := payload(2, 64)
			_, err := n.g.ProposeWait(context.Background(), NewProposal(d, assign(d), false))
			switch {
			case errors.Is(err, ErrNotLeader):
				continue
			case err != nil:
				t.Fatalf("propose on leader %d: %v", n.id, err)
			}
			i++
		}
	}
	// settled waits until every connected replica has the same high
	// watermark as the leader and returns it.
	settled := func(skip *node) int64 {
		var hw int64
		waitFor(t, "replicas agree on the high watermark", func() bool {
			l := leader()
			if l == nil {
				return false
			}
			hw = l.g.HighWatermark()
			for _, n := range nodes {
				if n != skip && n.g.HighWatermark() != hw {
					return false
				}
			}
			return true
		})
		return hw
	}
	propose(50)
	end := settled(nil)
	if end < 100 {
		t.Fatalf("high watermark %d after 50 two-record proposals", end)
	}
	l1 := leader()
	if l1 == nil {
		t.Fatal("no leader")
	}
	// A follower refuses proposals.
	for _, n := range nodes {
		if n != l1 {
			d := payload(1, 1)
			if _, err := n.g.ProposeWait(context.Background(), NewProposal(d, assign(d), false)); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("follower accepted a proposal: %v", err)
			}
			break
		}
	}
	// Cut the leader off: the others elect a new one, which continues the
	// offsets where the old leader's committed entries ended.
	net.setDown(l1.id, true)
	waitFor(t, "a new leader", func() bool { l := leader(); return l != nil && l != l1 })
	l2 := leader()
	first := l2.g.HighWatermark()
	if first != end {
		t.Fatalf("new leader's high watermark %d, committed end was %d", first, end)
	}
	propose(30)
	end2 := settled(l1)
	if end2 < end+60 {
		t.Fatalf("high watermark %d after 30 more proposals from %d", end2, end)
	}
	// Heal: the old leader steps down and catches up.
	net.setDown(l1.id, false)
	waitFor(t, "every replica caught up", func() bool {
		for _, n := range nodes {
			if n.g.HighWatermark() != end2 {
				return false
			}
		}
		return true
	})
	waitFor(t, "a leader", func() bool { l2 = leader(); return l2 != nil })
	// Every replica holds the same log.
	ref, _ := l2.log.LastIndex()
	for _, n := range nodes {
		last, _ := n.log.LastIndex()
		if last != ref {
			t.Fatalf("node %d last index %d, leader %d", n.id, last, ref)
		}
		for i := uint64(1); i <= last; i++ {
			a, _ := n.log.Term(i)
			b, _ := l2.log.Term(i)
			if a != b {
				t.Fatalf("node %d term at %d differs", n.id, i)
			}
		}
	}
}

// TestFollowerForwardsProposal: a follower's Forward proposal reaches the
// leader through Raft (MsgProp) and commits on every voter, which is how
// any node writes to the metadata group.
func TestFollowerForwardsProposal(t *testing.T) {
	_, _, nodes := startThreeWith(t, nil)
	defer stopAll(t, nodes)
	var follower *node
	waitFor(t, "a leader and a follower that knows it", func() bool {
		for _, n := range nodes {
			if st := n.g.Status(); !st.IsLeader && st.Leader != 0 {
				follower = n
				return true
			}
		}
		return false
	})
	for i := range 5 {
		p := NewProposal([]byte(fmt.Sprintf("command %d", i)), nil, false)
		p.Forward = true
		r, err := follower.g.ProposeWait(context.Background(), p)
		if err != nil || !r.Forwarded {
			t.Fatalf("forwarded proposal %d: %+v %v", i, r, err)
		}
	}
	// Without Forward a follower still refuses.
	if _, err := follower.g.ProposeWait(context.Background(), NewProposal([]byte("x"), nil, false)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a follower accepted a proposal without Forward: %v", err)
	}
	waitFor(t, "the forwarded entries on every voter", func() bool {
		for _, n := range nodes {
			if st := n.g.Status(); st.Commit < 5 || st.Applied < st.Commit {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		last, _ := n.log.LastIndex()
		found := 0
		for i := uint64(1); i <= last; i++ {
			ents, err := n.log.Entries(i, i+1, 1<<20)
			if err == nil && len(ents) == 1 && strings.HasPrefix(string(ents[0].Data), "command ") {
				found++
			}
		}
		if found != 5 {
			t.Fatalf("node %d holds %d of the 5 forwarded commands", n.id, found)
		}
	}
}

// TestISRShrinksAndExpands: a follower cut off leaves the leader's in-sync
// replicas after the lag period and comes back once it has caught up.
func TestISRShrinksAndExpands(t *testing.T) {
	net, voters, nodes := startThree(t)
	defer stopAll(t, nodes)
	var l *node
	isr := func() []uint64 { return l.g.Status().ISR }
	waitFor(t, "a leader with three in-sync replicas", func() bool {
		for _, n := range nodes {
			if n.g.Status().IsLeader {
				l = n
				return slices.Equal(isr(), voters)
			}
		}
		return false
	})
	f := another(nodes, l)
	net.setDown(f.id, true)
	// Appends the follower cannot acknowledge.
	for range 5 {
		d := payload(1, 16)
		if _, err := l.g.ProposeWait(context.Background(), NewProposal(d, assign(d), false)); err != nil {
			t.Fatalf("propose with two of three voters: %v", err)
		}
	}
	want := slices.DeleteFunc(slices.Clone(voters), func(id uint64) bool { return id == f.id })
	waitFor(t, "the cut-off follower to leave the in-sync replicas", func() bool { return slices.Equal(isr(), want) })
	// The leader measures how far behind it is; the other follower is not.
	lagOf := func(id uint64) uint64 {
		for _, pl := range l.g.Lag() {
			if pl.Node == id {
				return pl.Entries
			}
		}
		return 1 << 63
	}
	var o *node // the follower still connected
	for _, n := range nodes {
		if n != l && n != f {
			o = n
		}
	}
	waitFor(t, "the leader's lag of each follower", func() bool { return lagOf(f.id) >= 5 && lagOf(o.id) == 0 })
	if lg := f.g.Lag(); lg != nil {
		t.Fatalf("a follower reports lag: %v", lg)
	}
	if l.g.Status().IsLeader != true {
		t.Fatal("leadership moved while a follower was cut off")
	}
	net.setDown(f.id, false)
	waitFor(t, "the follower to rejoin the in-sync replicas", func() bool { return slices.Equal(isr(), voters) })
	if st := f.g.Status(); st.ISR != nil {
		t.Fatalf("a follower reports an ISR: %v", st.ISR)
	}
}

// A new leader learns the last commit index only by committing in its own
// term: until it applied its no-op it may hold a high watermark below the
// one its predecessor published, and must not serve reads
// (Status.Serving). Cut the leader off right after a commit, before the
// followers heard of it, and watch the successor.
func TestNewLeaderServesOnlyOnceCaughtUpToPredecessor(t *testing.T) {
	for round := range 3 {
		net, _, nodes := startThree(t)
		leader := func(except *node) *node {
			for _, n := range nodes {
				if n != except && n.g.Status().IsLeader {
					return n
				}
			}
			return nil
		}
		var l1 *node
		waitFor(t, "a leader", func() bool { l1 = leader(nil); return l1 != nil })
		for i := 0; i < 20; {
			d := payload(1, 16)
			_, err := l1.g.ProposeWait(context.Background(), NewProposal(d, assign(d), false))
			switch {
			case errors.Is(err, ErrNotLeader): // an election on a loaded machine
				waitFor(t, "a leader", func() bool { l1 = leader(nil); return l1 != nil })
				continue
			case err != nil:
				t.Fatalf("round %d: propose: %v", round, err)
			}
			i++
		}
		published := l1.g.HighWatermark()
		net.setDown(l1.id, true)
		var l2 *node
		sawBehind := false
		waitFor(t, "the successor serving", func() bool {
			l2 = leader(l1)
			if l2 == nil {
				return false
			}
			st := l2.g.Status()
			if st.IsLeader && !st.Serving && st.HighWatermark < published {
				sawBehind = true
			}
			if st.Serving && st.HighWatermark < published {
				t.Fatalf("round %d: node %d serves as leader with high watermark %d below its predecessor's %d",
					round, l2.id, st.HighWatermark, published)
			}
			return st.Serving
		})
		t.Logf("round %d: predecessor published %d, successor %d serves at %d (seen behind before serving: %v)",
			round, published, l2.id, l2.g.HighWatermark(), sawBehind)
		for _, n := range nodes {
			n.stop(t)
		}
	}
}

// MinCopies above the quorum (min.insync.replicas = 3 of 3): a commit by
// two voters is not enough to answer; the proposal completes once the
// third has it, and fails with ErrTooFewCopies when the third leaves the
// in-sync replicas instead.
func TestMinCopiesAboveQuorum(t *testing.T) {
	// Each step assumes no election and a connected follower in sync:
	// 0.5 s election timeout and 1 s replica lag, so a loaded machine
	// (-race, other packages) does not change leader or ISR by accident.
	testElectionTicks, testLagTicks = 100, 200
	defer func() { testElectionTicks, testLagTicks = 10, 20 }()
	net, voters, nodes := startThree(t)
	defer stopAll(t, nodes)
	var l *node
	waitFor(t, "a leader with three in-sync replicas", func() bool {
		for _, n := range nodes {
			if st := n.g.Status(); st.IsLeader {
				l = n
				return slices.Equal(st.ISR, voters)
			}
		}
		return false
	})
	propose := func() *Proposal {
		d := payload(1, 16)
		p := NewProposal(d, assign(d), false)
		p.MinCopies = 3
		if err := l.g.Propose(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// All three voters up: answered with the third copy.
	p := propose()
	<-p.Done()
	if r := p.Result(); r.Err != nil {
		t.Fatalf("three voters up: %v", r.Err)
	}
	f := another(nodes, l)
	// One follower cut off: the entry commits with two copies but stays
	// unanswered while the follower is still counted in sync...
	net.setDown(f.id, true)
	p = propose()
	waitFor(t, "the entry committed on the leader", func() bool { return l.g.HighWatermark() >= 2 })
	select {
	case <-p.Done():
		if st := l.g.Status(); len(st.ISR) == 3 {
			t.Fatalf("answered with two of three copies while the ISR was %v: %+v", st.ISR, p.Result())
		}
	default:
	}
	// ...and fails once the follower left the in-sync replicas.
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("no answer after the follower left the in-sync replicas")
	}
	if r := p.Result(); !errors.Is(r.Err, ErrTooFewCopies) {
		t.Fatalf("with two of three copies: %+v, want ErrTooFewCopies", r)
	}
	if st := l.g.Status(); len(st.ISR) != 2 {
		t.Fatalf("ISR %v after the failure, want two replicas", st.ISR)
	}
	// Back: the follower catches up, rejoins, and a new proposal completes.
	net.setDown(f.id, false)
	waitFor(t, "the follower back in sync", func() bool { return len(l.g.Status().ISR) == 3 })
	p = propose()
	<-p.Done()
	if r := p.Result(); r.Err != nil {
		t.Fatalf("after the follower rejoined: %v", r.Err)
	}
}

// startThree starts three voters of one group on an in-memory network.
func startThree(t *testing.T) (*memNet, []uint64, map[uint64]*node) {
	t.Helper()
	return startThreeWith(t, meta)
}

// startThreeWith is startThree with the log's MetaFunc (nil: entries carry
// no Kafka offsets).
func startThreeWith(t *testing.T, mf storage.MetaFunc) (*memNet, []uint64, map[uint64]*node) {
	t.Helper()
	net := &memNet{hosts: map[uint64]*Host{}, down: map[uint64]bool{}}
	voters := []uint64{1, 2, 3}
	nodes := map[uint64]*node{}
	for _, id := range voters {
		h := NewHost(5 * time.Millisecond)
		net.mu.Lock()
		net.hosts[id] = h
		net.mu.Unlock()
		nodes[id] = startNodeWith(t, id, t.TempDir(), voters, net, h, mf)
	}
	return net, voters, nodes
}

func stopAll(t *testing.T, nodes map[uint64]*node) {
	t.Helper()
	for _, n := range nodes {
		n.stop(t)
	}
}

// A follower away while the others' retention deleted the entries it
// needs gets the leader's snapshot: its log is replaced by one that
// continues at the leader's log start, with the same Kafka offsets, and it
// can lead afterwards.
func TestFollowerBehindLogStartInstallsSnapshot(t *testing.T) {
	net, _, nodes := startThree(t)
	defer stopAll(t, nodes)
	var l *node
	waitFor(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.g.Status().IsLeader {
				l = n
				return true
			}
		}
		return false
	})
	f := another(nodes, l)
	// propose writes k entries through on, or whoever leads instead if an
	// election on a loaded machine moved leadership.
	propose := func(on *node, k int) {
		for i := 0; i < k; {
			d := payload(2, 512)
			_, err := on.g.ProposeWait(context.Background(), NewProposal(d, assign(d), false))
			switch {
			case errors.Is(err, ErrNotLeader):
				waitFor(t, "a leader", func() bool {
					for _, n := range nodes {
						if n.g.Status().IsLeader {
							on = n
							return true
						}
					}
					return false
				})
				continue
			case err != nil:
				t.Fatalf("propose on %d: %v", on.id, err)
			}
			i++
		}
	}
	propose(l, 10)
	waitFor(t, "the follower caught up", func() bool { return f.g.HighWatermark() == l.g.HighWatermark() })
	net.setDown(f.id, true)
	fLast, _ := f.log.LastIndex()
	propose(l, 300) // ~330 KiB: about ten 32 KiB segments
	for _, n := range nodes {
		if n == f {
			continue
		}
		waitFor(t, "everything applied", func() bool { return n.g.HighWatermark() == l.g.HighWatermark() })
		if err := n.log.Reconfigure(storage.Options{RetentionBytes: 64 << 10}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.log.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := l.log.FirstIndex()
	if first <= fLast+1 {
		t.Fatalf("retention left the leader's log at index %d; the follower has up to %d, so no snapshot is needed", first, fLast)
	}
	start := l.log.LogStartOffset()
	net.setDown(f.id, false)
	waitFor(t, "the follower installed the snapshot and caught up", func() bool { return f.g.HighWatermark() == l.g.HighWatermark() })
	if got, _ := f.log.FirstIndex(); got < first {
		t.Fatalf("follower's first index %d, leader's %d", got, first)
	}
	if f.log.LogStartOffset() < start || f.log.EndOffset() != l.log.EndOffset() {
		t.Fatalf("follower log [%d, %d), leader [%d, %d)", f.log.LogStartOffset(), f.log.EndOffset(), start, l.log.EndOffset())
	}
	// The records after the snapshot are the leader's, offset for offset.
	fb, err := f.log.ReadRecords(f.log.LogStartOffset(), 1<<20, f.log.EndOffset())
	if err != nil || len(fb) == 0 {
		t.Fatalf("follower reads: %d batches, %v", len(fb), err)
	}
	lb, err := l.log.ReadRecords(fb[0].BaseOffset, 1<<20, l.log.EndOffset())
	if err != nil || len(lb) < len(fb) {
		t.Fatalf("leader reads: %d batches, %v", len(lb), err)
	}
	for i := range fb {
		if fb[i].BaseOffset != lb[i].BaseOffset || !bytes.Equal(fb[i].Data, lb[i].Data) {
			t.Fatalf("batch %d differs: follower at %d, leader at %d", i, fb[i].BaseOffset, lb[i].BaseOffset)
		}
	}
	// It can lead: offsets continue where the log ends.
	end := l.g.HighWatermark()
	l.g.TransferLeadership(f.id)
	waitFor(t, "the installed follower leads", func() bool { return f.g.Status().Serving })
	propose(f, 5)
	if hw := f.g.HighWatermark(); hw != end+10 {
		t.Fatalf("high watermark %d after 5 two-record proposals on the new leader, want %d", hw, end+10)
	}
}

// another returns a node other than n.
func another(nodes map[uint64]*node, n *node) *node {
	for _, o := range nodes {
		if o != n {
			return o
		}
	}
	return nil
}

// ConfirmLeader succeeds on a leader a quorum answers, fails at once on a
// follower, and never succeeds on a leader cut off from the others (it
// fails once CheckQuorum makes it step down): so a deposed leader does
// not answer reads from its own stale state.
func TestConfirmLeader(t *testing.T) {
	net, _, nodes := startThree(t)
	defer stopAll(t, nodes)
	var l *node
	l = servingLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		d := payload(3, 16)
		_, err := l.g.ProposeWait(ctx, NewProposal(d, assign(d), false))
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotLeader) {
			t.Fatal(err)
		}
		// An election on a loaded machine: follow the new leader.
		l = servingLeader(t, nodes)
	}
	if err := l.g.ConfirmLeader(ctx); err != nil {
		t.Fatalf("the leader could not confirm its leadership: %v", err)
	}
	if hw := l.g.HighWatermark(); hw < 3 {
		t.Fatalf("high watermark %d after a confirmed read, want >= 3", hw)
	}
	if err := another(nodes, l).g.ConfirmLeader(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a follower confirmed leadership: %v", err)
	}
	net.setDown(l.id, true)
	if err := l.g.ConfirmLeader(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a leader cut off from the quorum: %v, want ErrNotLeader", err)
	}
}

// servingLeader waits for a leader that serves and returns it.
func servingLeader(t *testing.T, nodes map[uint64]*node) *node {
	t.Helper()
	var l *node
	waitFor(t, "a leader that serves", func() bool {
		for _, n := range nodes {
			if st := n.g.Status(); st.IsLeader && st.Serving {
				l = n
				return true
			}
		}
		return false
	})
	return l
}
