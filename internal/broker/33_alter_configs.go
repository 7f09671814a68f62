package broker

// AlterConfigs (key 33), versions 0–2.
//
// Replaces the whole set of a topic's overrides (configs not named return
// to their defaults), or of the dynamic broker defaults (resource "" or this
// broker's id; only the broker settings that can change live). Every value
// is validated before anything changes; validate_only changes nothing.
// Changes reach running partitions at once (retention, segment size and
// age, max.message.bytes, timestamp type).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleAlterConfigs(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.AlterConfigsRequest)
	resp := kmsg.NewPtrAlterConfigsResponse()
	resp.SetVersion(h.Version)
	for _, rr := range req.Resources {
		out := kmsg.AlterConfigsResponseResource{ResourceType: rr.ResourceType, ResourceName: rr.ResourceName}
		replace := func(map[string]string) (map[string]string, *topicErr) {
			next := map[string]string{}
			for _, c := range rr.Configs {
				if c.Value == nil {
					return nil, errWith(kerr.InvalidConfig, "config %q: null value", c.Name)
				}
				next[c.Name] = *c.Value
			}
			return next, nil
		}
		if terr := b.applyConfigChange(ctx, rr.ResourceType, rr.ResourceName, replace, req.ValidateOnly); terr != nil {
			out.ErrorCode, out.ErrorMessage = terr.code.Code, &terr.msg
		}
		resp.Resources = append(resp.Resources, out)
	}
	return result{resp: resp}
}
