package broker

// OffsetDelete (key 47), version 0.
//
// Deletes a group's committed offsets of partitions the group no longer
// consumes: a partition of a topic a member is subscribed to is refused
// with GROUP_SUBSCRIBED_TO_TOPIC; an unknown partition is
// UNKNOWN_TOPIC_OR_PARTITION; an unknown group GROUP_ID_NOT_FOUND.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleOffsetDelete(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.OffsetDeleteRequest)
	resp := kmsg.NewPtrOffsetDeleteResponse()
	resp.SetVersion(h.Version)
	known := b.knownPartition()
	var tps []group.TopicPartition
	type slot struct{ t, p int }
	var slots []slot
	for ti, rt := range req.Topics {
		ot := kmsg.OffsetDeleteResponseTopic{Topic: rt.Topic}
		for pi, rp := range rt.Partitions {
			op := kmsg.OffsetDeleteResponseTopicPartition{Partition: rp.Partition}
			tp := group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}
			if !known(tp) {
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				tps = append(tps, tp)
				slots = append(slots, slot{ti, pi})
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return result{resp: resp}
	}
	res, e := group.Call(ctx, b.node.Coordinator(), req.Group, func(s *group.Groups, _ time.Time, reply func(memberErrors)) {
		if len(tps) == 0 {
			if g, ok := s.Get(req.Group); !ok || g.State == group.Dead {
				reply(memberErrors{group: kerr.GroupIDNotFound})
				return
			}
			reply(memberErrors{})
			return
		}
		s.DeleteOffsets(req.Group, tps, func(errs []*kerr.Error, ge *kerr.Error) { reply(memberErrors{errs, ge}) })
	})
	if e == nil {
		e = res.group
	}
	if e != nil {
		resp.ErrorCode = e.Code
		resp.Topics = nil
		return result{resp: resp}
	}
	for i, s := range slots {
		resp.Topics[s.t].Partitions[s.p].ErrorCode = groupCode(res.errs[i])
	}
	return result{resp: resp}
}
