// Package transport carries Raft messages between the nodes of a cluster:
// for every peer, two long-lived outbound connections (lanes) — control for
// heartbeats, votes and responses, bulk for appends and snapshots — each
// with its own bounded queue and one writer that puts everything queued into
// one buffered write, so the messages of all groups to a peer share frames
// and system calls, and a bulk catch-up never sits in front of a heartbeat.
// Inbound connections are checked by a handshake (cluster id, node ids,
// duplicates) and their messages handed to Deliver.
//
// It implements raftlog.Transport. It must never block the caller of Send
// (a full queue or a missing connection drops, and Raft retransmits), never
// deliver a message from a connection that failed the handshake, and never
// let one bad connection stop the others. The byte format is in
// docs/format/transport.md.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/lifecycle"
)

// Options configures a Transport.
type Options struct {
	// NodeID is this node's id (non-zero).
	NodeID uint64
	// ClusterID is the cluster's id; it may be empty at first and set
	// later with SetClusterID. Until it is known the transport neither
	// dials nor accepts.
	ClusterID string
	// Peers maps every other node's id to its Raft address (host:port).
	// This node's own id may appear; it is ignored.
	Peers map[uint64]string
	// Deliver receives every message from a peer, on the goroutine of the
	// connection it came in on; it must not block for long (raftlog's
	// Host.Deliver queues or drops).
	Deliver func(group uint64, m *pb.Message)
	Logger  *slog.Logger
	// Registerer receives the transport's metrics (nil: not exported).
	Registerer prometheus.Registerer
	// TLS, when set, secures both directions: dialled connections are TLS
	// clients (ServerName defaults to the peer's host) and accepted
	// connections TLS servers.
	TLS *tls.Config

	// ControlQueueBytes and BulkQueueBytes bound what waits for each peer
	// (defaults 4 MiB and 64 MiB).
	ControlQueueBytes, BulkQueueBytes int
	// MaxFrameBytes bounds one message, sent or received (default 256 MiB).
	MaxFrameBytes int
	// PingInterval is the time between pings on a control connection
	// (default 200 ms): the node heartbeat peers judge our liveness by.
	PingInterval time.Duration
	// ConnTimeout closes a control connection silent for this long (default
	// 5 s); the dialer then redials.
	ConnTimeout time.Duration
	// PeerTimeout declares a peer down when nothing arrived on its control
	// connection for this long (default 1 s, the Raft election timeout): a
	// paused process keeps its connections open and says nothing.
	PeerTimeout time.Duration
	// OnPeer is called at every change of a peer's liveness: up when its
	// control connection to us passed the handshake or it spoke again
	// after a silence, down when that connection ended (silent 0 or how
	// long it had been quiet) or it was silent for PeerTimeout. A peer
	// process replaced by a new one (a restart) is reported down, then up.
	// Calls for one peer are serialised; it must not block for long.
	OnPeer func(peer uint64, up bool, silent time.Duration)
	// WriteTimeout bounds one flush to a peer (default 10 s).
	WriteTimeout time.Duration
	// Incarnation identifies this process in handshakes (default: the Unix
	// time in nanoseconds at New). A later incarnation replaces an open
	// connection from the same node id; an earlier one is refused.
	Incarnation uint64
}

// Validate reports an unusable configuration.
func (o *Options) Validate() error {
	if o.NodeID == 0 {
		return errors.New("transport: NodeID is required")
	}
	if o.Deliver == nil {
		return errors.New("transport: Deliver is required")
	}
	if len(o.ClusterID) > maxText {
		return fmt.Errorf("transport: cluster id longer than %d bytes", maxText)
	}
	for id, addr := range o.Peers {
		if id == 0 {
			return errors.New("transport: peer id 0")
		}
		if id == o.NodeID {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("transport: peer %d address %q: %w", id, addr, err)
		}
	}
	return nil
}

const (
	defaultControlQueue = 4 << 20
	defaultBulkQueue    = 64 << 20
	handshakeTimeout    = 10 * time.Second
	dialBackoffMin      = 50 * time.Millisecond
	dialBackoffMax      = 2 * time.Second
	// dialLogEvery rate-limits the log of a peer that stays unreachable.
	dialLogEvery = 30 * time.Second
	// refusalLogEvery rate-limits the log of refusals of one sender for
	// one reason: a misconfigured node retries every 2 s.
	refusalLogEvery = 30 * time.Second
)

// keepAlive lets the kernel find a dead peer on a connection that only
// one side writes to (the bulk lane when idle, the acceptor's side of
// every lane) within about 20 s, instead of the system default of hours.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 5 * time.Second, Count: 3}

// Transport is one node's end of the Raft links to its peers.
type Transport struct {
	opts        Options
	log         *slog.Logger
	m           *metrics
	clusterID   atomic.Pointer[string]
	peers       map[uint64]*peer // fixed at New: Send reads it without a lock
	start       time.Time
	clusterKnow chan struct{} // closed when the cluster id is first set
	knowOnce    sync.Once

	inMu    sync.Mutex
	inbound map[inKey]*inConn

	refusalMu   sync.Mutex
	refusalLogs map[refusalKey]time.Time
}

type refusalKey struct {
	sender uint64
	reason uint8
}

// New validates opts and prepares a transport; Run starts it. Send may be
// called before Run (messages wait in the queues only once connected).
func New(opts Options) (*Transport, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ControlQueueBytes <= 0 {
		opts.ControlQueueBytes = defaultControlQueue
	}
	if opts.BulkQueueBytes <= 0 {
		opts.BulkQueueBytes = defaultBulkQueue
	}
	if opts.MaxFrameBytes <= 0 {
		opts.MaxFrameBytes = DefaultMaxFrame
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 200 * time.Millisecond
	}
	if opts.ConnTimeout <= 0 {
		opts.ConnTimeout = 5 * time.Second
	}
	if opts.PeerTimeout <= 0 {
		opts.PeerTimeout = time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.Incarnation == 0 {
		opts.Incarnation = uint64(time.Now().UnixNano())
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		opts:        opts,
		log:         opts.Logger.With("node", opts.NodeID),
		m:           m,
		peers:       map[uint64]*peer{},
		start:       time.Now(),
		clusterKnow: make(chan struct{}),
		inbound:     map[inKey]*inConn{},
		refusalLogs: map[refusalKey]time.Time{},
	}
	t.SetClusterID(opts.ClusterID)
	for id, addr := range opts.Peers {
		if id == opts.NodeID {
			continue
		}
		t.peers[id] = t.newPeer(id, addr)
	}
	return t, nil
}

// SetClusterID sets the cluster id once it is known (an empty id is
// ignored). Connections opened before keep the id they were opened with.
func (t *Transport) SetClusterID(id string) {
	if id == "" {
		return
	}
	if len(id) > maxText {
		// The handshake could not carry it; every peer would refuse us.
		t.log.Error("raft transport: cluster id too long, ignored", "bytes", len(id), "max", maxText)
		return
	}
	t.clusterID.Store(&id)
	t.knowOnce.Do(func() { close(t.clusterKnow) })
}

func (t *Transport) cluster() string {
	if p := t.clusterID.Load(); p != nil {
		return *p
	}
	return ""
}

// Run accepts connections on ln and keeps the outbound connections to every
// peer until ctx ends; then it closes ln and every connection and returns
// once all its goroutines have.
func (t *Transport) Run(ctx context.Context, ln net.Listener) error {
	tasks := lifecycle.New(ctx, t.log)
	tasks.Go("transport accept", true, func(ctx context.Context) error { return t.accept(ctx, ln, tasks) })
	tasks.Go("transport liveness", false, func(ctx context.Context) error {
		t.watchSilence(ctx)
		return nil
	})
	for _, p := range t.peers {
		for l := range Lane(numLanes) {
			ln := p.lanes[l]
			tasks.Go("transport dial "+p.label+" "+l.String(), false, func(ctx context.Context) error {
				ln.dialLoop(ctx)
				return nil
			})
		}
	}
	<-tasks.Context().Done()
	_ = ln.Close()
	errs := tasks.Stop()
	if err := tasks.Err(); err != nil {
		return err
	}
	if errs != nil {
		return fmt.Errorf("transport: %w", errs)
	}
	return nil
}

// Send queues msgs for their peers (by m.To) and returns at once: a
// message whose peer is unknown, whose lane is not connected or whose queue
// is full is dropped and counted. Messages are encoded here, so the caller
// may reuse them when Send returns.
func (t *Transport) Send(group uint64, msgs []*pb.Message) {
	for _, m := range msgs {
		p := t.peers[m.GetTo()]
		if p == nil {
			t.m.dropped.WithLabelValues("unknown", dropUnknownPeer).Inc()
			continue
		}
		ln := p.lanes[laneOf(m)]
		if !ln.isConnected() {
			// Cheap check first: no encoding for a message that would be
			// dropped anyway.
			ln.dropped(dropDisconnected, 1)
			continue
		}
		frame, err := encodeMessage(group, m, t.opts.MaxFrameBytes)
		if err != nil {
			ln.dropped(dropOversize, 1)
			t.log.Warn("raft message not sent", "peer", p.id, "group", group, "type", m.GetType().String(), "err", err)
			continue
		}
		ln.push(frame)
	}
}

// Connected reports whether both lanes to peer are up (for readiness and
// status pages; Raft itself does not need to know).
func (t *Transport) Connected(peer uint64) bool {
	p := t.peers[peer]
	return p != nil && p.lanes[Control].isConnected() && p.lanes[Bulk].isConnected()
}

// peer is one peer: the outbound side (a queue and a connection per lane)
// and what we know of its liveness from what it sends us.
type peer struct {
	id    uint64
	label string
	addr  string
	lanes [numLanes]*outLane
	live  liveness
}

func (t *Transport) newPeer(id uint64, addr string) *peer {
	p := &peer{id: id, label: strconv.FormatUint(id, 10), addr: addr}
	for l := range Lane(numLanes) {
		limit := t.opts.ControlQueueBytes
		if l == Bulk {
			limit = t.opts.BulkQueueBytes
		}
		p.lanes[l] = &outLane{
			t: t, p: p, lane: l, limit: limit,
			notify:     make(chan struct{}, 1),
			queueBytes: t.m.queueBytes.WithLabelValues(p.label, l.String()),
			connGauge:  t.m.connected.WithLabelValues(p.label, l.String(), "out"),
			msgsSent:   t.m.msgsSent.WithLabelValues(p.label, l.String()),
			bytesSent:  t.m.bytesSent.WithLabelValues(p.label, l.String()),
			flushes:    t.m.flushes.WithLabelValues(p.label, l.String()),
		}
		p.lanes[l].connGauge.Set(0)
		p.lanes[l].queueBytes.Set(0)
	}
	t.m.peerUp.WithLabelValues(p.label).Set(0)
	return p
}
