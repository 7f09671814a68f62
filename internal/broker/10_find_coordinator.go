package broker

// FindCoordinator (key 10), versions 0–6.
//
// A group's coordinator is the leader of its __consumer_offsets partition
// (abs(hashCode(group)) % partitions, as Kafka computes it), so in a
// cluster it moves with that leadership. The offsets topic is created by
// the first request that needs it. v4+ batches keys. While the partition
// has no leader the answer is COORDINATOR_NOT_AVAILABLE, which clients
// retry. Deliberate gaps: transaction coordinators (key type 1) and share
// groups (key type 2) are not served: INVALID_REQUEST with a message, so
// that a transactional producer fails at once instead of retrying.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleFindCoordinator(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.FindCoordinatorRequest)
	resp := kmsg.NewPtrFindCoordinatorResponse()
	resp.SetVersion(h.Version)
	if h.Version < 4 {
		c := b.findCoordinator(ctx, req.CoordinatorType, req.CoordinatorKey)
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
		return result{resp: resp}
	}
	for _, key := range req.CoordinatorKeys {
		resp.Coordinators = append(resp.Coordinators, b.findCoordinator(ctx, req.CoordinatorType, key))
	}
	return result{resp: resp}
}

func (b *Broker) findCoordinator(ctx context.Context, keyType int8, key string) kmsg.FindCoordinatorResponseCoordinator {
	c := kmsg.FindCoordinatorResponseCoordinator{Key: key, NodeID: -1, Port: -1}
	fail := func(e *kerr.Error, msg string) kmsg.FindCoordinatorResponseCoordinator {
		c.ErrorCode = e.Code
		if msg == "" {
			msg = e.Description
		}
		c.ErrorMessage = &msg
		return c
	}
	switch keyType {
	case 0:
	case 1:
		return fail(kerr.InvalidRequest, "transactions are not supported by this broker")
	default:
		return fail(kerr.InvalidRequest, "unknown coordinator key type")
	}
	if key == "" {
		return fail(kerr.InvalidRequest, "the group id is empty")
	}
	if e := b.ensureOffsetsTopic(ctx); e != nil {
		return fail(e, "")
	}
	idx := b.node.Coordinator().PartitionFor(key)
	leader, _ := b.node.Leader(group.OffsetsTopic, idx)
	if leader < 0 {
		return fail(kerr.CoordinatorNotAvailable, "")
	}
	for _, br := range b.node.Meta().Brokers() {
		if br.ID == leader {
			c.NodeID, c.Host, c.Port = br.ID, br.Host, br.Port
			none := "NONE"
			c.ErrorMessage = &none
			return c
		}
	}
	return fail(kerr.CoordinatorNotAvailable, "")
}
