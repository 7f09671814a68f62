package transport

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons (label values of chronik_transport_dropped_messages_total).
const (
	dropQueueFull    = "queue_full"
	dropDisconnected = "disconnected"
	dropUnknownPeer  = "unknown_peer"
	dropOversize     = "oversize"
	dropWriteFailed  = "write_failed"
)

// metrics are the transport's Prometheus metrics; label peer is the peer's
// node id, lane is control or bulk.
type metrics struct {
	connected     *prometheus.GaugeVec   // peer, lane, direction
	msgsSent      *prometheus.CounterVec // peer, lane
	bytesSent     *prometheus.CounterVec // peer, lane
	flushes       *prometheus.CounterVec // peer, lane
	msgsReceived  *prometheus.CounterVec // peer, lane
	bytesReceived *prometheus.CounterVec // peer, lane
	queueBytes    *prometheus.GaugeVec   // peer, lane
	dropped       *prometheus.CounterVec // peer, reason
	rtt           *prometheus.HistogramVec
	rttLast       *prometheus.GaugeVec
	badFrames     *prometheus.CounterVec // peer, reason
	refused       *prometheus.CounterVec // reason (handshakes this node refused)
	dialFailures  *prometheus.CounterVec // peer, lane
	peerUp        *prometheus.GaugeVec   // peer
	peerDown      *prometheus.CounterVec // peer, reason
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		// Counting still works; nobody scrapes it.
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chronik_transport_connected",
			Help: "1 while a Raft transport connection to (direction out) or from (direction in) the peer is established on the lane."}, []string{"peer", "lane", "direction"}),
		msgsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_messages_sent_total",
			Help: "Raft messages written to the peer's connection."}, []string{"peer", "lane"}),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_bytes_sent_total",
			Help: "Frame bytes written to the peer's connection (messages, pings and pongs)."}, []string{"peer", "lane"}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_flushes_total",
			Help: "Buffered writes to the peer's connection; messages_sent / flushes is how many messages share one write."}, []string{"peer", "lane"}),
		msgsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_messages_received_total",
			Help: "Raft messages received from the peer and delivered."}, []string{"peer", "lane"}),
		bytesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_bytes_received_total",
			Help: "Frame bytes received from the peer."}, []string{"peer", "lane"}),
		queueBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chronik_transport_queue_bytes",
			Help: "Bytes of messages queued for the peer and not yet written."}, []string{"peer", "lane"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_dropped_messages_total",
			Help: "Raft messages dropped before reaching the peer, by reason (queue_full, disconnected, unknown_peer, oversize, write_failed). Raft retransmits."}, []string{"peer", "reason"}),
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chronik_transport_rtt_seconds",
			Help:    "Round trip of a ping on the peer's control connection.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"peer"}),
		rttLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chronik_transport_rtt_last_seconds",
			Help: "The last measured round trip on the peer's control connection."}, []string{"peer"}),
		badFrames: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_bad_frames_total",
			Help: "Connections closed because of a damaged or unacceptable frame, by reason (oversize, crc, kind, decode, misrouted, unexpected)."}, []string{"peer", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_handshakes_refused_total",
			Help: "Inbound transport connections this node refused, by reason (version, cluster_id, unknown_sender, wrong_receiver, duplicate, not_ready, bad_lane, garbage)."}, []string{"reason"}),
		dialFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_dial_failures_total",
			Help: "Failed attempts to connect to the peer (dial, TLS or handshake error, or refusal)."}, []string{"peer", "lane"}),
		peerUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chronik_transport_peer_up",
			Help: "1 while the peer is alive as this node sees it: its control connection to us is up and it spoke within the peer timeout (the node liveness quiesced Raft groups rely on)."}, []string{"peer"}),
		peerDown: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronik_transport_peer_down_total",
			Help: "Times the peer was declared down, by reason (disconnected: its control connection ended; silent: nothing heard for the peer timeout; restarted: a new process replaced it)."}, []string{"peer", "reason"}),
	}
	for _, c := range []prometheus.Collector{m.connected, m.msgsSent, m.bytesSent, m.flushes, m.msgsReceived, m.bytesReceived,
		m.queueBytes, m.dropped, m.rtt, m.rttLast, m.badFrames, m.refused, m.dialFailures, m.peerUp, m.peerDown} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("transport: metrics already registered (one transport per registry)")
			}
			return nil, err
		}
	}
	return m, nil
}
