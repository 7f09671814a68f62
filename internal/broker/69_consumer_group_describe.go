package broker

// ConsumerGroupDescribe (key 69), versions 0–1.
//
// KIP-848 groups: epochs, assignor, each member's subscription, current
// and target assignment. An unknown group, or a classic one, is
// GROUP_ID_NOT_FOUND with a message. Authorized operations are not
// computed (no authorizer).

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleConsumerGroupDescribe(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.ConsumerGroupDescribeRequest)
	resp := kmsg.NewPtrConsumerGroupDescribeResponse()
	resp.SetVersion(h.Version)
	topics := topicsView{b.node.Meta()}
	assignment := func(tps []group.TopicPartition) kmsg.Assignment {
		var a kmsg.Assignment
		for _, tp := range tps {
			info, ok := topics.Topic(tp.Topic)
			if !ok {
				continue
			}
			if n := len(a.TopicPartitions); n == 0 || a.TopicPartitions[n-1].Topic != tp.Topic {
				a.TopicPartitions = append(a.TopicPartitions, kmsg.AssignmentTopicPartition{TopicID: info.ID, Topic: tp.Topic})
			}
			t := &a.TopicPartitions[len(a.TopicPartitions)-1]
			t.Partitions = append(t.Partitions, tp.Partition)
		}
		return a
	}
	for _, id := range req.Groups {
		og := kmsg.ConsumerGroupDescribeResponseGroup{Group: id, AuthorizedOperations: noAuthorizedOperations}
		if id == "" {
			og.ErrorCode = kerr.InvalidGroupID.Code
			resp.Groups = append(resp.Groups, og)
			continue
		}
		res, e := group.Call(ctx, b.node.Coordinator(), id, func(s *group.Groups, _ time.Time, reply func(*kmsg.ConsumerGroupDescribeResponseGroup)) {
			d, ok := s.DescribeConsumer(id)
			if !ok {
				reply(nil)
				return
			}
			// Built here: the members belong to the shard goroutine.
			out := &kmsg.ConsumerGroupDescribeResponseGroup{Group: id, State: d.State, Epoch: d.Epoch, AssignmentEpoch: d.AssignmentEpoch,
				AssignorName: d.Assignor, AuthorizedOperations: noAuthorizedOperations}
			for _, m := range d.Members {
				om := kmsg.ConsumerGroupDescribeResponseGroupMember{MemberID: m.ID, InstanceID: m.InstanceID, RackID: m.RackID, MemberEpoch: m.Epoch,
					ClientID: m.ClientID, ClientHost: m.ClientHost, SubscribedTopics: slices.Clone(m.Subscribed),
					Assignment: assignment(m.Assigned), TargetAssignment: assignment(d.Targets[m.ID]), MemberType: 1}
				if om.SubscribedTopics == nil {
					om.SubscribedTopics = []string{}
				}
				if m.Regex != "" {
					om.SubscribedTopicRegex = strp(m.Regex)
				}
				out.Members = append(out.Members, om)
			}
			reply(out)
		})
		switch {
		case e != nil:
			og.ErrorCode = e.Code
		case res == nil:
			og.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "group " + id + " is not a consumer group"
			og.ErrorMessage = &msg
		default:
			og = *res
		}
		resp.Groups = append(resp.Groups, og)
	}
	return result{resp: resp}
}
