package broker

// LeaveGroup (key 13), versions 0–5.
//
// v0–v2 name one member id; v3+ (KIP-345) a batch of members by member id
// and/or group.instance.id, each with its own error code
// (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID). The group rebalances once for
// the whole batch.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

// memberErrors is a batch answer of the coordinator: one error per item
// (member, partition) and one for the whole group.
type memberErrors struct {
	errs  []*kerr.Error
	group *kerr.Error
}

func (b *Broker) handleLeaveGroup(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.LeaveGroupRequest)
	resp := kmsg.NewPtrLeaveGroupResponse()
	resp.SetVersion(h.Version)
	var members []group.LeaveMember
	if h.Version < 3 {
		members = []group.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			members = append(members, group.LeaveMember{MemberID: m.MemberID, InstanceID: m.InstanceID})
		}
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return result{resp: resp}
	}
	wait := group.Send(ctx, b.node.Coordinator(), req.Group, func(s *group.Groups, now time.Time, reply func(memberErrors)) {
		errs, gerr := s.Leave(req.Group, members, now)
		reply(memberErrors{errs, gerr})
	})
	return result{wait: func() kmsg.Response {
		res, e := wait(ctx)
		if e == nil {
			e = res.group
		}
		if e != nil {
			resp.ErrorCode = e.Code
			return resp
		}
		if h.Version < 3 {
			resp.ErrorCode = groupCode(res.errs[0])
			return resp
		}
		for i, m := range req.Members {
			resp.Members = append(resp.Members, kmsg.LeaveGroupResponseMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ErrorCode: groupCode(res.errs[i])})
		}
		return resp
	}}
}
