package group

import (
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// CommitOffset is one partition of an OffsetCommit.
type CommitOffset struct {
	TopicPartition
	Offset
}

// CommitRequest is an OffsetCommit.
type CommitRequest struct {
	Group      string
	MemberID   string
	InstanceID *string
	// Generation is the generation (classic) or member epoch (consumer);
	// -1 with an empty member id is a commit from outside any membership.
	Generation int32
	Offsets    []CommitOffset
}

// Commit validates an OffsetCommit, persists the offsets it accepts and
// replies with one error per partition (nil: committed) once they are
// durable. known says whether a topic partition exists.
func (s *Groups) Commit(req CommitRequest, now time.Time, known func(TopicPartition) bool, reply func([]*kerr.Error)) {
	errs := make([]*kerr.Error, len(req.Offsets))
	all := func(e *kerr.Error) {
		for i := range errs {
			errs[i] = e
		}
		reply(errs)
	}
	if req.Group == "" {
		all(kerr.InvalidGroupID)
		return
	}
	g, ok := s.groups[req.Group]
	if e := s.checkCommitter(g, ok, req); e != nil {
		all(e)
		return
	}
	if g == nil {
		g = s.getOrCreate(req.Group, now)
	}
	var recs []Record
	var accepted []int
	for i, o := range req.Offsets {
		switch {
		case len(o.Metadata) > s.cfg.MaxMetadataBytes:
			errs[i] = kerr.OffsetMetadataTooLarge
		case !known(o.TopicPartition):
			errs[i] = kerr.UnknownTopicOrPartition
		default:
			o.CommitTime = now
			recs = append(recs, offsetRecord(g.ID, o.TopicPartition, &o.Offset))
			accepted = append(accepted, i)
		}
	}
	if len(recs) == 0 {
		reply(errs)
		return
	}
	s.persist(recs, func(err error) {
		for _, i := range accepted {
			if err != nil {
				errs[i] = kerr.CoordinatorNotAvailable
				continue
			}
			o := req.Offsets[i]
			o.CommitTime = now
			g.Offsets[o.TopicPartition] = o.Offset
		}
		reply(errs)
	})
}

// checkCommitter applies Kafka's rules for who may commit to a group.
func (s *Groups) checkCommitter(g *Group, exists bool, req CommitRequest) *kerr.Error {
	simple := req.Generation < 0 && req.MemberID == ""
	switch {
	case !exists:
		if simple {
			return nil
		}
		return kerr.IllegalGeneration
	case g.State == Dead:
		return kerr.CoordinatorNotAvailable
	case g.Consumer != nil:
		return s.checkConsumerCommitter(g, req)
	case simple && g.IsEmpty():
		return nil
	case s.checkInstance(g, req.InstanceID, req.MemberID) != nil:
		return kerr.FencedInstanceID
	}
	if _, ok := g.Members[req.MemberID]; !ok || req.Generation < 0 {
		return kerr.UnknownMemberID
	}
	switch {
	case req.Generation != g.Generation:
		return kerr.IllegalGeneration
	case g.State == CompletingRebalance:
		return kerr.RebalanceInProgress
	}
	return nil
}

// Fetch returns committed offsets of a group: every partition when tps is
// nil, else the ones asked for (-1 where nothing is committed).
func (s *Groups) Fetch(group string, tps []TopicPartition) map[TopicPartition]Offset {
	out := map[TopicPartition]Offset{}
	g, ok := s.groups[group]
	if tps == nil {
		if ok {
			for tp, o := range g.Offsets {
				out[tp] = o
			}
		}
		return out
	}
	for _, tp := range tps {
		o := Offset{Offset: -1, LeaderEpoch: -1}
		if ok {
			if c, found := g.Offsets[tp]; found {
				o = c
			}
		}
		out[tp] = o
	}
	return out
}

// DeleteOffsets handles an OffsetDelete: a partition of a topic the group
// still consumes (a member is subscribed to it) is refused.
func (s *Groups) DeleteOffsets(group string, tps []TopicPartition, reply func([]*kerr.Error, *kerr.Error)) {
	g, ok := s.groups[group]
	if !ok || g.State == Dead {
		reply(nil, kerr.GroupIDNotFound)
		return
	}
	errs := make([]*kerr.Error, len(tps))
	var recs []Record
	var accepted []int
	subscribed := s.subscribedTopics(g)
	for i, tp := range tps {
		if subscribed[tp.Topic] {
			errs[i] = kerr.GroupSubscribedToTopic
			continue
		}
		recs = append(recs, offsetRecord(group, tp, nil))
		accepted = append(accepted, i)
	}
	if len(recs) == 0 {
		reply(errs, nil)
		return
	}
	s.persist(recs, func(err error) {
		for _, i := range accepted {
			if err != nil {
				errs[i] = kerr.CoordinatorNotAvailable
				continue
			}
			delete(g.Offsets, tps[i])
		}
		reply(errs, nil)
	})
}

// subscribedTopics is the set of topics the group's members consume.
func (s *Groups) subscribedTopics(g *Group) map[string]bool {
	out := map[string]bool{}
	if g.Consumer != nil {
		for _, m := range g.Consumer.Members {
			for _, t := range m.Subscribed {
				out[t] = true
			}
		}
		return out
	}
	if g.ProtocolType != "consumer" {
		return out
	}
	for _, m := range g.Members {
		for _, t := range subscriptionTopics(m.metadata(g.Protocol)) {
			out[t] = true
		}
	}
	return out
}

// subscriptionTopics reads the topics of a consumer protocol subscription
// (version int16, then an array of strings).
func subscriptionTopics(b []byte) []string {
	if len(b) < 6 {
		return nil
	}
	n := int(int32(binary.BigEndian.Uint32(b[2:])))
	b = b[6:]
	var out []string
	for range max(n, 0) {
		if len(b) < 2 {
			return out
		}
		l := int(int16(binary.BigEndian.Uint16(b)))
		if l < 0 || len(b) < 2+l {
			return out
		}
		out = append(out, string(b[2:2+l]))
		b = b[2+l:]
	}
	return out
}

// DeleteGroup handles one group of a DeleteGroups: only a group without
// members can be deleted; its offsets go with it.
func (s *Groups) DeleteGroup(group string, reply func(*kerr.Error)) {
	g, ok := s.groups[group]
	switch {
	case !ok || g.State == Dead:
		reply(kerr.GroupIDNotFound)
		return
	case !g.IsEmpty():
		reply(kerr.NonEmptyGroup)
		return
	}
	s.persist(s.tombstones(g), func(err error) {
		if err != nil {
			reply(kerr.CoordinatorNotAvailable)
			return
		}
		g.State = Dead
		delete(s.groups, group)
		reply(nil)
	})
}

// tombstones deletes a group and all its offsets.
func (s *Groups) tombstones(g *Group) []Record {
	var recs []Record
	for _, tp := range SortedTPs(g.Offsets) {
		recs = append(recs, offsetRecord(g.ID, tp, nil))
	}
	dead := *g
	dead.State = Dead
	recs = append(recs, groupRecord(&dead))
	if g.Consumer != nil {
		recs = append(recs, consumerTombstones(g)...)
	}
	return recs
}

// ExpireOffsets deletes the offsets of groups that have had no members
// for longer than offsets.retention.minutes (KIP-211), and the groups.
func (s *Groups) ExpireOffsets(now time.Time) {
	for _, g := range s.groups {
		if !g.IsEmpty() || g.State == Dead {
			continue
		}
		since := g.emptySince
		for _, o := range g.Offsets {
			if o.CommitTime.After(since) {
				since = o.CommitTime
			}
		}
		if now.Sub(since) < s.cfg.OffsetsRetention {
			continue
		}
		id := g.ID
		s.persist(s.tombstones(g), func(err error) {
			if err == nil {
				delete(s.groups, id)
			}
		})
		g.State = Dead
	}
}

// Description is what DescribeGroups reports of a group.
type Description struct {
	State        string
	ProtocolType string
	Protocol     string
	Members      []MemberDescription
}

// MemberDescription is one member in a Description.
type MemberDescription struct {
	ID, ClientID, ClientHost string
	InstanceID               *string
	Metadata, Assignment     []byte
}

// Describe reports a classic group (Dead for an unknown one).
func (s *Groups) Describe(group string) Description {
	g, ok := s.groups[group]
	if !ok {
		return Description{State: Dead.String()}
	}
	d := Description{State: g.StateName(), ProtocolType: g.ProtocolType}
	if g.Consumer != nil {
		d.ProtocolType = "consumer"
		return d
	}
	if g.State == Stable {
		d.Protocol = g.Protocol
	}
	for _, id := range g.memberIDs() {
		m := g.Members[id]
		md := MemberDescription{ID: m.ID, ClientID: m.ClientID, ClientHost: m.ClientHost, InstanceID: m.InstanceID}
		if g.State == Stable || g.State == CompletingRebalance {
			md.Metadata = m.metadata(g.Protocol)
		}
		if g.State == Stable {
			md.Assignment = m.Assignment
		}
		d.Members = append(d.Members, md)
	}
	return d
}
