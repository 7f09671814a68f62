package group

import (
	"bytes"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Groups is the state machine of every group one coordinator owns. Its
// methods run on one goroutine; replies are called from them (possibly
// later, from Tick or from another member's request).
type Groups struct {
	cfg    Config
	cc     ConsumerConfig
	groups map[string]*Group
	// store persists records and calls then once they are durable (or
	// failed); the coordinator provides it.
	store func(recs []Record, then func(error))
	// newMemberID makes a member id for a client (random in production,
	// deterministic in tests).
	newMemberID func(clientID string) string
	// last holds the latest durable group and consumer-group state record
	// of each group, by key: with the committed offsets, it is everything a
	// rewrite of the log must keep (LiveRecords).
	last map[string]Record
}

// NewGroups returns an empty state machine.
func NewGroups(cfg Config, cc ConsumerConfig, store func([]Record, func(error)), newMemberID func(string) string) *Groups {
	return &Groups{cfg: cfg, cc: cc, groups: map[string]*Group{}, store: store, newMemberID: newMemberID, last: map[string]Record{}}
}

// Get returns a group.
func (s *Groups) Get(id string) (*Group, bool) {
	g, ok := s.groups[id]
	return g, ok
}

// All returns every group, by id.
func (s *Groups) All() []*Group {
	out := make([]*Group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *Group) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

func (s *Groups) getOrCreate(id string, now time.Time) *Group {
	g, ok := s.groups[id]
	if !ok {
		g = newGroup(id, now)
		s.groups[id] = g
	}
	return g
}

// JoinRequest is a JoinGroup request.
type JoinRequest struct {
	Group            string
	MemberID         string
	InstanceID       *string
	ClientID         string
	ClientHost       string
	ProtocolType     string
	Protocols        []Protocol
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// RequireKnownMemberID is KIP-394 (JoinGroup v4+): a member without an
	// id gets one with MEMBER_ID_REQUIRED and joins again with it.
	RequireKnownMemberID bool
}

// JoinMember is one member in the leader's JoinGroup response.
type JoinMember struct {
	ID         string
	InstanceID *string
	Metadata   []byte
}

// JoinResult is a JoinGroup response.
type JoinResult struct {
	Err          *kerr.Error
	Generation   int32
	ProtocolType string
	Protocol     string
	Leader       string
	MemberID     string
	Members      []JoinMember // only for the leader
	// SkipAssignment tells a static leader that rejoined without changes
	// not to compute a new assignment (JoinGroup v9).
	SkipAssignment bool
}

// JoinWaiter is a pending JoinGroup.
type JoinWaiter struct{ reply func(JoinResult) }

// SyncWaiter is a pending SyncGroup.
type SyncWaiter struct{ reply func(SyncResult) }

// Join handles a JoinGroup; reply runs once, now or when the rebalance it
// joined completes.
func (s *Groups) Join(req JoinRequest, now time.Time, reply func(JoinResult)) {
	fail := func(e *kerr.Error) { reply(JoinResult{Err: e, Generation: -1, MemberID: req.MemberID}) }
	switch {
	case req.Group == "":
		fail(kerr.InvalidGroupID)
		return
	case req.SessionTimeout < s.cfg.MinSessionTimeout || req.SessionTimeout > s.cfg.MaxSessionTimeout:
		fail(kerr.InvalidSessionTimeout)
		return
	case req.ProtocolType == "" || len(req.Protocols) == 0:
		fail(kerr.InconsistentGroupProtocol)
		return
	}
	g, exists := s.groups[req.Group]
	if exists && g.Consumer != nil {
		fail(kerr.InconsistentGroupProtocol) // a KIP-848 group
		return
	}
	if !exists {
		if req.MemberID != "" {
			fail(kerr.UnknownMemberID)
			return
		}
		g = s.getOrCreate(req.Group, now)
	}
	if g.State == Dead {
		fail(kerr.CoordinatorNotAvailable)
		return
	}
	if g.ProtocolType != "" && !g.IsEmpty() && (g.ProtocolType != req.ProtocolType || !s.supportsCommon(g, req.Protocols)) {
		fail(kerr.InconsistentGroupProtocol)
		return
	}
	if req.MemberID == "" {
		s.joinUnknown(g, req, now, reply)
		return
	}
	s.joinKnown(g, req, now, reply)
}

// supportsCommon reports whether protocols share a name with every member.
func (s *Groups) supportsCommon(g *Group, protocols []Protocol) bool {
	for _, p := range protocols {
		all := true
		for _, m := range g.Members {
			if !hasProtocol(m.Protocols, p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func hasProtocol(ps []Protocol, name string) bool {
	return slices.ContainsFunc(ps, func(p Protocol) bool { return p.Name == name })
}

func (s *Groups) joinUnknown(g *Group, req JoinRequest, now time.Time, reply func(JoinResult)) {
	if len(g.Members)+len(g.pending) >= s.cfg.MaxSize {
		reply(JoinResult{Err: kerr.GroupMaxSizeReached, Generation: -1})
		return
	}
	id := s.newMemberID(req.ClientID)
	if req.InstanceID != nil {
		if old, ok := g.static[*req.InstanceID]; ok {
			s.replaceStatic(g, old, id, req, now, reply)
			return
		}
		s.addMember(g, id, req, now, reply)
		return
	}
	if req.RequireKnownMemberID {
		g.pending[id] = now.Add(req.SessionTimeout)
		reply(JoinResult{Err: kerr.MemberIDRequired, Generation: -1, MemberID: id})
		return
	}
	s.addMember(g, id, req, now, reply)
}

// replaceStatic gives a static member's place to its new incarnation: the
// old member id is fenced. A stable group keeps its assignment and does not
// rebalance when the protocols are unchanged (KIP-345).
func (s *Groups) replaceStatic(g *Group, oldID, newID string, req JoinRequest, now time.Time, reply func(JoinResult)) {
	old := g.Members[oldID]
	m := &Member{ID: newID, InstanceID: req.InstanceID, ClientID: req.ClientID, ClientHost: req.ClientHost,
		SessionTimeout: req.SessionTimeout, RebalanceTimeout: req.RebalanceTimeout, Protocols: req.Protocols, lastSeen: now}
	if old != nil {
		m.Assignment = old.Assignment
		if old.join != nil {
			old.join.reply(JoinResult{Err: kerr.FencedInstanceID, Generation: -1, MemberID: oldID})
		}
		if old.sync != nil {
			old.sync.reply(SyncResult{Err: kerr.FencedInstanceID})
		}
		delete(g.Members, oldID)
	}
	g.Members[newID] = m
	g.static[*req.InstanceID] = newID
	if g.Leader == oldID {
		g.Leader = newID
	}
	unchanged := old != nil && protocolsEqual(old.Protocols, req.Protocols)
	if g.State == Stable && unchanged {
		// Persist the new member id so that a coordinator failover keeps
		// fencing the old one, then answer with the current generation.
		s.persistGroup(g, func(err error) {
			if err != nil {
				reply(JoinResult{Err: kerr.UnknownServerError, Generation: -1})
				return
			}
			res := s.joinResultFor(g, m)
			if m.ID == g.Leader {
				res.SkipAssignment = true
			}
			reply(res)
		})
		return
	}
	m.join = &JoinWaiter{reply: reply}
	s.prepareRebalance(g, now)
	s.tryCompleteJoin(g, now)
}

func protocolsEqual(a, b []Protocol) bool {
	return slices.EqualFunc(a, b, func(x, y Protocol) bool { return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata) })
}

func (s *Groups) addMember(g *Group, id string, req JoinRequest, now time.Time, reply func(JoinResult)) {
	m := &Member{ID: id, InstanceID: req.InstanceID, ClientID: req.ClientID, ClientHost: req.ClientHost,
		SessionTimeout: req.SessionTimeout, RebalanceTimeout: req.RebalanceTimeout, Protocols: req.Protocols, lastSeen: now,
		join: &JoinWaiter{reply: reply}}
	g.Members[id] = m
	if req.InstanceID != nil {
		g.static[*req.InstanceID] = id
	}
	if g.ProtocolType == "" || len(g.Members) == 1 {
		g.ProtocolType = req.ProtocolType
	}
	s.prepareRebalance(g, now)
	s.tryCompleteJoin(g, now)
}

func (s *Groups) joinKnown(g *Group, req JoinRequest, now time.Time, reply func(JoinResult)) {
	if _, ok := g.pending[req.MemberID]; ok {
		delete(g.pending, req.MemberID)
		s.addMember(g, req.MemberID, req, now, reply)
		return
	}
	// Kafka checks static fencing before membership: the old incarnation
	// of a static member learns it was fenced.
	if e := s.checkInstance(g, req.InstanceID, req.MemberID); e != nil {
		reply(JoinResult{Err: e, Generation: -1, MemberID: req.MemberID})
		return
	}
	m, ok := g.Members[req.MemberID]
	if !ok {
		reply(JoinResult{Err: kerr.UnknownMemberID, Generation: -1, MemberID: req.MemberID})
		return
	}
	m.lastSeen = now
	changed := !protocolsEqual(m.Protocols, req.Protocols)
	switch g.State {
	case PreparingRebalance:
		s.updateMember(m, req, reply)
		s.tryCompleteJoin(g, now)
	case CompletingRebalance:
		if !changed {
			// The member lost the response: give it again.
			reply(s.joinResultFor(g, m))
			return
		}
		s.updateMember(m, req, reply)
		s.prepareRebalance(g, now)
		s.tryCompleteJoin(g, now)
	case Stable:
		if m.ID == g.Leader || changed {
			s.updateMember(m, req, reply)
			s.prepareRebalance(g, now)
			s.tryCompleteJoin(g, now)
			return
		}
		reply(s.joinResultFor(g, m))
	default:
		reply(JoinResult{Err: kerr.UnknownMemberID, Generation: -1, MemberID: req.MemberID})
	}
}

func (s *Groups) updateMember(m *Member, req JoinRequest, reply func(JoinResult)) {
	m.Protocols, m.SessionTimeout, m.RebalanceTimeout = req.Protocols, req.SessionTimeout, req.RebalanceTimeout
	m.ClientID, m.ClientHost = req.ClientID, req.ClientHost
	if m.join != nil {
		// A newer join replaces an older one from the same member.
		m.join.reply(JoinResult{Err: kerr.UnknownMemberID, Generation: -1, MemberID: m.ID})
	}
	m.join = &JoinWaiter{reply: reply}
}

// checkInstance fences a member id that no longer holds its instance id.
func (s *Groups) checkInstance(g *Group, instance *string, memberID string) *kerr.Error {
	if instance == nil {
		return nil
	}
	if owner, ok := g.static[*instance]; ok && owner != memberID {
		return kerr.FencedInstanceID
	}
	return nil
}

// joinResultFor is the JoinGroup response of a member in the current
// generation.
func (s *Groups) joinResultFor(g *Group, m *Member) JoinResult {
	res := JoinResult{Generation: g.Generation, ProtocolType: g.ProtocolType, Protocol: g.Protocol, Leader: g.Leader, MemberID: m.ID}
	if m.ID == g.Leader {
		for _, id := range g.memberIDs() {
			o := g.Members[id]
			res.Members = append(res.Members, JoinMember{ID: o.ID, InstanceID: o.InstanceID, Metadata: o.metadata(g.Protocol)})
		}
	}
	return res
}

// prepareRebalance moves the group to PreparingRebalance, failing pending
// syncs, and sets when the rebalance must end.
func (s *Groups) prepareRebalance(g *Group, now time.Time) {
	if g.State == PreparingRebalance {
		return
	}
	if s.cfg.OnRebalance != nil {
		s.cfg.OnRebalance("classic")
	}
	if g.State == CompletingRebalance {
		for _, m := range g.Members {
			if m.sync != nil {
				m.sync.reply(SyncResult{Err: kerr.RebalanceInProgress})
				m.sync = nil
			}
		}
	}
	var timeout time.Duration
	for _, m := range g.Members {
		timeout = max(timeout, m.RebalanceTimeout)
	}
	g.initialDelay = g.State == Empty && s.cfg.InitialRebalanceDelay > 0
	if g.initialDelay {
		timeout = min(s.cfg.InitialRebalanceDelay, timeout)
	}
	g.rebalanceDeadline = now.Add(timeout)
	g.setState(PreparingRebalance, now)
}

// tryCompleteJoin completes the rebalance when every member has rejoined
// (not during the initial delay of a new group, which waits for more).
func (s *Groups) tryCompleteJoin(g *Group, now time.Time) {
	if g.State != PreparingRebalance || g.initialDelay || len(g.pending) > 0 {
		return
	}
	for _, m := range g.Members {
		if m.join == nil {
			return
		}
	}
	s.completeJoin(g, now)
}

// completeJoin ends PreparingRebalance: members that did not rejoin leave,
// the generation advances, the leader gets the members.
func (s *Groups) completeJoin(g *Group, now time.Time) {
	for id, m := range g.Members {
		if m.join == nil {
			s.removeMember(g, id)
		}
	}
	g.Generation++
	if len(g.Members) == 0 {
		g.Protocol, g.Leader = "", ""
		g.setState(Empty, now)
		s.persistGroup(g, func(error) {})
		return
	}
	g.Protocol = s.selectProtocol(g)
	if _, ok := g.Members[g.Leader]; !ok {
		g.Leader = g.memberIDs()[0]
	}
	g.setState(CompletingRebalance, now)
	for _, id := range g.memberIDs() {
		m := g.Members[id]
		w := m.join
		m.join = nil
		m.lastSeen = now
		w.reply(s.joinResultFor(g, m))
	}
}

// selectProtocol picks the protocol every member supports that most
// members prefer (Kafka's vote; ties broken by the leader candidate's order).
func (s *Groups) selectProtocol(g *Group) string {
	ids := g.memberIDs()
	var candidates []string
	for _, p := range g.Members[ids[0]].Protocols {
		all := true
		for _, id := range ids {
			if !hasProtocol(g.Members[id].Protocols, p.Name) {
				all = false
				break
			}
		}
		if all {
			candidates = append(candidates, p.Name)
		}
	}
	votes := map[string]int{}
	for _, id := range ids {
		for _, p := range g.Members[id].Protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func (s *Groups) removeMember(g *Group, id string) {
	m := g.Members[id]
	if m == nil {
		return
	}
	if m.InstanceID != nil && g.static[*m.InstanceID] == id {
		delete(g.static, *m.InstanceID)
	}
	if m.join != nil {
		m.join.reply(JoinResult{Err: kerr.UnknownMemberID, Generation: -1, MemberID: id})
	}
	if m.sync != nil {
		m.sync.reply(SyncResult{Err: kerr.UnknownMemberID})
	}
	delete(g.Members, id)
}

// SyncRequest is a SyncGroup request.
type SyncRequest struct {
	Group        string
	Generation   int32
	MemberID     string
	InstanceID   *string
	ProtocolType *string
	Protocol     *string
	Assignments  map[string][]byte // from the leader
}

// SyncResult is a SyncGroup response.
type SyncResult struct {
	Err          *kerr.Error
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// Sync handles a SyncGroup.
func (s *Groups) Sync(req SyncRequest, now time.Time, reply func(SyncResult)) {
	g, ok := s.groups[req.Group]
	if !ok || g.Consumer != nil {
		reply(SyncResult{Err: kerr.UnknownMemberID})
		return
	}
	m, ok := g.Members[req.MemberID]
	switch {
	case s.checkInstance(g, req.InstanceID, req.MemberID) != nil:
		reply(SyncResult{Err: kerr.FencedInstanceID})
		return
	case !ok:
		reply(SyncResult{Err: kerr.UnknownMemberID})
		return
	case req.Generation != g.Generation:
		reply(SyncResult{Err: kerr.IllegalGeneration})
		return
	case req.ProtocolType != nil && *req.ProtocolType != g.ProtocolType, req.Protocol != nil && *req.Protocol != g.Protocol:
		reply(SyncResult{Err: kerr.InconsistentGroupProtocol})
		return
	}
	m.lastSeen = now
	switch g.State {
	case PreparingRebalance:
		reply(SyncResult{Err: kerr.RebalanceInProgress})
	case Stable:
		reply(SyncResult{ProtocolType: g.ProtocolType, Protocol: g.Protocol, Assignment: m.Assignment})
	case CompletingRebalance:
		m.sync = &SyncWaiter{reply: reply}
		if req.MemberID != g.Leader {
			return
		}
		gen := g.Generation
		for id, o := range g.Members {
			o.Assignment = req.Assignments[id]
		}
		s.persistGroup(g, func(err error) {
			if g.Generation != gen || g.State != CompletingRebalance {
				return // a new rebalance started meanwhile; its syncs were answered
			}
			if err != nil {
				for _, o := range g.Members {
					if o.sync != nil {
						o.sync.reply(SyncResult{Err: kerr.CoordinatorNotAvailable})
						o.sync = nil
					}
				}
				s.prepareRebalance(g, now)
				return
			}
			g.setState(Stable, now)
			for _, o := range g.Members {
				if o.sync != nil {
					o.sync.reply(SyncResult{ProtocolType: g.ProtocolType, Protocol: g.Protocol, Assignment: o.Assignment})
					o.sync = nil
				}
			}
		})
	default:
		reply(SyncResult{Err: kerr.UnknownMemberID})
	}
}

// Heartbeat handles a Heartbeat.
func (s *Groups) Heartbeat(group, memberID string, instance *string, generation int32, now time.Time) *kerr.Error {
	g, ok := s.groups[group]
	if !ok || g.Consumer != nil {
		return kerr.UnknownMemberID
	}
	m, ok := g.Members[memberID]
	switch {
	case g.State == Dead:
		return kerr.CoordinatorNotAvailable
	case s.checkInstance(g, instance, memberID) != nil:
		return kerr.FencedInstanceID
	case !ok:
		return kerr.UnknownMemberID
	case generation != g.Generation:
		return kerr.IllegalGeneration
	}
	m.lastSeen = now
	switch g.State {
	case PreparingRebalance:
		return kerr.RebalanceInProgress
	case Empty:
		return kerr.UnknownMemberID
	}
	return nil
}

// LeaveMember is one member of a LeaveGroup (v3+ may name several).
type LeaveMember struct {
	MemberID   string
	InstanceID *string
}

// Leave handles a LeaveGroup; it returns one error per member (nil: left)
// or a group-level error.
func (s *Groups) Leave(group string, members []LeaveMember, now time.Time) ([]*kerr.Error, *kerr.Error) {
	g, ok := s.groups[group]
	if !ok || g.Consumer != nil {
		return nil, kerr.UnknownMemberID
	}
	if g.State == Dead {
		return nil, kerr.CoordinatorNotAvailable
	}
	errs := make([]*kerr.Error, len(members))
	left, pendingLeft := false, false
	for i, lm := range members {
		id := lm.MemberID
		if lm.InstanceID != nil {
			owner, ok := g.static[*lm.InstanceID]
			switch {
			case !ok:
				errs[i] = kerr.UnknownMemberID
				continue
			case id != "" && owner != id:
				errs[i] = kerr.FencedInstanceID
				continue
			}
			id = owner
		}
		if _, ok := g.pending[id]; ok {
			delete(g.pending, id)
			pendingLeft = true
			continue
		}
		if _, ok := g.Members[id]; !ok {
			errs[i] = kerr.UnknownMemberID
			continue
		}
		s.removeMember(g, id)
		left = true
	}
	switch {
	case left:
		s.memberGone(g, now)
	case pendingLeft:
		// The rebalance may have waited only for that pending id.
		s.tryCompleteJoin(g, now)
	}
	return errs, nil
}

// memberGone reacts to a member leaving: rebalance, or complete the
// rebalance that waited for it.
func (s *Groups) memberGone(g *Group, now time.Time) {
	switch g.State {
	case Stable, CompletingRebalance:
		s.prepareRebalance(g, now)
	}
	if g.State == PreparingRebalance {
		// A member leaving can be the one the rebalance waited for.
		if len(g.Members) == 0 {
			g.initialDelay = false
		}
		s.tryCompleteJoin(g, now)
	}
}

// Tick applies deadlines: session timeouts, rebalance timeouts, lapsed
// pending member ids. It returns when it next needs to run.
func (s *Groups) Tick(now time.Time) time.Time {
	next := now.Add(time.Hour)
	for _, g := range s.groups {
		if g.Consumer != nil {
			next = minTime(next, s.tickConsumer(g, now))
			continue
		}
		lapsed := false
		for id, until := range g.pending {
			if !now.Before(until) {
				delete(g.pending, id)
				lapsed = true
			} else {
				next = minTime(next, until)
			}
		}
		if lapsed {
			// A rebalance waits for pending member ids as for members: one
			// whose client never came back with it (a client that sent a
			// second JoinGroup without an id, e.g. after subscribing again,
			// and then used only the newer id) must not hold the group in
			// PreparingRebalance until the rebalance timeout (librdkafka's
			// is max.poll.interval.ms, five minutes). Kafka re-checks the
			// join when a pending member expires.
			s.tryCompleteJoin(g, now)
		}
		if g.State == PreparingRebalance {
			if !now.Before(g.rebalanceDeadline) {
				if g.initialDelay {
					g.initialDelay = false
					// The delay is over: complete if everyone is in, else wait
					// for the rest up to the rebalance timeout.
					var timeout time.Duration
					for _, m := range g.Members {
						timeout = max(timeout, m.RebalanceTimeout)
					}
					g.rebalanceDeadline = g.stateSince.Add(timeout)
					s.tryCompleteJoin(g, now)
					if g.State == PreparingRebalance && !now.Before(g.rebalanceDeadline) {
						s.completeJoin(g, now)
					}
				} else {
					s.completeJoin(g, now)
				}
			}
			if g.State == PreparingRebalance {
				next = minTime(next, g.rebalanceDeadline)
			}
		}
		expired := false
		for id, m := range g.Members {
			if m.join != nil && g.State == PreparingRebalance {
				continue // waiting in a rebalance: the rebalance deadline applies
			}
			deadline := m.lastSeen.Add(m.SessionTimeout)
			if !now.Before(deadline) {
				s.removeMember(g, id)
				expired = true
				continue
			}
			next = minTime(next, deadline)
		}
		if expired {
			s.memberGone(g, now)
			if g.State == PreparingRebalance {
				next = minTime(next, g.rebalanceDeadline)
			}
		}
	}
	return next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// persistGroup stores the group's metadata record.
func (s *Groups) persistGroup(g *Group, then func(error)) {
	s.persist([]Record{groupRecord(g)}, then)
}
