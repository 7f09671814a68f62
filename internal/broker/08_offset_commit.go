package broker

// OffsetCommit (key 8), versions 0–10.
//
// Commits are records of __consumer_offsets (Kafka's key v1 / value v3),
// appended with acks=all through the offsets partition's Raft group; the
// response waits until they are committed. Kafka's rules for who may
// commit: anyone to a group without members (generation -1, no member id);
// a classic member with its current generation (ILLEGAL_GENERATION,
// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, REBALANCE_IN_PROGRESS while the
// group completes a rebalance); a KIP-848 member with its member epoch
// (STALE_MEMBER_EPOCH). Unknown partitions get UNKNOWN_TOPIC_OR_PARTITION
// (v10, by topic id: UNKNOWN_TOPIC_ID); metadata over
// offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE. v1's
// per-partition timestamp and v2–v4's retention time are ignored (KIP-211:
// offsets expire when their group has been empty for
// offsets.retention.minutes).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleOffsetCommit(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.OffsetCommitRequest)
	resp := kmsg.NewPtrOffsetCommitResponse()
	resp.SetVersion(h.Version)
	cr := group.CommitRequest{Group: req.Group, MemberID: req.MemberID, Generation: req.Generation}
	if h.Version == 0 {
		cr.Generation, cr.MemberID = -1, ""
	}
	if h.Version >= 7 {
		cr.InstanceID = req.InstanceID
	}
	// slot says where each committed partition's error goes; resolve holds
	// errors decided here (unknown topic ids).
	type slot struct{ t, p int }
	var slots []slot
	for ti, rt := range req.Topics {
		name := rt.Topic
		known := true
		if h.Version >= 10 {
			name, known = b.topicNameByID(rt.TopicID)
		}
		ot := kmsg.OffsetCommitResponseTopic{Topic: rt.Topic, TopicID: rt.TopicID}
		for pi, rp := range rt.Partitions {
			ot.Partitions = append(ot.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: rp.Partition})
			if !known {
				ot.Partitions[pi].ErrorCode = kerr.UnknownTopicID.Code
				continue
			}
			o := group.CommitOffset{TopicPartition: group.TopicPartition{Topic: name, Partition: rp.Partition}, Offset: group.Offset{Offset: rp.Offset, LeaderEpoch: -1}}
			if h.Version >= 6 {
				o.LeaderEpoch = rp.LeaderEpoch
			}
			if rp.Metadata != nil {
				o.Metadata = *rp.Metadata
			}
			cr.Offsets = append(cr.Offsets, o)
			slots = append(slots, slot{ti, pi})
		}
		resp.Topics = append(resp.Topics, ot)
	}
	setAll := func(errs []*kerr.Error, e *kerr.Error) kmsg.Response {
		for i, s := range slots {
			err := e
			if err == nil {
				err = errs[i]
			}
			resp.Topics[s.t].Partitions[s.p].ErrorCode = groupCode(err)
		}
		return resp
	}
	if len(cr.Offsets) == 0 {
		return result{resp: resp}
	}
	if req.Group == "" {
		return result{resp: setAll(nil, kerr.InvalidGroupID)}
	}
	known := b.knownPartition()
	wait := group.Send(ctx, b.node.Coordinator(), req.Group, func(s *group.Groups, now time.Time, reply func([]*kerr.Error)) {
		s.Commit(cr, now, known, reply)
	})
	return result{wait: func() kmsg.Response {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		errs, e := wait(wctx)
		return setAll(errs, e)
	}}
}
