package broker

// DescribeCluster (key 60), versions 0–2.
//
// The registered brokers, the cluster id and the controller (the metadata
// group's leader). Chronik nodes are brokers and controllers at once, so
// the controllers endpoint type (v1+) lists the same nodes. No broker is
// ever fenced. Authorized operations are not computed (no authorizer).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleDescribeCluster(_ context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.DescribeClusterRequest)
	resp := kmsg.NewPtrDescribeClusterResponse()
	resp.SetVersion(h.Version)
	resp.EndpointType = req.EndpointType
	if resp.EndpointType == 0 {
		resp.EndpointType = 1
	}
	resp.ClusterID = b.node.Meta().ClusterID()
	resp.ControllerID = b.node.ControllerID()
	resp.ClusterAuthorizedOperations = noAuthorizedOperations
	for _, br := range b.node.Meta().Brokers() {
		resp.Brokers = append(resp.Brokers, kmsg.DescribeClusterResponseBroker{NodeID: br.ID, Host: br.Host, Port: br.Port, Rack: rackOf(br)})
	}
	return result{resp: resp}
}
