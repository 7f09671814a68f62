package group

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// KIP-848: the consumer group protocol. Members heartbeat their
// subscription and the partitions they own; the coordinator computes a
// target assignment with a server-side assignor and moves each member
// towards it, never giving a partition to a new owner before its previous
// owner has confirmed it revoked it.

// ConsumerConfig holds the KIP-848 settings (Kafka's group.consumer.*).
type ConsumerConfig struct {
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	Assignors         []string // the first is the default
}

// DefaultConsumerConfig returns Kafka's defaults.
func DefaultConsumerConfig() ConsumerConfig {
	return ConsumerConfig{HeartbeatInterval: 5 * time.Second, SessionTimeout: 45 * time.Second, Assignors: []string{"uniform", "range"}}
}

// ConsumerGroup is the KIP-848 state of a group.
type ConsumerGroup struct {
	Epoch           int32                      `json:"epoch"`
	AssignmentEpoch int32                      `json:"assignment_epoch"`
	Assignor        string                     `json:"assignor"`
	Members         map[string]*ConsumerMember `json:"members"`
	// Target is the assignment the members are moved towards.
	Target map[string][]TopicPartition `json:"target"`
	// metadata fingerprint of the subscribed topics' partition counts when
	// the target was computed.
	topicsSeen string
	owners     map[TopicPartition]string
}

// ConsumerMember is one member of a consumer group.
type ConsumerMember struct {
	ID               string           `json:"id"`
	InstanceID       *string          `json:"instance_id,omitempty"`
	RackID           *string          `json:"rack_id,omitempty"`
	ClientID         string           `json:"client_id"`
	ClientHost       string           `json:"client_host"`
	Epoch            int32            `json:"epoch"`
	PrevEpoch        int32            `json:"prev_epoch"`
	Subscribed       []string         `json:"subscribed,omitempty"`
	Regex            string           `json:"regex,omitempty"`
	Assignor         string           `json:"assignor,omitempty"`
	RebalanceTimeout time.Duration    `json:"rebalance_timeout"`
	Assigned         []TopicPartition `json:"assigned"`
	Revoking         []TopicPartition `json:"revoking,omitempty"`

	lastSeen       time.Time
	revokeDeadline time.Time
	sent           string // fingerprint of the last assignment sent
}

func (c *ConsumerGroup) stateName() string {
	switch {
	case len(c.Members) == 0:
		return "Empty"
	case c.AssignmentEpoch < c.Epoch:
		return "Assigning"
	}
	for _, m := range c.Members {
		if m.Epoch != c.AssignmentEpoch || len(m.Revoking) > 0 || !sameSet(m.Assigned, c.Target[m.ID]) {
			return "Reconciling"
		}
	}
	return "Stable"
}

// TopicInfo describes a topic for assignment.
type TopicInfo struct {
	ID         [16]byte
	Partitions int32
}

// Topics answers what topics exist (the coordinator asks the metadata).
type Topics interface {
	Topic(name string) (TopicInfo, bool)
	Names() []string
}

// HeartbeatRequest is a ConsumerGroupHeartbeat.
type HeartbeatRequest struct {
	Version          int16
	Group            string
	MemberID         string
	MemberEpoch      int32
	InstanceID       *string
	RackID           *string
	ClientID         string
	ClientHost       string
	RebalanceTimeout time.Duration
	Subscribed       []string // nil: unchanged
	Regex            *string  // nil: unchanged
	Assignor         *string  // nil: unchanged
	Owned            []TopicPartition
	OwnedKnown       bool // Owned was sent
}

// HeartbeatResult is a ConsumerGroupHeartbeat response.
type HeartbeatResult struct {
	Err               *kerr.Error
	Message           string
	MemberID          string
	MemberEpoch       int32
	HeartbeatInterval time.Duration
	// Assignment is set when it changed since the member last heard it.
	Assignment []TopicPartition
	Assigned   bool
}

// ConsumerHeartbeat handles a ConsumerGroupHeartbeat; reply runs once the
// change it caused is durable.
func (s *Groups) ConsumerHeartbeat(req HeartbeatRequest, topics Topics, now time.Time, reply func(HeartbeatResult)) {
	cc := s.cc
	fail := func(e *kerr.Error, msg string) {
		reply(HeartbeatResult{Err: e, Message: msg, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch})
	}
	switch {
	case req.Group == "":
		fail(kerr.InvalidRequest, "the group id is empty")
		return
	case req.MemberEpoch < -2:
		fail(kerr.InvalidRequest, "member epoch below -2")
		return
	case req.MemberEpoch == 0 && len(req.Owned) > 0:
		fail(kerr.InvalidRequest, "a joining member cannot own partitions")
		return
	case req.Version >= 1 && req.MemberID == "":
		fail(kerr.InvalidRequest, "the member id must be set by the client from version 1")
		return
	case req.Assignor != nil && *req.Assignor != "" && !slices.Contains(cc.Assignors, *req.Assignor):
		fail(kerr.UnsupportedAssignor, "assignor "+*req.Assignor+" is not one of "+strings.Join(cc.Assignors, ", "))
		return
	}
	g, ok := s.groups[req.Group]
	if ok && g.Consumer == nil {
		if !g.IsEmpty() {
			fail(kerr.InconsistentGroupProtocol, "the group is a classic group with members")
			return
		}
		g.Consumer = newConsumerGroup() // an empty classic group (offsets only) becomes a consumer group
	}
	if !ok {
		if req.MemberEpoch != 0 {
			fail(kerr.UnknownMemberID, "the group does not exist")
			return
		}
		g = s.getOrCreate(req.Group, now)
		g.Consumer = newConsumerGroup()
	}
	c := g.Consumer
	if req.MemberEpoch < 0 { // leave
		if m, ok := c.Members[req.MemberID]; ok {
			c.removeMember(m)
			s.bumpEpoch(g, now)
		} else if req.InstanceID != nil {
			for _, m := range c.Members {
				if m.InstanceID != nil && *m.InstanceID == *req.InstanceID {
					c.removeMember(m)
					s.bumpEpoch(g, now)
					break
				}
			}
		}
		s.persistConsumer(g, func(err error) {
			if err != nil {
				fail(kerr.CoordinatorNotAvailable, "")
				return
			}
			reply(HeartbeatResult{MemberID: req.MemberID, MemberEpoch: req.MemberEpoch, HeartbeatInterval: cc.HeartbeatInterval})
		})
		return
	}
	m, known := c.Members[req.MemberID]
	changed := false
	switch {
	case req.MemberEpoch == 0:
		if req.InstanceID != nil {
			for _, o := range c.Members {
				if o.InstanceID != nil && *o.InstanceID == *req.InstanceID && o.ID != req.MemberID {
					fail(kerr.UnreleasedInstanceID, "the instance id is held by member "+o.ID)
					return
				}
			}
		}
		if req.Subscribed == nil && (req.Regex == nil || *req.Regex == "") {
			fail(kerr.InvalidRequest, "a joining member must subscribe to topics or a regex")
			return
		}
		if known {
			c.removeMember(m) // a rejoin starts over
		}
		id := req.MemberID
		if id == "" {
			id = s.newMemberID(req.ClientID)
		}
		m = &ConsumerMember{ID: id, InstanceID: req.InstanceID, ClientID: req.ClientID, ClientHost: req.ClientHost}
		c.Members[id] = m
		changed = true
	case !known:
		fail(kerr.UnknownMemberID, "")
		return
	case req.MemberEpoch != m.Epoch && (req.MemberEpoch != m.PrevEpoch || !subset(req.Owned, m.Assigned)):
		fail(kerr.FencedMemberEpoch, fmt.Sprintf("member epoch %d, the coordinator has %d", req.MemberEpoch, m.Epoch))
		return
	}
	m.lastSeen = now
	m.RackID = req.RackID
	if req.RebalanceTimeout > 0 {
		m.RebalanceTimeout = req.RebalanceTimeout
	}
	if req.Subscribed != nil {
		sub := slices.Clone(req.Subscribed)
		slices.Sort(sub)
		sub = slices.Compact(sub)
		if !slices.Equal(sub, m.Subscribed) {
			m.Subscribed, changed = sub, true
		}
	}
	if req.Regex != nil && *req.Regex != m.Regex {
		if _, err := regexp.Compile(*req.Regex); err != nil {
			fail(kerr.InvalidRegularExpression, err.Error())
			return
		}
		m.Regex, changed = *req.Regex, true
	}
	if req.Assignor != nil && *req.Assignor != m.Assignor {
		m.Assignor, changed = *req.Assignor, true
	}
	if fp := c.topicsFingerprint(topics); fp != c.topicsSeen {
		// Topics appeared, grew, or went: the target must be computed again.
		c.topicsSeen = fp
		changed = changed || c.AssignmentEpoch > 0
	}
	if changed {
		s.bumpEpoch(g, now)
	}
	if c.AssignmentEpoch < c.Epoch {
		c.computeTarget(cc, topics)
	}
	c.reconcile(m, req, now)
	res := HeartbeatResult{MemberID: m.ID, MemberEpoch: m.Epoch, HeartbeatInterval: cc.HeartbeatInterval}
	current := minus(m.Assigned, m.Revoking)
	if fp := tpFingerprint(current); fp != m.sent || req.MemberEpoch == 0 {
		res.Assignment, res.Assigned, m.sent = current, true, fp
	}
	s.persistConsumer(g, func(err error) {
		if err != nil {
			fail(kerr.CoordinatorNotAvailable, "")
			return
		}
		reply(res)
	})
}

func newConsumerGroup() *ConsumerGroup {
	return &ConsumerGroup{Members: map[string]*ConsumerMember{}, Target: map[string][]TopicPartition{}, owners: map[TopicPartition]string{}}
}

func (s *Groups) bumpEpoch(g *Group, now time.Time) {
	g.Consumer.Epoch++
	if s.cfg.OnRebalance != nil {
		s.cfg.OnRebalance("consumer")
	}
	if len(g.Consumer.Members) == 0 {
		g.emptySince = now
	}
}

func (c *ConsumerGroup) removeMember(m *ConsumerMember) {
	for _, tp := range m.Assigned {
		if c.owners[tp] == m.ID {
			delete(c.owners, tp)
		}
	}
	delete(c.Members, m.ID)
	delete(c.Target, m.ID)
}

// subscribedTopics resolves a member's subscription to existing topics.
func (m *ConsumerMember) subscribedTopics(topics Topics) []string {
	var out []string
	for _, t := range m.Subscribed {
		if _, ok := topics.Topic(t); ok {
			out = append(out, t)
		}
	}
	if m.Regex != "" {
		if re, err := regexp.Compile("^(?:" + m.Regex + ")$"); err == nil {
			for _, t := range topics.Names() {
				// As Kafka: the whole name must match, and internal
				// topics (__consumer_offsets) are not left out.
				if re.MatchString(t) {
					out = append(out, t)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (c *ConsumerGroup) topicsFingerprint(topics Topics) string {
	seen := map[string]bool{}
	for _, m := range c.Members {
		for _, t := range m.subscribedTopics(topics) {
			seen[t] = true
		}
	}
	var b strings.Builder
	for _, t := range slices.Sorted(maps.Keys(seen)) {
		info, _ := topics.Topic(t)
		fmt.Fprintf(&b, "%s:%d;", t, info.Partitions)
	}
	return b.String()
}

// computeTarget runs the group's assignor over the members' subscriptions.
func (c *ConsumerGroup) computeTarget(cc ConsumerConfig, topics Topics) {
	c.Assignor = c.chooseAssignor(cc)
	subs := map[string][]string{}
	for id, m := range c.Members {
		subs[id] = m.subscribedTopics(topics)
	}
	parts := func(t string) int32 { info, _ := topics.Topic(t); return info.Partitions }
	if c.Assignor == "range" {
		c.Target = rangeAssign(subs, parts)
	} else {
		c.Target = uniformAssign(subs, parts, c.Target)
	}
	c.AssignmentEpoch = c.Epoch
}

// chooseAssignor takes the assignor most members ask for, else the default.
func (c *ConsumerGroup) chooseAssignor(cc ConsumerConfig) string {
	votes := map[string]int{}
	for _, m := range c.Members {
		if m.Assignor != "" {
			votes[m.Assignor]++
		}
	}
	best := cc.Assignors[0]
	for _, a := range cc.Assignors {
		if votes[a] > votes[best] {
			best = a
		}
	}
	return best
}

// reconcile moves a member towards its target: first it must give up what
// the target takes away (and say so, in the partitions it reports owning);
// then it gets what the target adds, as far as the previous owners have
// released it, and its epoch catches up with the assignment epoch.
func (c *ConsumerGroup) reconcile(m *ConsumerMember, req HeartbeatRequest, now time.Time) {
	target := c.Target[m.ID]
	revoke := minus(m.Assigned, target)
	if len(revoke) > 0 {
		if req.OwnedKnown && len(intersect(req.Owned, revoke)) == 0 {
			// The member confirmed it no longer owns them: release them.
			for _, tp := range revoke {
				if c.owners[tp] == m.ID {
					delete(c.owners, tp)
				}
			}
			m.Assigned = minus(m.Assigned, revoke)
			m.Revoking = nil
		} else {
			if len(m.Revoking) == 0 {
				m.revokeDeadline = now.Add(max(m.RebalanceTimeout, time.Second))
			}
			m.Revoking = revoke
			return
		}
	}
	m.Revoking = nil
	for _, tp := range minus(target, m.Assigned) {
		if owner, taken := c.owners[tp]; taken && owner != m.ID {
			continue // still being revoked from its previous owner
		}
		c.owners[tp] = m.ID
		m.Assigned = append(m.Assigned, tp)
	}
	sortTPs(m.Assigned)
	if m.Epoch != c.AssignmentEpoch {
		m.PrevEpoch, m.Epoch = m.Epoch, c.AssignmentEpoch
	}
}

// tickConsumer expires members: sessions and revocations that took longer
// than the rebalance timeout.
func (s *Groups) tickConsumer(g *Group, now time.Time) time.Time {
	next := now.Add(time.Hour)
	c := g.Consumer
	gone := false
	for _, m := range c.Members {
		session := m.lastSeen.Add(s.cc.SessionTimeout)
		revoking := len(m.Revoking) > 0 && !now.Before(m.revokeDeadline)
		if !now.Before(session) || revoking {
			c.removeMember(m)
			gone = true
			continue
		}
		next = minTime(next, session)
		if len(m.Revoking) > 0 {
			next = minTime(next, m.revokeDeadline)
		}
	}
	if gone {
		s.bumpEpoch(g, now)
		s.persistConsumer(g, func(error) {})
	}
	return next
}

// checkConsumerCommitter validates an OffsetCommit to a consumer group:
// the member id must be known and the epoch current (STALE_MEMBER_EPOCH).
func (s *Groups) checkConsumerCommitter(g *Group, req CommitRequest) *kerr.Error {
	if req.Generation < 0 && req.MemberID == "" {
		if g.IsEmpty() {
			return nil
		}
		return kerr.UnknownMemberID
	}
	m, ok := g.Consumer.Members[req.MemberID]
	switch {
	case !ok:
		return kerr.UnknownMemberID
	case req.Generation > m.Epoch:
		return kerr.StaleMemberEpoch
	case req.Generation < m.Epoch && req.Generation != m.PrevEpoch:
		return kerr.StaleMemberEpoch
	}
	return nil
}

// consumerKeyVersion marks Chronik's consumer-group state records in
// __consumer_offsets (a key version Kafka does not use; Kafka tools skip
// it). The value is the group's state in JSON (docs/format/consumer-offsets.md).
const consumerKeyVersion int16 = 0x4348

func consumerKey(group string) []byte {
	b := make([]byte, 4+len(group))
	binary.BigEndian.PutUint16(b, uint16(consumerKeyVersion))
	binary.BigEndian.PutUint16(b[2:], uint16(len(group)))
	copy(b[4:], group)
	return b
}

func (s *Groups) persistConsumer(g *Group, then func(error)) {
	v, err := json.Marshal(g.Consumer)
	if err != nil {
		then(err)
		return
	}
	s.persist([]Record{{Key: consumerKey(g.ID), Value: v}}, then)
}

func consumerTombstones(g *Group) []Record {
	return []Record{{Key: consumerKey(g.ID)}}
}

// loadConsumer applies a consumer-group state record.
func (s *Groups) loadConsumer(version int16, key, value []byte, now time.Time) error {
	if version != consumerKeyVersion {
		return errUnknownRecord
	}
	if len(key) < 4 || len(key) != 4+int(binary.BigEndian.Uint16(key[2:])) {
		return fmt.Errorf("group: bad consumer group key")
	}
	id := string(key[4:])
	if value == nil {
		if g, ok := s.groups[id]; ok && g.Consumer != nil {
			delete(s.groups, id)
		}
		return nil
	}
	c := newConsumerGroup()
	if err := json.Unmarshal(value, c); err != nil {
		return fmt.Errorf("group: consumer group %s: %w", id, err)
	}
	if c.Members == nil {
		c.Members = map[string]*ConsumerMember{}
	}
	if c.Target == nil {
		c.Target = map[string][]TopicPartition{}
	}
	c.owners = map[TopicPartition]string{}
	for _, m := range c.Members {
		m.lastSeen = now
		m.revokeDeadline = now.Add(max(m.RebalanceTimeout, time.Second))
		m.sent = tpFingerprint(minus(m.Assigned, m.Revoking))
		for _, tp := range m.Assigned {
			c.owners[tp] = m.ID
		}
	}
	g := s.getOrCreate(id, now)
	g.Consumer = c
	return nil
}

// ConsumerDescription is what ConsumerGroupDescribe reports of a group.
type ConsumerDescription struct {
	State           string
	Epoch           int32
	AssignmentEpoch int32
	Assignor        string
	Members         []*ConsumerMember
	Targets         map[string][]TopicPartition
}

// DescribeConsumer reports a consumer group; ok is false for an unknown or
// classic group.
func (s *Groups) DescribeConsumer(group string) (ConsumerDescription, bool) {
	g, ok := s.groups[group]
	if !ok || g.Consumer == nil {
		return ConsumerDescription{}, false
	}
	c := g.Consumer
	d := ConsumerDescription{State: c.stateName(), Epoch: c.Epoch, AssignmentEpoch: c.AssignmentEpoch, Assignor: c.Assignor, Targets: c.Target}
	for _, id := range slices.Sorted(maps.Keys(c.Members)) {
		d.Members = append(d.Members, c.Members[id])
	}
	return d, true
}

// uniformAssign spreads partitions evenly over the members subscribed to
// them, keeping each partition where it was when that stays balanced.
func uniformAssign(subs map[string][]string, parts func(string) int32, previous map[string][]TopicPartition) map[string][]TopicPartition {
	out := map[string][]TopicPartition{}
	eligible := map[TopicPartition][]string{}
	var all []TopicPartition
	for _, id := range slices.Sorted(maps.Keys(subs)) {
		out[id] = nil
		for _, t := range subs[id] {
			for p := range parts(t) {
				tp := TopicPartition{t, p}
				if eligible[tp] == nil {
					all = append(all, tp)
				}
				eligible[tp] = append(eligible[tp], id)
			}
		}
	}
	sortTPs(all)
	if len(out) == 0 {
		return out
	}
	quota := (len(all) + len(out) - 1) / len(out)
	count := map[string]int{}
	taken := map[TopicPartition]bool{}
	// Keep partitions with their previous owner, up to the quota.
	for _, id := range slices.Sorted(maps.Keys(previous)) {
		for _, tp := range previous[id] {
			if slices.Contains(eligible[tp], id) && count[id] < quota && !taken[tp] {
				out[id] = append(out[id], tp)
				count[id]++
				taken[tp] = true
			}
		}
	}
	// Give the rest to the least loaded eligible member.
	for _, tp := range all {
		if taken[tp] {
			continue
		}
		best := ""
		for _, id := range eligible[tp] {
			if best == "" || count[id] < count[best] || count[id] == count[best] && id < best {
				best = id
			}
		}
		out[best] = append(out[best], tp)
		count[best]++
	}
	for id := range out {
		sortTPs(out[id])
	}
	return out
}

// rangeAssign gives each member a contiguous range of each topic it
// subscribes to, members ordered by id (Kafka's range assignor).
func rangeAssign(subs map[string][]string, parts func(string) int32) map[string][]TopicPartition {
	out := map[string][]TopicPartition{}
	byTopic := map[string][]string{}
	for id, ts := range subs {
		out[id] = nil
		for _, t := range ts {
			byTopic[t] = append(byTopic[t], id)
		}
	}
	for t, ids := range byTopic {
		sort.Strings(ids)
		n := int(parts(t))
		per, extra := n/len(ids), n%len(ids)
		p := 0
		for i, id := range ids {
			k := per
			if i < extra {
				k++
			}
			for range k {
				out[id] = append(out[id], TopicPartition{t, int32(p)})
				p++
			}
		}
	}
	for id := range out {
		sortTPs(out[id])
	}
	return out
}

func sortTPs(tps []TopicPartition) {
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
}

func tpSet(tps []TopicPartition) map[TopicPartition]bool {
	m := make(map[TopicPartition]bool, len(tps))
	for _, tp := range tps {
		m[tp] = true
	}
	return m
}

func minus(a, b []TopicPartition) []TopicPartition {
	bs := tpSet(b)
	var out []TopicPartition
	for _, tp := range a {
		if !bs[tp] {
			out = append(out, tp)
		}
	}
	return out
}

func intersect(a, b []TopicPartition) []TopicPartition {
	bs := tpSet(b)
	var out []TopicPartition
	for _, tp := range a {
		if bs[tp] {
			out = append(out, tp)
		}
	}
	return out
}

func subset(a, b []TopicPartition) bool { return len(minus(a, b)) == 0 }

func sameSet(a, b []TopicPartition) bool { return subset(a, b) && subset(b, a) }

func tpFingerprint(tps []TopicPartition) string {
	c := slices.Clone(tps)
	sortTPs(c)
	var b strings.Builder
	for _, tp := range c {
		fmt.Fprintf(&b, "%s/%d,", tp.Topic, tp.Partition)
	}
	return b.String()
}
