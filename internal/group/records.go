package group

import (
	"errors"
	"fmt"
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

// errUnknownRecord is returned for records of a kind this coordinator does
// not know; loading skips them.
var errUnknownRecord = errors.New("group: unknown __consumer_offsets record")

// Load applies a record read back from __consumer_offsets (start-up and
// leadership change). Members come back with their session starting now.
func (s *Groups) Load(key, value []byte, now time.Time) error {
	if len(key) < 2 {
		return fmt.Errorf("group: short record key")
	}
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
