package broker

// ConsumerGroupHeartbeat (key 68), versions 0–1.
//
// KIP-848's consumer protocol: the member sends its subscription (names, or
// a regex from v1) and the partitions it owns; the coordinator computes
// the target assignment with a server-side assignor ("uniform", the
// default, or "range") and moves the member towards it, revoking before
// reassigning. Fields left null mean unchanged. v1 requires the client to
// choose its member id. Topics are named by id on the wire; owned
// partitions of topics that no longer exist are dropped.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleConsumerGroupHeartbeat(ctx context.Context, c *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.ConsumerGroupHeartbeatRequest)
	hr := group.HeartbeatRequest{Version: h.Version, Group: req.Group, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch,
		InstanceID: req.InstanceID, RackID: req.RackID, ClientID: clientID(h), ClientHost: c.clientHost(),
		Subscribed: req.SubscribedTopicNames, Assignor: req.ServerAssignor, OwnedKnown: req.Topics != nil}
	if req.RebalanceTimeoutMillis > 0 {
		hr.RebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if h.Version >= 1 {
		hr.Regex = req.SubscribedTopicRegex
	}
	for _, t := range req.Topics {
		name, ok := b.topicNameByID(t.TopicID)
		if !ok {
			continue
		}
		for _, p := range t.Partitions {
			hr.Owned = append(hr.Owned, group.TopicPartition{Topic: name, Partition: p})
		}
	}
	version := h.Version
	topics := topicsView{b.node.Meta()}
	wait := group.Send(ctx, b.node.Coordinator(), req.Group, func(s *group.Groups, now time.Time, reply func(group.HeartbeatResult)) {
		s.ConsumerHeartbeat(hr, topics, now, reply)
	})
	return result{wait: func() kmsg.Response {
		res, e := wait(ctx)
		resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
		resp.SetVersion(version)
		if e != nil {
			res = group.HeartbeatResult{Err: e}
		}
		resp.ErrorCode = groupCode(res.Err)
		if res.Err != nil {
			if res.Message != "" {
				resp.ErrorMessage = &res.Message
			}
			resp.MemberEpoch = res.MemberEpoch
			if req.MemberID != "" {
				resp.MemberID = &req.MemberID
			}
			return resp
		}
		resp.MemberID, resp.MemberEpoch = &res.MemberID, res.MemberEpoch
		resp.HeartbeatIntervalMillis = int32(res.HeartbeatInterval / time.Millisecond)
		if res.Assigned {
			a := &kmsg.ConsumerGroupHeartbeatResponseAssignment{Topics: []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}}
			for _, tp := range res.Assignment {
				info, ok := topics.Topic(tp.Topic)
				if !ok {
					continue
				}
				if n := len(a.Topics); n == 0 || a.Topics[n-1].TopicID != info.ID {
					a.Topics = append(a.Topics, kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{TopicID: info.ID})
				}
				t := &a.Topics[len(a.Topics)-1]
				t.Partitions = append(t.Partitions, tp.Partition)
			}
			resp.Assignment = a
		}
		return resp
	}}
}
