package broker

// JoinGroup (key 11), versions 0–9.
//
// The classic group protocol's join, served by the group's coordinator
// shard (internal/group): KIP-394 member ids (v4+: a member without an id
// gets one with MEMBER_ID_REQUIRED), static membership (v5+
// group.instance.id: a rejoin with the same instance id takes over the old
// member id, which is fenced; a stable group does not rebalance and its
// static leader is told to skip the assignment, v9). The response waits
// until the rebalance completes (or the member's rebalance timeout). v0
// has no rebalance timeout: the session timeout stands in, as in Kafka.
// The leader gets every member's metadata as sent and its assignment is
// passed on untouched (client-side assignors).

import (
	"bytes"
	"context"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

// clientHost is how Kafka reports a member's address: "/" and the IP.
func (c *conn) clientHost() string {
	host, _, err := net.SplitHostPort(c.remote)
	if err != nil {
		host = c.remote
	}
	return "/" + host
}

func clientID(h *protocol.Header) string {
	if h.ClientID == nil {
		return ""
	}
	return *h.ClientID
}

func (b *Broker) handleJoinGroup(ctx context.Context, c *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.JoinGroupRequest)
	jr := group.JoinRequest{Group: req.Group, MemberID: req.MemberID, ClientID: clientID(h), ClientHost: c.clientHost(),
		ProtocolType: req.ProtocolType, SessionTimeout: time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond, RequireKnownMemberID: h.Version >= 4}
	if h.Version == 0 {
		jr.RebalanceTimeout = jr.SessionTimeout
	}
	if h.Version >= 5 {
		jr.InstanceID = req.InstanceID
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)})
	}
	version := h.Version
	respond := func(res group.JoinResult, e *kerr.Error) kmsg.Response {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.SetVersion(version)
		if e != nil {
			res = group.JoinResult{Err: e, Generation: -1, MemberID: req.MemberID}
		}
		resp.ErrorCode, resp.Generation, resp.MemberID, resp.LeaderID = groupCode(res.Err), res.Generation, res.MemberID, res.Leader
		if res.Err == nil {
			resp.ProtocolType, resp.Protocol = strp(res.ProtocolType), strp(res.Protocol)
			resp.SkipAssignment = res.SkipAssignment
			for _, m := range res.Members {
				resp.Members = append(resp.Members, kmsg.JoinGroupResponseMember{MemberID: m.ID, InstanceID: m.InstanceID, ProtocolMetadata: m.Metadata})
			}
		}
		return resp
	}
	if req.Group == "" {
		return result{resp: respond(group.JoinResult{Err: kerr.InvalidGroupID, Generation: -1, MemberID: req.MemberID}, nil)}
	}
	wait := group.Send(ctx, b.node.Coordinator(), req.Group, func(s *group.Groups, now time.Time, reply func(group.JoinResult)) {
		s.Join(jr, now, func(res group.JoinResult) {
			// The reply leaves the shard goroutine: copy what it shares.
			for i := range res.Members {
				res.Members[i].Metadata = bytes.Clone(res.Members[i].Metadata)
			}
			reply(res)
		})
	})
	return result{wait: func() kmsg.Response {
		wctx, cancel := context.WithTimeout(ctx, groupWait)
		defer cancel()
		return respond(wait(wctx))
	}}
}
