package broker

// DescribeGroups (key 15), versions 0–6.
//
// State, protocol and members of classic groups, each answered by its
// coordinator shard. Member metadata is reported in CompletingRebalance and
// Stable, assignments only in Stable, as Kafka does. An unknown group, or a
// KIP-848 consumer group (described by ConsumerGroupDescribe), is
// GROUP_ID_NOT_FOUND with a message from v6, and state Dead before it.
// Authorized operations are not computed (no authorizer).

import (
	"bytes"
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleDescribeGroups(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.DescribeGroupsRequest)
	resp := kmsg.NewPtrDescribeGroupsResponse()
	resp.SetVersion(h.Version)
	for _, id := range req.Groups {
		og := kmsg.DescribeGroupsResponseGroup{Group: id, AuthorizedOperations: noAuthorizedOperations}
		if id == "" {
			og.ErrorCode = kerr.InvalidGroupID.Code
			resp.Groups = append(resp.Groups, og)
			continue
		}
		type described struct {
			d        group.Description
			consumer bool
		}
		res, e := group.Call(ctx, b.node.Coordinator(), id, func(s *group.Groups, _ time.Time, reply func(described)) {
			d := s.Describe(id)
			for i := range d.Members {
				d.Members[i].Metadata, d.Members[i].Assignment = bytes.Clone(d.Members[i].Metadata), bytes.Clone(d.Members[i].Assignment)
			}
			g, ok := s.Get(id)
			reply(described{d: d, consumer: ok && g.Consumer != nil})
		})
		switch {
		case e != nil:
			og.ErrorCode = e.Code
		case res.consumer || res.d.State == group.Dead.String():
			og.State = group.Dead.String()
			if h.Version >= 6 {
				og.ErrorCode = kerr.GroupIDNotFound.Code
				msg := "group " + id + " does not exist"
				if res.consumer {
					msg = "group " + id + " is not a classic group"
				}
				og.ErrorMessage = &msg
				og.State = ""
			}
		default:
			og.State, og.ProtocolType, og.Protocol = res.d.State, res.d.ProtocolType, res.d.Protocol
			for _, m := range res.d.Members {
				om := kmsg.DescribeGroupsResponseGroupMember{MemberID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
					ProtocolMetadata: m.Metadata, MemberAssignment: m.Assignment}
				if om.ProtocolMetadata == nil {
					om.ProtocolMetadata = []byte{}
				}
				if om.MemberAssignment == nil {
					om.MemberAssignment = []byte{}
				}
				og.Members = append(og.Members, om)
			}
		}
		resp.Groups = append(resp.Groups, og)
	}
	return result{resp: resp}
}
