package broker

// ApiVersions (key 18), versions 0–4.
//
// Advertises exactly the dispatch table (register in broker.go): every key
// and version range with a handler and tests, nothing else. An ApiVersions
// request of a version we do not serve is answered by the connection with a
// v0 response carrying UNSUPPORTED_VERSION and this table (KIP-511). The
// client software name and version of v3+ are accepted and ignored.
// Deliberate gaps: no supported or finalized features (no KRaft feature
// levels to report).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleAPIVersions(_ context.Context, _ *conn, h *protocol.Header, _ kmsg.Request) result {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(h.Version)
	resp.ApiKeys = b.versions.APIKeys()
	return result{resp: resp}
}
