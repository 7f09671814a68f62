// Package metrics holds the broker's Prometheus metrics. One Metrics is
// made per server on an injected registry and handed to the parts that
// count; gauges of state (partitions, leaders, groups, lag) are read at
// scrape time through Collect functions, so they are never stale.
//
// Names follow the original Chronik's where it had one
// (chronik_messages_received_total, chronik_produce_requests_total{result},
// chronik_bytes_produced_total, chronik_fetch_requests_total{result},
// chronik_wal_fsync_total, …) so that existing dashboards keep working.
package metrics

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is every metric of one broker.
type Metrics struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // api, outcome
	RequestDuration *prometheus.HistogramVec // api
	ProduceRequests *prometheus.CounterVec   // result
	FetchRequests   *prometheus.CounterVec   // result

	MessagesReceived prometheus.Counter
	MessagesStored   prometheus.Counter
	BytesProduced    prometheus.Counter
	MessagesFetched  prometheus.Counter
	BytesFetched     prometheus.Counter

	conns            atomic.Int64
	ConnectionsTotal prometheus.Counter
	BadFrames        *prometheus.CounterVec // reason
	AcceptErrors     prometheus.Counter
	ConnsRejected    *prometheus.CounterVec // reason

	ProduceProfileActive prometheus.Gauge

	WALWrites          *prometheus.CounterVec // result
	WALBytes           prometheus.Counter
	WALFsyncs          prometheus.Counter
	WALRounds          prometheus.Counter
	WALBatchWrites     prometheus.Histogram
	WALFsyncSeconds    prometheus.Histogram
	WALWriteSeconds    prometheus.Histogram
	WALBlockedSeconds  prometheus.Counter
	SegmentRolls       prometheus.Counter
	RetentionDeletions prometheus.Counter
	ScrubBytes         prometheus.Counter
	ScrubDamage        prometheus.Counter
	// Replication: elections won and in-sync replica changes of the
	// partitions this node leads.
	LeaderElections prometheus.Counter
	ISRShrinks      prometheus.Counter
	ISRExpands      prometheus.Counter

	Rebalances *prometheus.CounterVec // protocol
}

// New makes the metrics on reg (a fresh registry when nil), with the Go
// runtime and process collectors.
func New(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := factory{reg}
	m := &Metrics{Registry: reg}
	m.Requests = f.counterVec("chronik_kafka_requests_total", "Kafka requests answered, by API and outcome (ok; error: the response carries a top-level error code, or for produce and fetch a partition's).", "api", "outcome")
	m.RequestDuration = f.histogramVec("chronik_kafka_request_duration_seconds", "Time from a request's arrival to its response being ready, by API (for produce: including the wait for durability).",
		[]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "api")
	m.ProduceRequests = f.counterVec("chronik_produce_requests_total", "Produce requests, by result (success: every partition stored; error: any partition failed).", "result")
	m.FetchRequests = f.counterVec("chronik_fetch_requests_total", "Fetch requests, by result.", "result")
	m.MessagesReceived = f.counter("chronik_messages_received_total", "Records received in produce requests.")
	m.MessagesStored = f.counter("chronik_messages_stored_total", "Records stored and acknowledged (acks=0: stored).")
	m.BytesProduced = f.counter("chronik_bytes_produced_total", "Record batch bytes stored from produce requests.")
	m.MessagesFetched = f.counter("chronik_messages_fetched_total", "Records returned by fetch requests (counted from batch headers).")
	m.BytesFetched = f.counter("chronik_bytes_fetched_total", "Record batch bytes returned by fetch requests.")
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronik_active_connections", Help: "Open Kafka client connections."},
		func() float64 { return float64(m.conns.Load()) }))
	m.ConnectionsTotal = f.counter("chronik_connections_total", "Kafka client connections accepted.")
	m.AcceptErrors = f.counter("chronik_accept_errors_total", "Failed accepts on the Kafka listener (too many open files, aborted connections); the listener backs off 5 ms doubling to 1 s and goes on accepting.")
	m.ConnsRejected = f.counterVec("chronik_connections_rejected_total", "Kafka client connections closed at once because a cap was reached, by reason (max_connections, max_connections_per_ip).", "reason")
	for _, r := range []string{"max_connections", "max_connections_per_ip"} {
		m.ConnsRejected.WithLabelValues(r) // exported at 0 before the first rejection
	}
	m.BadFrames = f.counterVec("chronik_bad_requests_total", "Requests refused before any handler ran, by reason (oversized, malformed, unknown_api, unsupported_version).", "reason")
	m.ProduceProfileActive = f.gauge("chronik_produce_profile_active", "The produce profile: 0 low-latency, 1 balanced, 2 high-throughput, 3 extreme.")
	m.WALWrites = f.counterVec("chronik_wal_writes_total", "Writes through the group committer, by result.", "result")
	m.WALBytes = f.counter("chronik_wal_bytes_written_total", "Bytes written through the group committer.")
	m.WALFsyncs = f.counter("chronik_wal_fsync_total", "fdatasync calls (one per file per round).")
	m.WALRounds = f.counter("chronik_wal_batch_count_total", "Group-commit rounds.")
	m.WALBatchWrites = f.histogram("chronik_wal_batch_writes", "Writes per group-commit round.", prometheus.ExponentialBuckets(1, 2, 15))
	m.WALFsyncSeconds = f.histogram("chronik_wal_fsync_duration_seconds", "Time of a round's fdatasync phase (all files synced concurrently).",
		[]float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1})
	m.WALWriteSeconds = f.histogram("chronik_wal_write_duration_seconds", "Time of a round's write phase (pwritev).",
		[]float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05})
	m.WALBlockedSeconds = f.counter("chronik_wal_backpressure_seconds_total", "Time appenders waited for space in the committer's queue.")
	m.SegmentRolls = f.counter("chronik_wal_segment_rotations_total", "Segments rolled (by size or age).")
	m.LeaderElections = f.counter("chronik_leader_elections_total", "Partition leaderships this node won (Raft elections and leadership transfers).")
	m.ISRShrinks = f.counter("chronik_isr_shrinks_total", "Times a partition this node leads lost an in-sync replica (its durable log fell behind for replica.lag.time.max.ms).")
	m.ISRExpands = f.counter("chronik_isr_expands_total", "Times a partition this node leads regained an in-sync replica.")
	m.RetentionDeletions = f.counter("chronik_segments_cleaned_total", "Segments deleted by retention (time or size).")
	m.ScrubBytes = f.counter("chronik_scrub_bytes_total", "Bytes of sealed segments whose CRCs the background scrub checked (log.scrub.bytes.per.second).")
	m.ScrubDamage = f.counter("chronik_scrub_damage_found_total", "Partition logs in which the background scrub found damage (each is taken offline).")
	m.Rebalances = f.counterVec("chronik_group_rebalances_total", "Group rebalances started, by protocol (classic, consumer).", "protocol")
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// ISRChanged counts a change of a led partition's in-sync replicas (prev
// nil: the node just became leader, not a change).
func (m *Metrics) ISRChanged(prev, isr []uint64) {
	if prev == nil {
		return
	}
	for _, id := range prev {
		if !slices.Contains(isr, id) {
			m.ISRShrinks.Inc()
			break
		}
	}
	for _, id := range isr {
		if !slices.Contains(prev, id) {
			m.ISRExpands.Inc()
			break
		}
	}
}

// ConnOpened counts a new client connection; ConnClosed its end.
func (m *Metrics) ConnOpened() { m.conns.Add(1); m.ConnectionsTotal.Inc() }

// ConnClosed counts the end of a client connection.
func (m *Metrics) ConnClosed() { m.conns.Add(-1) }

// Connections is the number of open client connections.
func (m *Metrics) Connections() int64 { return m.conns.Load() }

// WALObserver adapts Metrics to the committer's Observer.
type WALObserver struct{ M *Metrics }

// Round counts one group-commit round.
func (o WALObserver) Round(writes, bytes, files int, write, sync time.Duration) {
	m := o.M
	m.WALRounds.Inc()
	m.WALWrites.WithLabelValues("success").Add(float64(writes))
	m.WALBytes.Add(float64(bytes))
	m.WALBatchWrites.Observe(float64(writes))
	m.WALWriteSeconds.Observe(write.Seconds())
	if sync > 0 {
		m.WALFsyncs.Add(float64(files))
		m.WALFsyncSeconds.Observe(sync.Seconds())
	}
}

// Blocked counts time spent waiting for queue space.
func (o WALObserver) Blocked(d time.Duration) { o.M.WALBlockedSeconds.Add(d.Seconds()) }

// Failed counts a failed write or sync.
func (o WALObserver) Failed(string, error) { o.M.WALWrites.WithLabelValues("error").Inc() }

// StateFunc reports gauges read at scrape time: each call to emit is one
// sample (value and label values, in the order the description declares).
type StateFunc func(emit func(desc *prometheus.Desc, value float64, labels ...string))

// stateCollector turns a StateFunc into a prometheus.Collector.
type stateCollector struct {
	descs []*prometheus.Desc
	fn    StateFunc
}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.fn(func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	})
}

// RegisterState registers gauges computed at scrape time.
func (m *Metrics) RegisterState(descs []*prometheus.Desc, fn StateFunc) {
	m.Registry.MustRegister(stateCollector{descs: descs, fn: fn})
}
