package broker

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/protocol"
	"github.com/chronik-go/chronik/internal/quota"
)

// Client quotas: the table lives in the metadata log; every node rebuilds
// its quota.Table whenever an alter_client_quotas command applies, and
// measures its own connections (Kafka's quotas are per broker too).

// initQuotas builds the quota manager from the node's configuration and
// keeps its table in step with the metadata state.
func (b *Broker) initQuotas() {
	cfg := b.node.Config()
	b.quotas = quota.NewManager(quota.Window{Samples: int(cfg.QuotaWindowNum), Size: time.Duration(cfg.QuotaWindowSizeSeconds) * time.Second})
	st := b.node.Meta()
	// The watcher and the initial load may race; the mutex makes the one
	// that reads later also store later, so the newest table wins.
	var mu sync.Mutex
	load := func() {
		mu.Lock()
		defer mu.Unlock()
		b.quotas.SetTable(quota.NewTable(st.Quotas()))
	}
	st.OnApply(func(c *meta.Command) {
		if c.Op == meta.OpAlterClientQuotas {
			load()
		}
	})
	load()
}

// raiseThrottle puts d into a response's throttle_time_ms unless a longer
// throttle is already there (a response carries the longest of the quotas
// it violated, as in Kafka).
func raiseThrottle(resp kmsg.Response, d time.Duration) {
	if d <= 0 || resp == nil {
		return
	}
	tr, ok := resp.(kmsg.ThrottleResponse)
	if !ok {
		return
	}
	ms := int32(min(d.Milliseconds(), 1<<31-1))
	if cur, _ := tr.Throttle(); cur < ms {
		if st, ok := resp.(kmsg.SetThrottleResponse); ok {
			st.SetThrottle(ms)
		}
	}
}

// recordRequestTime charges a request's handler time to the request
// quota (request_percentage: percent of one thread's time) and mutes the
// connection when it is over. ApiVersions is exempt: a client must always
// be able to learn what it may send.
func (c *conn) recordRequestTime(h *protocol.Header, took time.Duration) time.Duration {
	if h.Key == int16(kmsg.ApiVersions) {
		return 0
	}
	if !c.b.quotas.Active(quota.Request) {
		return 0
	}
	d := c.b.quotas.Record(&c.quota, quota.Request, c.principal, clientID(h), time.Now(), took.Seconds()*100)
	c.throttle(d)
	return d
}
