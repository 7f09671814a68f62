package raftlog

import (
	"bytes"
	"errors"
	"slices"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Quiescence (docs/DESIGN.md, "Quiescence and node liveness"): an idle
// group stops ticking and heartbeating; node liveness from the Host stands
// in for its heartbeats. Everything here runs on the group's goroutine.

// quiesceMarker is the context of the leader's last heartbeat before it
// quiesces, echoed by followers that quiesce with it. wakeMarker is the
// context of a follower's heartbeat response that asks the leader to wake:
// it declined to quiesce, or something else woke it. Neither reaches the
// leader's Raft, which reads heartbeat contexts as ReadIndex counters.
var (
	quiesceMarker = []byte("chronik-quiesce/1")
	wakeMarker    = []byte("chronik-wake/1")
)

func isQuiesceMarker(ctx []byte) bool { return len(ctx) > 0 && bytes.Equal(ctx, quiesceMarker) }

func isWakeMarker(ctx []byte) bool { return len(ctx) > 0 && bytes.Equal(ctx, wakeMarker) }

// peerSeen is what a group last saw of a node's liveness.
type peerSeen struct{ gen, downs uint64 }

func seenOf(ps PeerState) peerSeen { return peerSeen{ps.Gen, ps.Downs} }

// peerChanged tells the group that the Host's liveness table changed.
func (g *Group) peerChanged() {
	select {
	case g.peerc <- struct{}{}:
	default:
	}
}

// maybeLive reports whether node may be alive: without liveness reports
// (no Host, or a node never reported) every node may be.
func (g *Group) maybeLive(node uint64) bool {
	h := g.host.Load()
	if h == nil {
		return true
	}
	ps := h.Peer(node)
	return !ps.Known || ps.Up
}

// step hands a message from another node to Raft and wakes the group,
// unless it is a heartbeat response that does not ask for it: a follower
// agreeing to quiesce, or the late answer to an earlier heartbeat (it only
// says the follower follows). A marked heartbeat may quiesce a follower.
func (g *Group) step(s *runState, m *pb.Message) {
	switch m.GetType() {
	case pb.MsgHeartbeatResp:
		wake := isWakeMarker(m.GetContext())
		if wake || isQuiesceMarker(m.GetContext()) {
			m.Context = nil
		}
		if !wake {
			g.rawStep(s, m)
			return
		}
	case pb.MsgHeartbeat:
		if isQuiesceMarker(m.GetContext()) {
			g.rawStep(s, m)
			g.maybeQuiesceFollower(s, m)
			return
		}
	}
	if s.quiesced {
		g.wake(s, "message")
		if !s.leader && m.GetFrom() != s.lead {
			// Someone else is active in the group (a pre-vote, say): the
			// leader must heartbeat again before our election clock runs
			// out.
			g.wakeLeader(s, s.lead)
		}
	}
	g.rawStep(s, m)
}

func (g *Group) rawStep(s *runState, m *pb.Message) {
	if err := s.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		g.log.Debug("step", "err", err)
	}
}

// wake ends quiescence: the group ticks again. A leader heartbeats at
// once, so that quiesced followers tick again too.
func (g *Group) wake(s *runState, why string) {
	if !s.quiesced {
		return
	}
	s.quiesced = false
	g.quiet.Store(false)
	g.log.Debug("waking", "why", why)
	if s.leader {
		g.heartbeat(s, nil, false)
	}
	g.publish(s)
}

// heartbeat sends every live follower (of only, when not nil) a heartbeat
// with the commit index it may learn (Raft's rule: never past what it
// has), marked as the last before quiescing when marked.
func (g *Group) heartbeat(s *runState, only []uint64, marked bool) {
	commit := s.rn.BasicStatus().GetCommit()
	var msgs []*pb.Message
	var ctx []byte
	if marked {
		ctx = quiesceMarker
	}
	s.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == g.cfg.NodeID || only != nil && !slices.Contains(only, id) || !g.maybeLive(id) {
			return
		}
		msgs = append(msgs, &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: new(id), From: new(g.cfg.NodeID),
			Term: new(s.term), Commit: new(min(pr.Match, commit)), Context: ctx})
	})
	if len(msgs) > 0 {
		g.cfg.Transport.Send(g.cfg.GroupID, msgs)
	}
}

// wakeLeader asks lead to heartbeat: a heartbeat response marked to wake
// it (harmless to an awake leader).
func (g *Group) wakeLeader(s *runState, lead uint64) {
	if lead == raft.None || lead == g.cfg.NodeID || s.term == 0 {
		return
	}
	g.cfg.Transport.Send(g.cfg.GroupID, []*pb.Message{{Type: pb.MsgHeartbeatResp.Enum(), To: new(lead),
		From: new(g.cfg.NodeID), Term: new(s.term), Context: wakeMarker}})
}

// maybeQuiesce quiesces an idle leader: nothing proposed or in flight,
// everything committed and applied, and every follower either live and
// fully caught up, or down and already out of the ISR. It tells the live
// followers with a last, marked heartbeat that carries the commit index.
func (g *Group) maybeQuiesce(s *runState) bool {
	if !g.cfg.Quiesce || !s.leader || s.quiesced ||
		len(s.proposed) > 0 || len(s.waiting) > 0 || len(s.copiesq) > 0 || len(s.reads) > 0 || s.inflight > 0 ||
		len(g.props) > 0 || len(g.inbox) > 0 || len(g.transferc) > 0 || len(g.readc) > 0 || s.rn.HasReady() {
		return false
	}
	bs := s.rn.BasicStatus()
	commit := bs.GetCommit()
	if bs.LeadTransferee != raft.None || bs.Applied != commit || s.applied != commit {
		return false
	}
	h := g.host.Load()
	ok := true
	followers := s.scratch[:0]
	s.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		switch {
		case !ok:
		case id == g.cfg.NodeID:
			// Its whole log durable and committed.
			ok = pr.Match == commit
		case h == nil:
			ok = false
		default:
			ps := h.Peer(id)
			live := ps.Known && ps.Up
			switch {
			case live && ps.Gen == s.seen[id].gen && pr.Match == commit && pr.State == tracker.StateReplicate:
				followers = append(followers, id)
			case !live && !slices.Contains(s.isr, id):
				// Down and out of the ISR: its return wakes us.
			default:
				ok = false
			}
		}
	})
	s.scratch = followers
	if !ok {
		return false
	}
	// Caught-up followers are in the ISR before the leader goes quiet.
	if s.caughtUp != nil {
		g.trackISR(s)
	}
	if len(followers) > 0 {
		g.heartbeat(s, followers, true)
	}
	s.quiesced = true
	g.quiet.Store(true)
	g.publish(s)
	return true
}

// maybeQuiesceFollower quiesces a follower on its leader's marked
// heartbeat (just stepped, so its election clock is fresh) if it follows
// that leader in that term with that commit index and the leader's node is
// up as it last saw it. Otherwise it stays awake (or wakes), and its
// heartbeat response goes out unmarked, which wakes the leader.
func (g *Group) maybeQuiesceFollower(s *runState, m *pb.Message) {
	h := g.host.Load()
	ok := g.cfg.Quiesce && !s.leader && h != nil
	if ok {
		ps := h.Peer(m.GetFrom())
		ok = ps.Known && ps.Up && ps.Downs == s.seen[m.GetFrom()].downs
	}
	if ok {
		bs := s.rn.BasicStatus()
		ok = bs.RaftState == raft.StateFollower && bs.Lead == m.GetFrom() && bs.GetTerm() == m.GetTerm() &&
			bs.GetCommit() == m.GetCommit()
	}
	if !ok {
		g.wake(s, "declined to quiesce")
		return
	}
	if !s.quiesced {
		s.quiesced = true
		g.quiet.Store(true)
		g.publish(s)
	}
}

// rememberPeers records the liveness generation of every voter's node, when
// the group's leadership changed: later changes are news.
func (g *Group) rememberPeers(s *runState) {
	h := g.host.Load()
	if h == nil {
		return
	}
	s.rn.WithProgress(func(id uint64, _ raft.ProgressType, _ tracker.Progress) {
		s.seen[id] = seenOf(h.Peer(id))
	})
}

// peersChanged reacts to liveness changes of the nodes this group depends
// on. A leader wakes when a follower's node went down or came back, and
// reports it unreachable (Raft probes it again before streaming appends;
// the leader quiesces again once it answered, or once it is out of the
// ISR). A follower whose leader's node went down since it last looked (or
// restarted, which is reported as down and up) forgets the leader, so that it grants pre-votes at once, and wakes; if it was
// quiesced its election clock moves on by the time the leader's node had
// been silent, since the node heartbeat stood in for the leader's.
func (g *Group) peersChanged(s *runState) {
	h := g.host.Load()
	if h == nil {
		return
	}
	ids := s.scratch[:0]
	s.rn.WithProgress(func(id uint64, _ raft.ProgressType, _ tracker.Progress) {
		if id != g.cfg.NodeID {
			ids = append(ids, id)
		}
	})
	s.scratch = ids
	var (
		followerChanged bool
		leaderLost      bool
		lead            = s.lead
		leadState       PeerState
	)
	for _, id := range ids {
		ps := h.Peer(id)
		was := s.seen[id]
		if ps.Gen == was.gen {
			continue
		}
		s.seen[id] = seenOf(ps)
		switch {
		case s.leader:
			followerChanged = true
			s.rn.ReportUnreachable(id)
		case id == lead && ps.Downs != was.downs:
			// Only going away counts: the leader's node merely coming up
			// (its first report, the control connection admitted after
			// an append on the bulk lane) is no loss.
			leaderLost, leadState = true, ps
		}
	}
	if followerChanged {
		g.wake(s, "a follower's node went down or came back")
	}
	if !leaderLost {
		return
	}
	wasQuiesced := s.quiesced
	g.log.Debug("the leader's node went down or restarted: forgetting the leader", "lead", lead, "up", leadState.Up)
	if err := s.rn.ForgetLeader(); err != nil {
		g.log.Debug("forget leader", "err", err)
	}
	g.wake(s, "the leader's node went down")
	if wasQuiesced && g.cfg.ElectionTicks > 1 {
		for range min(int(leadState.Silent/h.tick), g.cfg.ElectionTicks-1) {
			s.rn.Tick()
		}
	}
	if leadState.Up {
		g.wakeLeader(s, lead)
	}
}
