package raftlog

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// quietNet is the in-process network plus what the real transport adds for
// quiescence: liveness reports to every host (Host.SetPeer, as the
// transport's OnPeer), a count of the messages sent, and a filter that can
// lose some of them.
type quietNet struct {
	*memNet
	mu   sync.Mutex
	sent []*pb.Message // every message sent, in order
	drop func(*pb.Message) bool
}

func (q *quietNet) Send(group uint64, msgs []*pb.Message) {
	var keep []*pb.Message
	q.mu.Lock()
	for _, m := range msgs {
		q.sent = append(q.sent, m)
		if q.drop == nil || !q.drop(m) {
			keep = append(keep, m)
		}
	}
	q.mu.Unlock()
	q.memNet.Send(group, keep)
}

func (q *quietNet) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.sent)
}

// sentSince returns the messages sent after the first n.
func (q *quietNet) sentSince(n int) []*pb.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.sent[n:])
}

// quietCluster is three voters of one quiescing group.
type quietCluster struct {
	t     *testing.T
	net   *quietNet
	nodes map[uint64]*node
	ids   []uint64
}

func newQuietCluster(t *testing.T) *quietCluster {
	t.Helper()
	c := &quietCluster{t: t, net: &quietNet{memNet: &memNet{hosts: map[uint64]*Host{}, down: map[uint64]bool{}}},
		nodes: map[uint64]*node{}, ids: []uint64{1, 2, 3}}
	for _, id := range c.ids {
		h := NewHost(5 * time.Millisecond)
		c.net.mu.Lock()
		c.net.hosts[id] = h
		c.net.mu.Unlock()
	}
	// Every node sees the others up, as once the transport connected.
	for _, id := range c.ids {
		for _, other := range c.ids {
			if other != id {
				c.host(id).SetPeer(other, true, 0)
			}
		}
	}
	for _, id := range c.ids {
		c.nodes[id] = startNodeCfg(t, id, t.TempDir(), c.ids, c.net, c.host(id), meta, func(cfg *Config) { cfg.Quiesce = true })
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop(t)
		}
	})
	return c
}

func (c *quietCluster) host(id uint64) *Host {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	return c.net.hosts[id]
}

func (c *quietCluster) leader() *node {
	for _, id := range c.ids {
		if n := c.nodes[id]; n.g.Status().IsLeader && !c.net.isDown(id) {
			return n
		}
	}
	return nil
}

// isolate cuts node id off (or reconnects it) and reports it as the
// transport would: the others see it down (up), it sees them down (up).
func (c *quietCluster) isolate(id uint64, cut bool) {
	c.net.setDown(id, cut)
	for _, other := range c.ids {
		if other != id {
			c.host(other).SetPeer(id, !cut, 0)
			c.host(id).SetPeer(other, !cut, 0)
		}
	}
}

func (m *memNet) isDown(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.down[id]
}

// propose writes k one-record entries through the current leader.
func (c *quietCluster) propose(k int) {
	c.t.Helper()
	for i := 0; i < k; {
		var l *node
		waitFor(c.t, "a leader", func() bool { l = c.leader(); return l != nil })
		d := payload(1, 32)
		_, err := l.g.ProposeWait(context.Background(), NewProposal(d, assign(d), false))
		switch {
		case errors.Is(err, ErrNotLeader):
			continue
		case err != nil:
			c.t.Fatalf("propose: %v", err)
		}
		i++
	}
}

// waitQuiet waits until every connected replica is quiesced with the
// leader's high watermark (the final heartbeat carried the commit index)
// and returns the leader.
func (c *quietCluster) waitQuiet(what string) *node {
	c.t.Helper()
	var l *node
	waitFor(c.t, what, func() bool {
		if l = c.leader(); l == nil {
			return false
		}
		for _, id := range c.ids {
			n := c.nodes[id]
			if c.net.isDown(id) {
				continue
			}
			if st := n.g.Status(); !st.Quiesced || n.g.HighWatermark() != l.g.HighWatermark() {
				return false
			}
		}
		return true
	})
	return l
}

// TestQuiesceSingleVoter: a single-voter group (standalone, RF 1)
// quiesces once its entries are applied, and a proposal wakes it.
func TestQuiesceSingleVoter(t *testing.T) {
	h := NewHost(5 * time.Millisecond)
	n := startNodeCfg(t, 1, t.TempDir(), []uint64{1}, nil, h, meta, func(cfg *Config) { cfg.Quiesce = true })
	defer n.stop(t)
	waitFor(t, "the idle group to quiesce", func() bool { return n.g.Status().Quiesced && h.Quiesced() == 1 })
	for i := range 3 {
		d := payload(2, 8)
		r, err := n.g.ProposeWait(context.Background(), NewProposal(d, assign(d), false))
		if err != nil {
			t.Fatalf("propose %d to a quiesced group: %v", i, err)
		}
		if r.BaseOffset != int64(2*i) || n.g.HighWatermark() != int64(2*i+2) {
			t.Fatalf("proposal %d: base offset %d, high watermark %d", i, r.BaseOffset, n.g.HighWatermark())
		}
		waitFor(t, "the group to quiesce again", func() bool { return n.g.Status().Quiesced })
	}
}

// TestQuiesceIdleGroup: an idle group of three voters goes quiet on every
// replica with every follower in the ISR and the commit index known to
// all, then sends nothing at all; a read index and a proposal wake it (the
// proposal commits on every replica), and it goes quiet again after each.
func TestQuiesceIdleGroup(t *testing.T) {
	c := newQuietCluster(t)
	c.propose(5)
	l := c.waitQuiet("every replica to quiesce")
	if isr := l.g.Status().ISR; !slices.Equal(isr, c.ids) {
		t.Fatalf("quiesced leader's ISR %v, want %v", isr, c.ids)
	}
	for _, id := range c.ids {
		if q := c.host(id).Quiesced(); q != 1 {
			t.Fatalf("host %d counts %d quiesced groups, want 1", id, q)
		}
	}
	// Quiet means quiet: 40 ticks (four election timeouts) without a
	// single message, and nobody wakes or campaigns.
	term := l.g.Status().Term
	before := c.net.count()
	time.Sleep(40 * 5 * time.Millisecond)
	if msgs := c.net.sentSince(before); len(msgs) > 0 {
		t.Fatalf("a quiesced group sent %d messages, the first %v", len(msgs), msgs[0].GetType())
	}
	for _, n := range c.nodes {
		if st := n.g.Status(); !st.Quiesced || st.Term != term {
			t.Fatalf("node %d: %+v after the quiet period (term was %d)", n.id, st, term)
		}
	}
	// A read index (ConfirmLeader) wakes it and is confirmed by a quorum.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	err := l.g.ConfirmLeader(ctx)
	cancel()
	if err != nil {
		t.Fatalf("ConfirmLeader on a quiesced leader: %v", err)
	}
	c.waitQuiet("every replica to quiesce again after the read index")
	// A proposal wakes it and commits on every replica.
	hw := l.g.HighWatermark()
	c.propose(3)
	if l2 := c.waitQuiet("every replica to quiesce again after the proposals"); l2 != l || l2.g.HighWatermark() != hw+3 {
		t.Fatalf("after 3 proposals: leader %d, high watermark %d (was %d)", l2.id, l2.g.HighWatermark(), hw)
	}
}

// TestQuiesceWakesOnMessage: a quiesced follower that receives a message
// from someone other than its leader (here a pre-vote from the other
// follower) wakes, and asks the leader to heartbeat, which wakes the leader
// too; nobody is elected (the pre-vote is refused within the lease) and the
// group goes quiet again under the same leader and term.
func TestQuiesceWakesOnMessage(t *testing.T) {
	c := newQuietCluster(t)
	c.propose(2)
	l := c.waitQuiet("every replica to quiesce")
	st := l.g.Status()
	var f, other uint64
	for _, id := range c.ids {
		if id != l.id {
			if f == 0 {
				f = id
			} else {
				other = id
			}
		}
	}
	before := c.net.count()
	c.host(f).Deliver(7, &pb.Message{Type: pb.MsgPreVote.Enum(), From: new(other), To: new(f), Term: new(st.Term + 1),
		LogTerm: new(st.Term), Index: new(st.Commit)})
	waitFor(t, "the leader to heartbeat again", func() bool {
		for _, m := range c.net.sentSince(before) {
			if m.GetType() == pb.MsgHeartbeat && m.GetFrom() == l.id && !isQuiesceMarker(m.GetContext()) {
				return true
			}
		}
		return false
	})
	var woke bool
	for _, m := range c.net.sentSince(before) {
		if m.GetType() == pb.MsgHeartbeatResp && m.GetFrom() == f && m.GetTo() == l.id {
			woke = true
		}
	}
	if !woke {
		t.Fatal("the woken follower did not ask its leader to heartbeat")
	}
	l2 := c.waitQuiet("every replica to quiesce again")
	if st2 := l2.g.Status(); l2 != l || st2.Term != st.Term {
		t.Fatalf("after a stray pre-vote: leader %d term %d, was %d term %d", l2.id, st2.Term, l.id, st.Term)
	}
}

// TestQuiesceLostHeartbeat: a follower that misses the leader's last
// heartbeat keeps ticking; when its election clock runs out its pre-vote
// wakes the leader, which keeps its leadership (lease) and heartbeats, and
// the group then quiesces under the same leader and term.
func TestQuiesceLostHeartbeat(t *testing.T) {
	c := newQuietCluster(t)
	waitFor(t, "a leader", func() bool { return c.leader() != nil })
	l := c.leader()
	f := l.id%3 + 1
	dropped := 0
	c.net.mu.Lock()
	c.net.drop = func(m *pb.Message) bool {
		if dropped < 3 && m.GetTo() == f && m.GetType() == pb.MsgHeartbeat && isQuiesceMarker(m.GetContext()) {
			dropped++
			return true
		}
		return false
	}
	c.net.mu.Unlock()
	start := c.net.count() // after the first election
	c.propose(2)
	l2 := c.waitQuiet("every replica to quiesce")
	c.net.mu.Lock()
	n := dropped
	c.net.mu.Unlock()
	if n == 0 {
		t.Fatal("no quiesce heartbeat was dropped: the test tested nothing")
	}
	if l2 != l || l2.g.Status().Term != l.g.Status().Term {
		t.Fatalf("leadership changed after %d lost quiesce heartbeats", n)
	}
	for _, m := range c.net.sentSince(start) {
		if m.GetType() == pb.MsgVote {
			t.Fatalf("an election was held: %v from %d", m.GetType(), m.GetFrom())
		}
	}
}

// TestQuiesceLeaderNodeDies: when the node of a quiesced group's leader
// goes down, the followers (told by node liveness, not by missing
// heartbeats, which a quiesced leader does not send) elect a new leader,
// which keeps the dead node in its ISR for the lag period, drops it, and
// quiesces without it. When the node returns the leader wakes, catches it
// up, takes it back into the ISR and quiesces with all three.
func TestQuiesceLeaderNodeDies(t *testing.T) {
	c := newQuietCluster(t)
	c.propose(4)
	l := c.waitQuiet("every replica to quiesce")
	term := l.g.Status().Term
	c.isolate(l.id, true)
	var l2 *node
	waitFor(t, "a new leader", func() bool { l2 = c.leader(); return l2 != nil && l2 != l })
	if st := l2.g.Status(); st.Term <= term {
		t.Fatalf("new leader %d in term %d, old term %d", l2.id, st.Term, term)
	}
	c.propose(2)
	live := slices.DeleteFunc(slices.Clone(c.ids), func(id uint64) bool { return id == l.id })
	l3 := c.waitQuiet("the two live replicas to quiesce without the dead one")
	if isr := l3.g.Status().ISR; !slices.Equal(isr, live) {
		t.Fatalf("quiesced with the node down: ISR %v, want %v", isr, live)
	}
	// The node returns.
	c.isolate(l.id, false)
	waitFor(t, "all three in sync and quiesced", func() bool {
		lead := c.leader()
		if lead == nil || !slices.Equal(lead.g.Status().ISR, c.ids) {
			return false
		}
		for _, n := range c.nodes {
			if st := n.g.Status(); !st.Quiesced || n.g.HighWatermark() != lead.g.HighWatermark() {
				return false
			}
		}
		return true
	})
	lead := c.leader()
	sameLog(t, c.nodes, lead)
	if hw := lead.g.HighWatermark(); hw != 6 {
		t.Fatalf("high watermark %d after 6 one-record proposals", hw)
	}
}

// TestQuiesceLeaderGroupStopsOnLiveNode: the leader's group stops (its log
// failed, or was found damaged) while its node stays up, so node liveness
// says nothing; its last heartbeat wakes the quiesced followers, which
// elect a successor.
func TestQuiesceLeaderGroupStopsOnLiveNode(t *testing.T) {
	c := newQuietCluster(t)
	c.propose(4)
	l := c.waitQuiet("every replica to quiesce")
	l.cancel() // the group (and its log's writer) stop; the node stays "up" for the others
	var l2 *node
	waitFor(t, "a successor among the other replicas", func() bool {
		for _, n := range c.nodes {
			if n != l && n.g.Status().IsLeader {
				l2 = n
				return true
			}
		}
		return false
	})
	d := payload(1, 32)
	if _, err := l2.g.ProposeWait(context.Background(), NewProposal(d, assign(d), false)); err != nil {
		t.Fatalf("propose on the successor: %v", err)
	}
	if hw := l2.g.HighWatermark(); hw != 5 {
		t.Fatalf("high watermark %d on the successor, want 5", hw)
	}
}
