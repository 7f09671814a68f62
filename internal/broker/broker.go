// Package broker speaks the Kafka protocol: it accepts connections, frames
// and dispatches requests (one file per API, named by key), and answers
// them with kmsg-encoded responses in request order. It owns connection
// goroutines and the produce memory budget; partitions, metadata and
// storage belong to the Node it serves.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/config"
	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/metrics"
	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/protocol"
	"github.com/chronik-go/chronik/internal/quota"
)

// Node is what the broker needs from the node it serves.
type Node interface {
	NodeID() int32
	Config() *config.Config
	Meta() *meta.State
	// ProposeMeta commits a metadata command and returns its index and
	// outcome.
	ProposeMeta(ctx context.Context, c *meta.Command) (uint64, error)
	// Partition returns a serving local replica.
	Partition(topic string, index int32) (*partition.Partition, bool)
	// Leader returns the leader's broker id and epoch of a partition, or
	// -1 when it has none (offline, or an election is running).
	Leader(topic string, index int32) (leader, epoch int32)
	// PartitionOffline reports whether a local replica is offline: its
	// storage failed or could not be opened (Kafka's offline replica).
	PartitionOffline(topic string, index int32) bool
	// InSync returns a partition's in-sync replicas when this node leads
	// it (false: not known here; the replica list stands in).
	InSync(topic string, index int32) ([]int32, bool)
	// WaitTopic waits until every local partition of the topic serves.
	WaitTopic(ctx context.Context, topic string) error
	// ControllerID is the metadata group's leader.
	ControllerID() int32
	// AllocateProducerID returns a fresh producer id.
	AllocateProducerID(ctx context.Context) (int64, error)
	// DataDir is the log directory reported by DescribeLogDirs.
	DataDir() string
	// Coordinator serves consumer groups whose offsets partition this node
	// leads.
	Coordinator() *group.Coordinator
	// Metrics is where the broker counts (nil: nothing is counted).
	Metrics() *metrics.Metrics
}

// handler serves one API. It runs on the connection's reader goroutine,
// in request order. It returns either a response, or a wait function that
// a separate goroutine runs to produce the response (so that waits overlap
// while side effects stay in order), or noResponse for acks=0.
type handler func(ctx context.Context, c *conn, h *protocol.Header, req kmsg.Request) result

type result struct {
	resp kmsg.Response
	wait func() kmsg.Response
	// noResponse: send nothing (produce with acks=0); wait, if set, still
	// runs, and a non-nil response from it closes the connection (Kafka's
	// way of telling an acks=0 producer that something failed).
	noResponse bool
}

// Broker serves the Kafka protocol for one node.
type Broker struct {
	node     Node
	log      *slog.Logger
	versions *protocol.Versions
	handlers map[int16]handler
	budget   *Budget
	maxFrame int32
	metrics  *metrics.Metrics
	// requestTimeout bounds the arrival of one request frame;
	// idleTimeout closes connections without requests.
	requestTimeout, idleTimeout time.Duration
	closedConns                 *prometheus.CounterVec // reason
	quotas                      *quota.Manager

	mu    sync.Mutex
	conns map[*conn]struct{}
	wg    sync.WaitGroup
}

// New builds a broker; Serve runs it.
func New(node Node, log *slog.Logger) *Broker {
	cfg := node.Config()
	b := &Broker{
		node:           node,
		log:            log,
		versions:       protocol.NewVersions(),
		handlers:       map[int16]handler{},
		budget:         NewBudget(config.ProduceProfileBytes(cfg.ProduceProfile)),
		maxFrame:       cfg.SocketRequestMaxBytes,
		requestTimeout: time.Duration(cfg.SocketRequestTimeoutMs) * time.Millisecond,
		idleTimeout:    time.Duration(cfg.ConnectionsMaxIdleMs) * time.Millisecond,
		conns:          map[*conn]struct{}{},
		metrics:        node.Metrics(),
	}
	if b.requestTimeout <= 0 {
		b.requestTimeout = 30 * time.Second
	}
	if b.idleTimeout <= 0 {
		b.idleTimeout = 10 * time.Minute
	}
	b.initQuotas()
	b.register()
	b.registerMetrics()
	return b
}

// serve adds an API to the dispatch table and to ApiVersions.
func (b *Broker) serve(key kmsg.Key, min, max int16, h handler) {
	b.versions.Add(int16(key), min, max)
	b.handlers[int16(key)] = h
}

// adminWait bounds the waits of requests that carry no timeout of their
// own (a client has given up on them by then: request.timeout.ms is 30 s
// in Kafka's clients), and of those whose timeout is 0 or negative.
const adminWait = 30 * time.Second

// serveWaiting registers an API whose handler may wait (on the metadata
// group, a partition's start, the group coordinator): it runs off the
// reader goroutine, so the connection's later requests are read while it
// waits; responses still leave in request order. bound > 0 limits the
// wait for requests without a timeout of their own.
func (b *Broker) serveWaiting(key kmsg.Key, min, max int16, h handler, bound time.Duration) {
	b.serve(key, min, max, func(ctx context.Context, c *conn, hd *protocol.Header, req kmsg.Request) result {
		return result{wait: func() kmsg.Response {
			if bound > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, bound)
				defer cancel()
			}
			res := h(ctx, c, hd, req)
			if res.wait != nil {
				return res.wait()
			}
			return res.resp
		}}
	})
}

// register is the one dispatch table: every served API, its versions and
// its handler (the handlers live in files named by API key). Every range
// starts where Kafka 3.9's does, versions KIP-896 removed in Kafka 4.0
// included (legacy message sets, ListOffsets v0 ...), and ends at the
// newest version kmsg knows that has a handler and tests.
func (b *Broker) register() {
	b.serve(kmsg.Produce, 0, 13, b.handleProduce)
	b.serve(kmsg.Fetch, 0, 17, b.handleFetch)
	b.serve(kmsg.ListOffsets, 0, 10, b.handleListOffsets)
	b.serve(kmsg.Metadata, 0, 13, b.handleMetadata)
	b.serve(kmsg.ApiVersions, 0, 4, b.handleAPIVersions)
	b.serveWaiting(kmsg.CreateTopics, 0, 7, b.handleCreateTopics, 0)
	b.serveWaiting(kmsg.DeleteTopics, 0, 6, b.handleDeleteTopics, 0)
	b.serveWaiting(kmsg.DeleteRecords, 0, 2, b.handleDeleteRecords, 0)
	b.serveWaiting(kmsg.InitProducerID, 0, 5, b.handleInitProducerID, adminWait)
	b.serve(kmsg.OffsetForLeaderEpoch, 0, 4, b.handleOffsetForLeaderEpoch)
	b.serve(kmsg.DescribeConfigs, 0, 4, b.handleDescribeConfigs)
	b.serveWaiting(kmsg.AlterConfigs, 0, 2, b.handleAlterConfigs, adminWait)
	b.serve(kmsg.DescribeLogDirs, 0, 4, b.handleDescribeLogDirs)
	b.serveWaiting(kmsg.CreatePartitions, 0, 3, b.handleCreatePartitions, 0)
	b.serveWaiting(kmsg.IncrementalAlterConfigs, 0, 1, b.handleIncrementalAlterConfigs, adminWait)
	b.serve(kmsg.DescribeCluster, 0, 2, b.handleDescribeCluster)
	b.serve(kmsg.OffsetCommit, 0, 10, b.handleOffsetCommit)
	b.serveWaiting(kmsg.OffsetFetch, 0, 10, b.handleOffsetFetch, adminWait)
	b.serveWaiting(kmsg.FindCoordinator, 0, 6, b.handleFindCoordinator, adminWait)
	b.serve(kmsg.JoinGroup, 0, 9, b.handleJoinGroup)
	b.serve(kmsg.Heartbeat, 0, 4, b.handleHeartbeat)
	b.serve(kmsg.LeaveGroup, 0, 5, b.handleLeaveGroup)
	b.serve(kmsg.SyncGroup, 0, 5, b.handleSyncGroup)
	b.serveWaiting(kmsg.DescribeGroups, 0, 6, b.handleDescribeGroups, adminWait)
	b.serveWaiting(kmsg.ListGroups, 0, 5, b.handleListGroups, adminWait)
	b.serveWaiting(kmsg.DeleteGroups, 0, 2, b.handleDeleteGroups, adminWait)
	b.serveWaiting(kmsg.OffsetDelete, 0, 0, b.handleOffsetDelete, adminWait)
	b.serve(kmsg.ConsumerGroupHeartbeat, 0, 1, b.handleConsumerGroupHeartbeat)
	b.serveWaiting(kmsg.ConsumerGroupDescribe, 0, 1, b.handleConsumerGroupDescribe, adminWait)
	b.serve(kmsg.DescribeClientQuotas, 0, 1, b.handleDescribeClientQuotas)
	b.serveWaiting(kmsg.ElectLeaders, 0, 2, b.handleElectLeaders, 0)
	b.serveWaiting(kmsg.AlterClientQuotas, 0, 1, b.handleAlterClientQuotas, adminWait)
}

// Versions returns the served API table.
func (b *Broker) Versions() *protocol.Versions { return b.versions }

// Budget returns the produce memory budget.
func (b *Broker) Budget() *Budget { return b.budget }

// Serve accepts connections on ln until ctx ends, then closes every
// connection and waits for their goroutines. A failed Accept never ends
// it: it is counted, logged (sampled) and retried after a backoff, while
// the open connections go on being served. Only a listener closed under
// it (not by ctx) is an error, which the server treats as fatal.
func (b *Broker) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	defer b.closeAll()
	cfg := b.node.Config()
	limits, errs := newConnLimits(ctx, cfg.MaxConnections, cfg.MaxConnectionsPerIP, cfg.MaxConnectionsPerIPOverrides, lookupHost)
	for _, err := range errs {
		b.log.Warn("connection cap override ignored", "err", err)
	}
	acceptLog := &sampler{every: time.Second}
	rejectLog := &sampler{every: time.Second}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("listener closed: %w", err)
			}
			backoff = nextAcceptBackoff(backoff)
			if b.metrics != nil {
				b.metrics.AcceptErrors.Inc()
			}
			if ok, n := acceptLog.allow(time.Now()); ok {
				b.log.Error("accept failed; retrying", "err", err, "retry_in", backoff, "suppressed", n,
					"open_connections", b.Connections())
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		ip := remoteIP(nc)
		if reason, ok := limits.admit(ip); !ok {
			_ = nc.Close()
			if b.metrics != nil {
				b.metrics.ConnsRejected.WithLabelValues(reason).Inc()
			}
			if ok, n := rejectLog.allow(time.Now()); ok {
				b.log.Warn("connection refused: cap reached", "remote", nc.RemoteAddr().String(), "reason", reason, "suppressed", n)
			}
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c := newConn(b, nc)
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		if b.metrics != nil {
			b.metrics.ConnOpened()
		}
		go func() {
			defer b.wg.Done()
			c.serve(ctx)
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
			// The slot is free before the gauge drops: whoever saw the
			// gauge fall can connect again.
			limits.release(ip)
			if b.metrics != nil {
				b.metrics.ConnClosed()
			}
		}()
	}
}

func (b *Broker) closeAll() {
	b.mu.Lock()
	for c := range b.conns {
		c.close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// Connections returns the number of open connections.
func (b *Broker) Connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}
