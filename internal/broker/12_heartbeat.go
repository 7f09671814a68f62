package broker

// Heartbeat (key 12), versions 0–4.
//
// Keeps a classic member's session alive. REBALANCE_IN_PROGRESS tells it
// to rejoin; ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID and FENCED_INSTANCE_ID
// (v3+ static members) are Kafka's answers for stale members.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleHeartbeat(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.HeartbeatRequest)
	resp := kmsg.NewPtrHeartbeatResponse()
	resp.SetVersion(h.Version)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return result{resp: resp}
	}
	instance := req.InstanceID
	if h.Version < 3 {
		instance = nil
	}
	wait := group.Send(ctx, b.node.Coordinator(), req.Group, func(s *group.Groups, now time.Time, reply func(*kerr.Error)) {
		reply(s.Heartbeat(req.Group, req.MemberID, instance, req.Generation, now))
	})
	return result{wait: func() kmsg.Response {
		res, e := wait(ctx)
		if e == nil {
			e = res
		}
		resp.ErrorCode = groupCode(e)
		return resp
	}}
}
