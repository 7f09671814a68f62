package broker

// InitProducerID (key 22), versions 0–5.
//
// Gives an idempotent producer a producer id from blocks reserved in the
// metadata log (unique across brokers and restarts), epoch 0. A producer
// that already has an id and asks again with it (KIP-360, v3+) gets the
// same id with the next epoch, which fences its older incarnation; at the
// last epoch it gets a fresh id instead.
// Deliberate gap: a transactional id is refused with UNSUPPORTED_VERSION
// until transactions land.

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleInitProducerID(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.InitProducerIDRequest)
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.SetVersion(h.Version)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return result{resp: resp}
	}
	if req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16-1 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return result{resp: resp}
	}
	id, err := b.node.AllocateProducerID(ctx)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return result{resp: resp}
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return result{resp: resp}
}
