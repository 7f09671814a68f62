package broker

import (
	"encoding/binary"
	"errors"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
	"github.com/chronik-go/chronik/internal/quota"
)

// Kafka record batch header: records count at byte 57, batch length (after
// the first 12 bytes) at byte 8.
const (
	batchLenAt   = 8
	batchCountAt = 57
	batchHeader  = 61
)

// batchStats counts the records and bytes of concatenated record batches
// (of a request: not validated yet, so it trusts nothing).
func batchStats(b []byte) (records, bytes int64) {
	bytes = int64(len(b))
	for len(b) >= batchHeader {
		n := int(int32(binary.BigEndian.Uint32(b[batchLenAt:]))) + 12
		if n < batchHeader || n > len(b) {
			break
		}
		// A malformed batch may claim a negative count: counters only grow.
		if c := int32(binary.BigEndian.Uint32(b[batchCountAt:])); c > 0 {
			records += int64(c)
		}
		b = b[n:]
	}
	return records, bytes
}

// registerMetrics exposes the produce budget at scrape time.
func (b *Broker) registerMetrics() {
	m := b.metrics
	if m == nil {
		return
	}
	reg := m.Registry
	b.closedConns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_connections_closed_by_broker_total",
		Help: "Client connections the broker closed on purpose, by reason (idle: connections.max.idle.ms; request_timeout: a request frame did not arrive whole within socket.request.timeout.ms; response_timeout: the client read no response for that long)."}, []string{"reason"})
	for _, r := range []string{closedIdle, closedRequestTimeout, closedResponseTimeout} {
		b.closedConns.WithLabelValues(r)
	}
	reg.MustRegister(b.closedConns)
	stat := func() BudgetStats { return b.budget.Stats() }
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronik_produce_buffer_used_bytes", Help: "Bytes of requests admitted and not yet answered (the produce profile's budget in use; a produce request counts twice: frame and Raft entry)."},
			func() float64 { return float64(stat().Used) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronik_produce_buffer_limit_bytes", Help: "The produce profile's budget."},
			func() float64 { return float64(stat().Capacity) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chronik_produce_backpressure_seconds_total", Help: "Time requests spent waiting for budget (backpressure)."},
			func() float64 { return stat().Blocked.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chronik_produce_backpressure_waits_total", Help: "Requests that had to wait for budget."},
			func() float64 { return float64(stat().Waits) }),
		quotaCollector{b.quotas},
	)
}

// connClosed counts a connection the broker closed on purpose.
func (b *Broker) connClosed(reason string) {
	if b.closedConns != nil {
		b.closedConns.WithLabelValues(reason).Inc()
	}
}

// quotaCollector exposes the quota manager's throttle counters at scrape
// time, labelled by quota type.
type quotaCollector struct{ m *quota.Manager }

var (
	quotaThrottleSecondsDesc = prometheus.NewDesc("chronik_quota_throttle_seconds_total",
		"Throttle time handed to clients over their quota (throttle_time_ms), by quota type.", []string{"type"}, nil)
	quotaThrottledDesc = prometheus.NewDesc("chronik_quota_throttled_responses_total",
		"Responses that carried a throttle because the client was over its quota, by quota type.", []string{"type"}, nil)
)

func (q quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quotaThrottleSecondsDesc
	ch <- quotaThrottledDesc
}

func (q quotaCollector) Collect(ch chan<- prometheus.Metric) {
	for _, k := range []quota.Kind{quota.Produce, quota.Fetch, quota.Request} {
		st := q.m.Stats(k)
		ch <- prometheus.MustNewConstMetric(quotaThrottleSecondsDesc, prometheus.CounterValue, st.ThrottleTime.Seconds(), k.String())
		ch <- prometheus.MustNewConstMetric(quotaThrottledDesc, prometheus.CounterValue, float64(st.Throttled), k.String())
	}
}

// badFrame counts a request refused before any handler ran.
func (b *Broker) badFrame(err error) {
	if b.metrics == nil || err == nil {
		return
	}
	reason := "malformed"
	switch {
	case errors.Is(err, protocol.ErrFrameTooLarge):
		reason = "oversized"
	case errors.Is(err, protocol.ErrUnknownKey):
		reason = "unknown_api"
	case errors.Is(err, protocol.ErrUnsupportedVersion):
		reason = "unsupported_version"
	case !errors.Is(err, protocol.ErrMalformed):
		return // EOF, closed: not a bad request
	}
	b.metrics.BadFrames.WithLabelValues(reason).Inc()
}

// observe counts one handled request once its response is known (resp nil:
// no response, acks=0).
func (b *Broker) observe(key int16, req kmsg.Request, resp kmsg.Response, took time.Duration) {
	m := b.metrics
	if m == nil {
		return
	}
	api := kmsg.NameForKey(key)
	m.RequestDuration.WithLabelValues(api).Observe(took.Seconds())
	outcome := "ok"
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		// The failed partitions, built only when there are some (rare): the
		// common request allocates nothing here. acks=0 has no response;
		// what the request carried was stored.
		type tp struct {
			topic string
			part  int32
		}
		var failed map[tp]bool
		if pr, ok := resp.(*kmsg.ProduceResponse); ok {
			for _, t := range pr.Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode != 0 {
						if failed == nil {
							failed = map[tp]bool{}
						}
						failed[tp{t.Topic, p.Partition}] = true
					}
				}
			}
		}
		var received, stored, bytes int64
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				n, size := batchStats(p.Records)
				received += n
				if !failed[tp{t.Topic, p.Partition}] {
					stored += n
					bytes += size
				}
			}
		}
		m.MessagesReceived.Add(float64(received))
		m.MessagesStored.Add(float64(stored))
		m.BytesProduced.Add(float64(bytes))
		outcome = countResult(m.ProduceRequests, failed != nil)
	case *kmsg.FetchRequest:
		failed := false
		var fetched, bytes int64
		if fr, ok := resp.(*kmsg.FetchResponse); ok {
			failed = fr.ErrorCode != 0
			for _, t := range fr.Topics {
				for _, p := range t.Partitions {
					failed = failed || p.ErrorCode != 0
					n, size := batchStats(p.RecordBatches)
					fetched += n
					bytes += size
				}
			}
		}
		m.MessagesFetched.Add(float64(fetched))
		m.BytesFetched.Add(float64(bytes))
		outcome = countResult(m.FetchRequests, failed)
	default:
		if topLevelError(resp) {
			outcome = "error"
		}
	}
	m.Requests.WithLabelValues(api, outcome).Inc()
}

// countResult counts a produce or fetch request by result and returns the
// request's outcome label.
func countResult(c *prometheus.CounterVec, failed bool) string {
	if failed {
		c.WithLabelValues("error").Inc()
		return "error"
	}
	c.WithLabelValues("success").Inc()
	return "ok"
}

// topLevelError reports whether a response's top-level ErrorCode is set.
func topLevelError(resp kmsg.Response) bool {
	if resp == nil {
		return false
	}
	v := reflect.ValueOf(resp)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return false
	}
	f := v.FieldByName("ErrorCode")
	return f.IsValid() && f.Kind() == reflect.Int16 && f.Int() != 0
}
