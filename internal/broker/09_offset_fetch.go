package broker

// OffsetFetch (key 9), versions 0–10.
//
// Committed offsets with their leader epochs (v5+) and metadata; -1 where
// nothing is committed. A null topic list (v2+) asks for every committed
// partition. v8+ asks for several groups at once, each answered by its own
// coordinator shard with its own error (NOT_COORDINATOR,
// COORDINATOR_LOAD_IN_PROGRESS). v9+ lets a KIP-848 member name itself:
// an unknown member gets UNKNOWN_MEMBER_ID, a stale epoch
// STALE_MEMBER_EPOCH. v10 names topics by id. require_stable (v7+) needs
// no wait: without transactions every committed offset is stable. v0
// (offsets in ZooKeeper in old Kafka) reads the same committed offsets as
// v1, as OffsetCommit v0 writes them there too.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

// fetchedOffsets is one group's answer.
type fetchedOffsets struct {
	offsets map[group.TopicPartition]group.Offset
	err     *kerr.Error
}

// fetchOffsets reads a group's committed offsets (tps nil: all of them).
func (b *Broker) fetchOffsets(ctx context.Context, g string, tps []group.TopicPartition, memberID *string, epoch int32) fetchedOffsets {
	if g == "" {
		return fetchedOffsets{err: kerr.InvalidGroupID}
	}
	res, e := group.Call(ctx, b.node.Coordinator(), g, func(s *group.Groups, _ time.Time, reply func(fetchedOffsets)) {
		if memberID != nil {
			if gr, ok := s.Get(g); ok && gr.Consumer != nil {
				m, ok := gr.Consumer.Members[*memberID]
				switch {
				case !ok:
					reply(fetchedOffsets{err: kerr.UnknownMemberID})
					return
				case m.Epoch != epoch:
					reply(fetchedOffsets{err: kerr.StaleMemberEpoch})
					return
				}
			}
		}
		reply(fetchedOffsets{offsets: s.Fetch(g, tps)})
	})
	if e != nil {
		return fetchedOffsets{err: e}
	}
	return res
}

func (b *Broker) handleOffsetFetch(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.OffsetFetchRequest)
	resp := kmsg.NewPtrOffsetFetchResponse()
	resp.SetVersion(h.Version)
	if h.Version < 8 {
		var tps []group.TopicPartition
		if req.Topics != nil || h.Version < 2 {
			tps = []group.TopicPartition{}
			for _, t := range req.Topics {
				for _, p := range t.Partitions {
					tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p})
				}
			}
		}
		res := b.fetchOffsets(ctx, req.Group, tps, nil, 0)
		if res.err != nil && h.Version >= 2 {
			resp.ErrorCode = res.err.Code
		}
		if res.err != nil {
			// v0–v1 have no top-level error: every partition carries it.
			for _, tp := range tps {
				resp.Topics = appendFetchedV0(resp.Topics, tp, group.Offset{Offset: -1, LeaderEpoch: -1}, res.err)
			}
			return result{resp: resp}
		}
		for _, tp := range orderedTPs(tps, res.offsets) {
			resp.Topics = appendFetchedV0(resp.Topics, tp, res.offsets[tp], nil)
		}
		return result{resp: resp}
	}
	for _, rg := range req.Groups {
		og := kmsg.OffsetFetchResponseGroup{Group: rg.Group}
		var tps []group.TopicPartition
		ids := map[string][16]byte{}
		if rg.Topics != nil {
			tps = []group.TopicPartition{}
			for _, t := range rg.Topics {
				name := t.Topic
				if h.Version >= 10 {
					n, ok := b.topicNameByID(t.TopicID)
					if !ok {
						ot := kmsg.OffsetFetchResponseGroupTopic{TopicID: t.TopicID}
						for _, p := range t.Partitions {
							ot.Partitions = append(ot.Partitions, kmsg.OffsetFetchResponseGroupTopicPartition{Partition: p, Offset: -1, LeaderEpoch: -1, ErrorCode: kerr.UnknownTopicID.Code})
						}
						og.Topics = append(og.Topics, ot)
						continue
					}
					name = n
					ids[name] = t.TopicID
				}
				for _, p := range t.Partitions {
					tps = append(tps, group.TopicPartition{Topic: name, Partition: p})
				}
			}
		}
		var memberID *string
		if h.Version >= 9 {
			memberID = rg.MemberID
		}
		res := b.fetchOffsets(ctx, rg.Group, tps, memberID, rg.MemberEpoch)
		if res.err != nil {
			og.ErrorCode = res.err.Code
			og.Topics = nil
			resp.Groups = append(resp.Groups, og)
			continue
		}
		for _, tp := range orderedTPs(tps, res.offsets) {
			o := res.offsets[tp]
			if len(og.Topics) == 0 || og.Topics[len(og.Topics)-1].Topic != tp.Topic || (h.Version >= 10 && og.Topics[len(og.Topics)-1].TopicID == [16]byte{}) {
				id := ids[tp.Topic]
				if h.Version >= 10 && id == [16]byte{} {
					if t, ok := b.node.Meta().Topic(tp.Topic); ok {
						id = t.ID
					}
				}
				og.Topics = append(og.Topics, kmsg.OffsetFetchResponseGroupTopic{Topic: tp.Topic, TopicID: id})
			}
			ot := &og.Topics[len(og.Topics)-1]
			ot.Partitions = append(ot.Partitions, kmsg.OffsetFetchResponseGroupTopicPartition{Partition: tp.Partition, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: strp(o.Metadata)})
		}
		resp.Groups = append(resp.Groups, og)
	}
	return result{resp: resp}
}

// orderedTPs lists the partitions to answer: as asked, or every committed
// one sorted by topic and partition.
func orderedTPs(asked []group.TopicPartition, got map[group.TopicPartition]group.Offset) []group.TopicPartition {
	if asked != nil {
		return asked
	}
	return group.SortedTPs(got)
}

func appendFetchedV0(ts []kmsg.OffsetFetchResponseTopic, tp group.TopicPartition, o group.Offset, e *kerr.Error) []kmsg.OffsetFetchResponseTopic {
	if len(ts) == 0 || ts[len(ts)-1].Topic != tp.Topic {
		ts = append(ts, kmsg.OffsetFetchResponseTopic{Topic: tp.Topic})
	}
	t := &ts[len(ts)-1]
	t.Partitions = append(t.Partitions, kmsg.OffsetFetchResponseTopicPartition{Partition: tp.Partition, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch,
		Metadata: strp(o.Metadata), ErrorCode: groupCode(e)})
	return ts
}
