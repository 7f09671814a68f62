package broker

// ListGroups (key 16), versions 0–5.
//
// The groups of every offsets partition this node coordinates (a client
// asks every broker). v4+ filters by state (case-insensitive, as Kafka),
// v5+ by type ("classic", "consumer"). While a partition is still being
// read back the answer is COORDINATOR_LOAD_IN_PROGRESS with the groups
// known so far.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleListGroups(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.ListGroupsRequest)
	resp := kmsg.NewPtrListGroupsResponse()
	resp.SetVersion(h.Version)
	match := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	var out []kmsg.ListGroupsResponseGroup
	loading, err := b.node.Coordinator().Each(ctx, func(s *group.Groups, _ time.Time) {
		for _, g := range s.All() {
			if g.State == group.Dead {
				continue
			}
			state, typ := g.StateName(), g.Type()
			if (h.Version >= 4 && !match(req.StatesFilter, state)) || (h.Version >= 5 && !match(req.TypesFilter, typ)) {
				continue
			}
			pt := g.ProtocolType
			if g.Consumer != nil {
				pt = "consumer"
			}
			out = append(out, kmsg.ListGroupsResponseGroup{Group: g.ID, ProtocolType: pt, GroupState: state, GroupType: typ})
		}
	})
	var ke *kerr.Error
	switch {
	case err != nil && errors.As(err, &ke):
		resp.ErrorCode = ke.Code
	case err != nil:
		resp.ErrorCode = kerr.UnknownServerError.Code
	case loading:
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	}
	slices.SortFunc(out, func(a, b kmsg.ListGroupsResponseGroup) int { return strings.Compare(a.Group, b.Group) })
	resp.Groups = out
	return result{resp: resp}
}
