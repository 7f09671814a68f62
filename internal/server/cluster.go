package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/transport"
)

// metaVoters is the metadata group's initial configuration: every
// configured peer, or this node alone.
func (s *Server) metaVoters() []uint64 {
	if !s.cfg.IsCluster() {
		return []uint64{uint64(s.cfg.NodeID)}
	}
	var ids []uint64
	for _, p := range s.cfg.Peers {
		ids = append(ids, uint64(p.ID))
	}
	slices.Sort(ids)
	return ids
}

// replicaLagTicks is replica.lag.time.max.ms in Raft ticks (100 ms).
func (s *Server) replicaLagTicks() int {
	if s.cfg.ReplicaLagMaxMs <= 0 {
		return 0 // the driver's default (30 s)
	}
	return max(int(s.cfg.ReplicaLagMaxMs/100), 1)
}

// peersKey names the cluster in the transport's handshake before the
// metadata log (which holds the Kafka cluster id) can replicate: nodes
// started from the same peer list agree on it, a node of another cluster
// does not.
func peersKey(peers []uint64, addrs map[uint64]string) string {
	var b strings.Builder
	for _, id := range peers {
		b.WriteString(strconv.FormatUint(id, 10) + "=" + addrs[id] + ";")
	}
	sum := sha256.Sum256([]byte(b.String()))
	return "peers-" + hex.EncodeToString(sum[:8])
}

// startTransport opens the node-to-node listener and starts the transport.
func (s *Server) startTransport() error {
	ln, err := net.Listen("tcp", s.cfg.RaftBind)
	if err != nil {
		return fmt.Errorf("raft listener on %s: %w", s.cfg.RaftBind, err)
	}
	addrs := map[uint64]string{}
	for _, p := range s.cfg.Peers {
		addrs[uint64(p.ID)] = p.Raft
	}
	tr, err := transport.New(transport.Options{NodeID: uint64(s.cfg.NodeID), ClusterID: peersKey(s.metaVoters(), addrs),
		Peers: addrs, Deliver: s.host.Deliver, Logger: s.log, Registerer: s.metrics.Registry})
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.tr = tr
	s.leaderc = make(chan leaderReport, 4096)
	s.groups.Go("raft-transport", true, func(ctx context.Context) error {
		defer ln.Close()
		return tr.Run(ctx, ln)
	})
	s.log.Info("serving raft", "listener", ln.Addr().String(), "peers", len(s.cfg.Peers))
	return nil
}

// leaderReport is a partition leadership this node won.
type leaderReport struct {
	topic   string
	topicID [16]byte
	index   int32
	term    uint64
	isr     []int32
	group   *partition.Partition
}

// reportLeader queues a report; it runs on the partition's Raft goroutine
// and must not block.
func (s *Server) reportLeader(r leaderReport) {
	select {
	case s.leaderc <- r:
	default:
		s.log.Warn("partition leadership report dropped (queue full); nodes that do not host it learn it at its next election",
			"topic", r.topic, "partition", r.index)
	}
}

// reportLeaders records won elections in the metadata log, so that nodes
// without a replica of a partition can name its leader (the cluster view).
// A report whose leadership is already gone is not sent.
func (s *Server) reportLeaders(ctx context.Context) error {
	for {
		var r leaderReport
		select {
		case <-ctx.Done():
			return nil
		case r = <-s.leaderc:
		}
		for attempt := 0; ; attempt++ {
			st := r.group.Group.Status()
			if !st.IsLeader || st.Term != r.term {
				break
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := s.ProposeMeta(pctx, &meta.Command{Op: meta.OpPartitionLeader, Topic: r.topic, TopicID: r.topicID,
				Partition: r.index, Leader: s.cfg.NodeID, Epoch: int32(r.term), ISR: r.isr})
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			if attempt%10 == 0 {
				s.log.Warn("recording partition leadership", "topic", r.topic, "partition", r.index, "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// controlledShutdownWait bounds how long a stopping node waits for its
// leaderships to move.
const controlledShutdownWait = 10 * time.Second

// moveLeadershipAway is the controlled shutdown (decision 16): before a
// node stops, every group it leads hands leadership to an in-sync replica,
// so clients find the new leader at once instead of after an election
// timeout, and a rolling restart fails no acks=all request. Standalone has
// nobody to hand to.
func (s *Server) moveLeadershipAway(ctx context.Context) {
	if !s.cfg.IsCluster() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, controlledShutdownWait)
	defer cancel()
	type led struct {
		name   string
		g      interface{ TransferLeadership(uint64) }
		status func() (bool, []uint64)
	}
	var groups []led
	s.mu.RLock()
	for name, p := range s.parts {
		groups = append(groups, led{name, p.Group, func() (bool, []uint64) { st := p.Group.Status(); return st.IsLeader, st.ISR }})
	}
	s.mu.RUnlock()
	groups = append(groups, led{metaLogName, s.metaGroup, func() (bool, []uint64) { st := s.metaGroup.Status(); return st.IsLeader, st.ISR }})
	start := time.Now()
	moved := 0
	for {
		pending := 0
		for _, l := range groups {
			isLeader, isr := l.status()
			var others []uint64
			for _, id := range isr {
				if id != uint64(s.cfg.NodeID) {
					others = append(others, id)
				}
			}
			if !isLeader || len(others) == 0 {
				continue // nobody in sync to take it: an election will
			}
			pending++
			// Rotate over the candidates: a transfer to one that cannot
			// take it times out inside Raft.
			l.g.TransferLeadership(others[int(time.Since(start)/time.Second)%len(others)])
		}
		if pending == 0 {
			s.log.Info("leadership moved away before stopping", "took", time.Since(start).Round(time.Millisecond))
			return
		}
		if moved == 0 {
			s.log.Info("moving leadership away before stopping", "groups", pending)
			moved = pending
		}
		select {
		case <-ctx.Done():
			s.log.Warn("stopping with leaderships not moved (no in-sync replica took them in time)", "groups", pending)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// balanceLeaders returns leadership to each partition's preferred replica
// (its first) once that replica is in sync (decision 16; Kafka's
// auto.leader.rebalance.enable): every leader.imbalance.check.interval
// seconds, each partition this node leads but does not prefer is handed
// over.
func (s *Server) balanceLeaders(ctx context.Context) error {
	held := map[string]*handback{}
	return every(ctx, s.balanceInterval(), func() { s.preferLeaders(nil, held) })
}

// balanceInterval is leader.imbalance.check.interval.seconds.
func (s *Server) balanceInterval() time.Duration {
	if d := time.Duration(s.cfg.LeaderImbalanceCheckSeconds) * time.Second; d > 0 {
		return d
	}
	return 300 * time.Second
}

// preferLeaders hands each partition this node leads (of only, when not
// nil) to its preferred replica if that one is in sync, and returns how
// many it handed over.
//
// With held (the balancer), a partition handed back is not handed back
// again until a wait that doubles (from one check interval to ten minutes)
// each time it had to be: a preferred replica that cannot keep leadership
// (its appends fail, say, on a full disk) loses it within an election
// timeout, and handing it back every interval would keep the partition
// leaderless most of the time. A partition whose preferred replica leads
// when the balancer looks is forgotten.
func (s *Server) preferLeaders(only func(topic string, index int32) bool, held map[string]*handback) int {
	type cand struct {
		p    *partition.Partition
		pref int32
	}
	var moves []cand
	s.mu.RLock()
	for _, p := range s.parts {
		if only != nil && !only(p.Topic, p.Index) {
			continue
		}
		t, ok := s.meta.Topic(p.Topic)
		if !ok || int(p.Index) >= len(t.Partitions) || len(t.Partitions[p.Index].Replicas) == 0 {
			continue
		}
		pref := t.Partitions[p.Index].Replicas[0]
		st := p.Group.Status()
		key := p.Topic + "\x00" + strconv.Itoa(int(p.Index))
		if held != nil && st.Leader == uint64(pref) {
			delete(held, key)
		}
		if st.IsLeader && pref != s.cfg.NodeID && slices.Contains(st.ISR, uint64(pref)) {
			if held != nil {
				h := held[key]
				if h == nil {
					h = &handback{}
					held[key] = h
				}
				if time.Now().Before(h.next) {
					continue
				}
				h.wait = min(max(2*h.wait, s.balanceInterval()), 10*time.Minute)
				h.next = time.Now().Add(h.wait)
			}
			moves = append(moves, cand{p, pref})
		}
	}
	s.mu.RUnlock()
	for _, m := range moves {
		s.log.Info("returning leadership to the preferred replica", "topic", m.p.Topic, "partition", m.p.Index, "to", m.pref)
		m.p.Group.TransferLeadership(uint64(m.pref))
	}
	return len(moves)
}

// handback is the balancer's wait before handing a partition back to its
// preferred replica again.
type handback struct {
	wait time.Duration
	next time.Time
}

// electPreferredFor bounds how long a leader keeps trying to carry out an
// ElectLeaders (preferred) request.
const electPreferredFor = 30 * time.Second

// electPreferred carries out an ElectLeaders (preferred) request where this
// node leads the partition. One attempt is not enough: Raft aborts a
// leadership transfer whose transferee did not catch up within an election
// timeout, and the leader's ISR may not yet list a replica that has just
// caught up. So it retries every second while this node still leads, the
// preferred replica is another node, and the time is not up.
func (s *Server) electPreferred(topic string, index int32) {
	ctx := s.groups.Context()
	only := func(t string, i int32) bool { return t == topic && i == index }
	deadline := time.Now().Add(electPreferredFor)
	for {
		p, ok := s.Partition(topic, index)
		t, known := s.meta.Topic(topic)
		if !ok || !known || int(index) >= len(t.Partitions) || len(t.Partitions[index].Replicas) == 0 ||
			t.Partitions[index].Replicas[0] == s.cfg.NodeID || !p.Group.Status().IsLeader {
			return
		}
		s.preferLeaders(only, nil)
		if time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// clusterNotReady says why a serving cluster node is not ready yet: the
// signal a rolling restart waits for before it stops the next node. Ready
// means the metadata group has a leader and this node has applied what it
// knows committed, and every local replica knows its leader and has
// applied everything committed (a follower that restarted has caught up).
func (s *Server) clusterNotReady() []string {
	var reasons []string
	if st := s.metaGroup.Status(); st.Leader == 0 {
		reasons = append(reasons, "metadata group has no leader")
	} else if st.Applied < st.Commit {
		reasons = append(reasons, fmt.Sprintf("metadata log catching up: applied %d of %d", st.Applied, st.Commit))
	}
	noLeader, behind := 0, 0
	s.mu.RLock()
	for _, p := range s.parts {
		st := p.Group.Status()
		switch {
		case st.Leader == 0:
			noLeader++
		case st.Applied < st.Commit:
			behind++
		}
	}
	s.mu.RUnlock()
	if noLeader > 0 {
		reasons = append(reasons, fmt.Sprintf("%d local partitions have no leader", noLeader))
	}
	if behind > 0 {
		reasons = append(reasons, fmt.Sprintf("%d local partitions catching up", behind))
	}
	return reasons
}

// ErrDataLost is the start-up refusal of a node whose data directory was
// lost while the cluster knows it.
var ErrDataLost = errors.New("this node's data directory is empty, but the running cluster already registered this node id")

// refuseIfWiped keeps a node that lost its data from voting. Raft's vote
// trusts each voter's log: a voter whose log was wiped would vote for any
// candidate, and could elect one that lacks entries it had itself
// acknowledged, losing committed data. So a node whose metadata log is
// empty asks the peers that already serve whether the cluster registered
// its id before; if so it refuses to start (replace the node instead:
// docs/CLUSTER.md). A node of a cluster being formed finds no peer
// serving, or finds its id unregistered, and starts.
func (s *Server) refuseIfWiped(ctx context.Context) error {
	last, err := s.metaLog.LastIndex()
	if err != nil || last > 0 {
		return err
	}
	var seeds []string
	for _, p := range s.cfg.Peers {
		if p.ID != s.cfg.NodeID {
			seeds = append(seeds, p.Kafka)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DialTimeout(time.Second), kgo.RequestRetries(0),
		kgo.RetryTimeout(2*time.Second), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(qctx, cl)
	if err != nil {
		s.log.Info("data directory is new and no peer serves yet: joining as a founding member", "peers", len(seeds))
		return nil
	}
	for _, b := range md.Brokers {
		if b.NodeID == s.cfg.NodeID {
			return fmt.Errorf("%w (cluster %s): a node that lost its data must not vote, or committed records could be lost; "+
				"restore the data directory, or replace the node as docs/CLUSTER.md describes", ErrDataLost, strOr(md.ClusterID, "?"))
		}
	}
	s.log.Info("data directory is new; the running cluster has not registered this node id yet: joining", "cluster_id", strOr(md.ClusterID, "?"))
	return nil
}

func strOr(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}
