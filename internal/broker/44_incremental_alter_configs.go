package broker

// IncrementalAlterConfigs (key 44), versions 0–1.
//
// SET, DELETE, and for list configs (cleanup.policy) APPEND and SUBTRACT,
// on topics and on the dynamic broker defaults (resource "" or this
// broker's id: auto.create.topics.enable, num.partitions, log.retention.ms,
// log.retention.bytes, log.segment.bytes, log.roll.ms, message.max.bytes,
// min.insync.replicas). The resulting set is validated as a whole before
// anything changes; validate_only changes nothing; running partitions pick
// changes up at once.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleIncrementalAlterConfigs(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.IncrementalAlterConfigsRequest)
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	resp.SetVersion(h.Version)
	for _, rr := range req.Resources {
		out := kmsg.IncrementalAlterConfigsResponseResource{ResourceType: rr.ResourceType, ResourceName: rr.ResourceName}
		if terr := b.applyConfigChange(ctx, rr.ResourceType, rr.ResourceName, incremental(rr.ResourceType, rr.Configs), req.ValidateOnly); terr != nil {
			out.ErrorCode, out.ErrorMessage = terr.code.Code, &terr.msg
		}
		resp.Resources = append(resp.Resources, out)
	}
	return result{resp: resp}
}
