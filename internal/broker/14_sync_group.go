package broker

// SyncGroup (key 14), versions 0–5.
//
// The leader's assignments are stored as sent and each member gets its own
// bytes back untouched, once the group's state record is durable in
// __consumer_offsets. v5 checks the protocol type and name
// (INCONSISTENT_GROUP_PROTOCOL on a mismatch) and returns them.

import (
	"bytes"
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleSyncGroup(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.SyncGroupRequest)
	sr := group.SyncRequest{Group: req.Group, Generation: req.Generation, MemberID: req.MemberID, Assignments: map[string][]byte{}}
	if h.Version >= 3 {
		sr.InstanceID = req.InstanceID
	}
	if h.Version >= 5 {
		sr.ProtocolType, sr.Protocol = req.ProtocolType, req.Protocol
	}
	for _, a := range req.GroupAssignment {
		sr.Assignments[a.MemberID] = bytes.Clone(a.MemberAssignment)
	}
	version := h.Version
	respond := func(res group.SyncResult, e *kerr.Error) kmsg.Response {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.SetVersion(version)
		if e != nil {
			res = group.SyncResult{Err: e}
		}
		resp.ErrorCode = groupCode(res.Err)
		if res.Err == nil {
			resp.ProtocolType, resp.Protocol, resp.MemberAssignment = strp(res.ProtocolType), strp(res.Protocol), res.Assignment
		}
		if resp.MemberAssignment == nil {
			resp.MemberAssignment = []byte{}
		}
		return resp
	}
	if req.Group == "" {
		return result{resp: respond(group.SyncResult{Err: kerr.InvalidGroupID}, nil)}
	}
	wait := group.Send(ctx, b.node.Coordinator(), req.Group, func(s *group.Groups, now time.Time, reply func(group.SyncResult)) {
		s.Sync(sr, now, func(res group.SyncResult) {
			res.Assignment = bytes.Clone(res.Assignment)
			reply(res)
		})
	})
	return result{wait: func() kmsg.Response {
		wctx, cancel := context.WithTimeout(ctx, groupWait)
		defer cancel()
		return respond(wait(wctx))
	}}
}
