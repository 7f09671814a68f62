package group

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record of __consumer_offsets, in Kafka's formats (so that
// Kafka tools can read the topic): an offset commit or a group's metadata.
// A nil Value is a tombstone.
type Record struct {
	Key, Value []byte
}

// Key versions of __consumer_offsets records (Kafka's).
const (
	offsetKeyVersion = 1
	groupKeyVersion  = 2
)

func offsetRecord(group string, tp TopicPartition, o *Offset) Record {
	k := kmsg.NewOffsetCommitKey()
	k.Version, k.Group, k.Topic, k.Partition = offsetKeyVersion, group, tp.Topic, tp.Partition
	r := Record{Key: k.AppendTo(nil)}
	if o != nil {
		v := kmsg.NewOffsetCommitValue()
		v.Version, v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = 3, o.Offset, o.LeaderEpoch, o.Metadata, o.CommitTime.UnixMilli()
		r.Value = v.AppendTo(nil)
	}
	return r
}

// groupRecord is a classic group's metadata, or a tombstone for a dead one.
func groupRecord(g *Group) Record {
	k := kmsg.NewGroupMetadataKey()
	k.Version, k.Group = groupKeyVersion, g.ID
	r := Record{Key: k.AppendTo(nil)}
	if g.State == Dead {
		return r
	}
	v := kmsg.NewGroupMetadataValue()
	v.Version, v.ProtocolType, v.Generation, v.CurrentStateTimestamp = 3, g.ProtocolType, g.Generation, g.stateSince.UnixMilli()
	if g.Protocol != "" {
		v.Protocol = &g.Protocol
	}
	if g.Leader != "" {
		v.Leader = &g.Leader
	}
	for _, id := range g.memberIDs() {
		m := g.Members[id]
		v.Members = append(v.Members, kmsg.GroupMetadataValueMember{MemberID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			RebalanceTimeoutMillis: int32(m.RebalanceTimeout / time.Millisecond), SessionTimeoutMillis: int32(m.SessionTimeout / time.Millisecond),
			Subscription: m.metadata(g.Protocol), Assignment: m.Assignment})
	}
	r.Value = v.AppendTo(nil)
	return r
}

// persist stores records and, once they are durable, remembers the group
// state records among them (offset records are kept in the groups).
func (s *Groups) persist(recs []Record, then func(error)) {
	s.store(recs, func(err error) {
		if err == nil {
			for _, r := range recs {
				s.remember(r)
			}
		}
		then(err)
	})
}

// remember tracks the latest group state record of a group.
func (s *Groups) remember(r Record) {
	if len(r.Key) < 2 || isOffsetKey(r.Key) {
		return
	}
	if r.Value == nil {
		delete(s.last, string(r.Key))
		return
	}
	s.last[string(r.Key)] = r
}

func isOffsetKey(key []byte) bool {
	v := int16(key[0])<<8 | int16(key[1])
	return v == 0 || v == offsetKeyVersion
}

// LiveRecords is the whole durable state as records: every committed offset
// and the latest state record of every group. Written to the log in this
// order, they rebuild the same state, so that everything before them can
// be dropped (the coordinator's compaction). Call it only when no store is
// in flight.
func (s *Groups) LiveRecords() []Record {
	var recs []Record
	for _, g := range s.All() {
		if g.State == Dead {
			continue
		}
		for _, tp := range SortedTPs(g.Offsets) {
			o := g.Offsets[tp]
			recs = append(recs, offsetRecord(g.ID, tp, &o))
		}
	}
	keys := make([]string, 0, len(s.last))
	for k := range s.last {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		recs = append(recs, s.last[k])
	}
	return recs
}

// SortedTPs returns the partitions of m by topic and partition.
func SortedTPs(m map[TopicPartition]Offset) []TopicPartition {
	tps := make([]TopicPartition, 0, len(m))
	for tp := range m {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return tps
}

// errUnknownRecord is returned for records of a kind this coordinator does
// not know; loading skips them.
var errUnknownRecord = errors.New("group: unknown __consumer_offsets record")

// Load applies a record read back from __consumer_offsets (start-up and
// leadership change). Members come back with their session starting now.
func (s *Groups) Load(key, value []byte, now time.Time) error {
	if len(key) < 2 {
		return fmt.Errorf("group: short record key")
	}
	if err := s.load(key, value, now); err != nil {
		return err
	}
	s.remember(Record{Key: key, Value: bytes.Clone(value)}) // not the read buffer
	return nil
}

func (s *Groups) load(key, value []byte, now time.Time) error {
	switch version := int16(key[0])<<8 | int16(key[1]); version {
	case 0, offsetKeyVersion:
		k := kmsg.NewOffsetCommitKey()
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("group: offset key: %w", err)
		}
		tp := TopicPartition{Topic: k.Topic, Partition: k.Partition}
		if value == nil {
			if g, ok := s.groups[k.Group]; ok {
				delete(g.Offsets, tp)
			}
			return nil
		}
		v := kmsg.NewOffsetCommitValue()
		if err := v.ReadFrom(value); err != nil {
			return fmt.Errorf("group: offset value: %w", err)
		}
		g := s.getOrCreate(k.Group, now)
		g.Offsets[tp] = Offset{Offset: v.Offset, LeaderEpoch: v.LeaderEpoch, Metadata: v.Metadata, CommitTime: time.UnixMilli(v.CommitTimestamp)}
		return nil
	case groupKeyVersion:
		k := kmsg.NewGroupMetadataKey()
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("group: group key: %w", err)
		}
		if value == nil {
			delete(s.groups, k.Group)
			return nil
		}
		v := kmsg.NewGroupMetadataValue()
		if err := v.ReadFrom(value); err != nil {
			return fmt.Errorf("group: group value: %w", err)
		}
		g := s.getOrCreate(k.Group, now)
		g.ProtocolType, g.Generation = v.ProtocolType, v.Generation
		g.Protocol, g.Leader = deref(v.Protocol), deref(v.Leader)
		clear(g.Members)
		clear(g.static)
		for _, vm := range v.Members {
			m := &Member{ID: vm.MemberID, InstanceID: vm.InstanceID, ClientID: vm.ClientID, ClientHost: vm.ClientHost,
				RebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond, SessionTimeout: time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
				Protocols: []Protocol{{Name: g.Protocol, Metadata: vm.Subscription}}, Assignment: vm.Assignment, lastSeen: now}
			g.Members[m.ID] = m
			if m.InstanceID != nil {
				g.static[*m.InstanceID] = m.ID
			}
		}
		if len(g.Members) == 0 {
			g.setState(Empty, time.UnixMilli(v.CurrentStateTimestamp))
		} else {
			g.setState(Stable, now)
		}
		return nil
	default:
		return s.loadConsumer(version, key, value, now)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
