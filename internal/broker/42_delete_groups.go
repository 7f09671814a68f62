package broker

// DeleteGroups (key 42), versions 0–2.
//
// Deletes groups without members, with their committed offsets (tombstones
// in __consumer_offsets). A group with members is NON_EMPTY_GROUP, an
// unknown one GROUP_ID_NOT_FOUND.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleDeleteGroups(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.DeleteGroupsRequest)
	resp := kmsg.NewPtrDeleteGroupsResponse()
	resp.SetVersion(h.Version)
	for _, id := range req.Groups {
		og := kmsg.DeleteGroupsResponseGroup{Group: id}
		if id == "" {
			og.ErrorCode = kerr.InvalidGroupID.Code
		} else {
			res, e := group.Call(ctx, b.node.Coordinator(), id, func(s *group.Groups, _ time.Time, reply func(*kerr.Error)) {
				s.DeleteGroup(id, reply)
			})
			if e == nil {
				e = res
			}
			og.ErrorCode = groupCode(e)
		}
		resp.Groups = append(resp.Groups, og)
	}
	return result{resp: resp}
}
