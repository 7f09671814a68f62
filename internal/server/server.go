// Package server assembles a Chronik node: the group committer, the
// metadata Raft group, one Raft group per local partition, and (in later
// layers) the Kafka listener and the metrics endpoint. It owns start-up
// order, readiness and shutdown order; it must never hold protocol logic.
package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronik-go/chronik/internal/broker"
	"github.com/chronik-go/chronik/internal/config"
	"github.com/chronik-go/chronik/internal/configs"
	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/lifecycle"
	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/metrics"
	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/raftlog"
	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/storage"
	"github.com/chronik-go/chronik/internal/wal"
)

// metaLogName is the directory of the metadata group's log.
const metaLogName = "__chronik_metadata-0"

// Server is one Chronik node.
type Server struct {
	cfg *config.Config
	log *slog.Logger

	committer *wal.Committer
	host      *raftlog.Host
	// tr carries Raft messages to the other nodes (raftlog.NoPeers
	// standalone); leaderc feeds the reporter of partition leadership.
	tr        raftlog.Transport
	leaderc   chan leaderReport
	meta      *meta.State
	metaGroup *raftlog.Group
	metaLog   *storage.Log

	infra  *lifecycle.Tasks // committer: stops last
	groups *lifecycle.Tasks // raft groups and background jobs: stop first

	mu      sync.RWMutex
	parts   map[string]*partition.Partition // serving partitions, by log name
	offline map[string]error
	running map[string]*supervisor // owned by the reconciler
	nudgec  chan struct{}
	pids    producerIDs
	coord   *group.Coordinator

	// Listener is set once the Kafka listener is bound (tests read the
	// port of :0 from it).
	listener  atomic.Pointer[net.Listener]
	metricsLn atomic.Pointer[net.Listener]

	ready    atomic.Bool
	stopping atomic.Bool
	phase    atomic.Value // string: what start-up is doing
	started  time.Time
	// partsWanted and partsOpened track start-up recovery for /readyz.
	partsWanted, partsOpened atomic.Int64

	metrics *metrics.Metrics
}

// Version is the build's version, reported by /healthz.
var Version = "dev"

// New prepares a server; Run starts it.
func New(cfg *config.Config, log *slog.Logger) *Server {
	c := *cfg // Run resolves a :0 advertised port in its own copy
	cfg = &c
	s := &Server{cfg: cfg, log: log, parts: map[string]*partition.Partition{}, offline: map[string]error{},
		running: map[string]*supervisor{}, nudgec: make(chan struct{}, 1), started: time.Now(), metrics: metrics.New(nil)}
	s.phase.Store("opening the data directory")
	s.registerState()
	for i, name := range []string{"low-latency", "balanced", "high-throughput", "extreme"} {
		if cfg.ProduceProfile == name {
			s.metrics.ProduceProfileActive.Set(float64(i))
		}
	}
	return s
}

// Metrics is the server's metrics (served on metrics.bind).
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// PartitionMeta is the storage.MetaFunc of data partitions.
func PartitionMeta(data []byte) (storage.EntryMeta, bool, error) {
	base, count, maxTs, ok, err := records.EntryMeta(data)
	return storage.EntryMeta{BaseOffset: base, Count: count, MaxTimestamp: maxTs}, ok, err
}

// Addr returns the Kafka listener's address once bound.
func (s *Server) Addr() net.Addr {
	if ln := s.listener.Load(); ln != nil {
		return (*ln).Addr()
	}
	return nil
}

// Ready reports whether storage is recovered and the node serves.
func (s *Server) Ready() bool { return s.ready.Load() }

// Run starts the node and blocks until ctx ends or a critical task (the
// committer, a Raft driver, the reconciler, the coordinator, the Kafka
// listener) fails, then shuts down in order: Raft groups, then logs
// (waiting for their pending writes), then the committer. It returns nil
// only for a stop asked through ctx; a start-up failure or a critical
// task's failure is its error, so the process exits non-zero.
func (s *Server) Run(ctx context.Context) error {
	start := time.Now()
	if err := os.MkdirAll(filepath.Join(s.cfg.DataDir, "logs"), 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	// Health first: /healthz answers and /readyz says why not while the
	// storage recovers.
	if s.cfg.Metrics != "" {
		mln, err := net.Listen("tcp", s.cfg.Metrics)
		if err != nil {
			return fmt.Errorf("metrics listener on %s: %w", s.cfg.Metrics, err)
		}
		s.metricsLn.Store(&mln)
		hctx, stopHTTP := context.WithCancel(context.Background())
		httpDone := make(chan struct{})
		go func() {
			defer close(httpDone)
			if err := s.serveHTTP(hctx, mln); err != nil {
				s.log.Error("metrics server", "err", err)
			}
		}()
		defer func() { stopHTTP(); <-httpDone }()
		s.log.Info("serving metrics and health", "addr", mln.Addr().String())
	}
	lock, err := lockDataDir(s.cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	prof, err := wal.ProfileByName(s.cfg.WALProfile)
	if err != nil {
		return err
	}
	if s.committer, err = wal.New(prof, wal.WithObserver(metrics.WALObserver{M: s.metrics})); err != nil {
		return err
	}
	s.infra = lifecycle.New(context.Background(), s.log)
	s.infra.Go("wal-committer", true, s.committer.Run)
	defer func() { _ = s.infra.Stop() }()
	// The groups outlive ctx by the controlled shutdown: once serving, the
	// end of ctx first moves leadership away, then stops them. During
	// start-up it stops them at once.
	gctx, stopGroups := context.WithCancel(context.Background())
	defer stopGroups()
	s.groups = lifecycle.New(gctx, s.log)
	defer s.shutdown()
	var serving atomic.Bool
	unwatch := context.AfterFunc(ctx, func() {
		if !serving.Load() {
			stopGroups()
		}
	})
	defer unwatch()

	if err := s.removeTrash(); err != nil {
		return err
	}
	// Bind first: the advertised address of a :0 listener needs its port.
	ln, err := net.Listen("tcp", s.cfg.Bind)
	if err != nil {
		return fmt.Errorf("kafka listener on %s: %w", s.cfg.Bind, err)
	}
	defer ln.Close()
	s.listener.Store(&ln)
	if host, port, _ := net.SplitHostPort(s.cfg.Advertise); port == "0" {
		_, real, _ := net.SplitHostPort(ln.Addr().String())
		s.cfg.Advertise = net.JoinHostPort(host, real)
	}
	if s.cfg.PprofAddr != "" {
		s.groups.Go("pprof", false, func(ctx context.Context) error { return s.servePprof(ctx, s.cfg.PprofAddr) })
	}
	s.host = raftlog.NewHost(0)
	s.tr = raftlog.NoPeers{}
	if s.cfg.IsCluster() {
		if err := s.startTransport(); err != nil {
			return err
		}
		s.groups.Go("leader-reporter", true, s.reportLeaders)
		if s.cfg.AutoLeaderRebalance {
			s.groups.Go("leader-balancer", false, s.balanceLeaders)
		}
	}
	s.groups.Go("raft-ticker", true, s.host.Run)
	s.phase.Store("recovering the metadata log")
	if err := s.startMeta(); err != nil {
		return err
	}
	s.meta.OnApply(func(c *meta.Command) {
		s.nudge()
		// Elections asked for while this node serves (a restart's replay
		// of old requests is ignored).
		if c.Op == meta.OpElectPreferred && s.ready.Load() {
			go s.electPreferred(c.Topic, c.Partition)
		}
	})
	s.phase.Store("recovering partitions")
	if err := s.reconcile(s.groups.Context()); err != nil {
		return err
	}
	s.groups.Go("partition-reconciler", true, s.reconcileLoop)
	s.coord = group.NewCoordinator(group.CoordinatorOptions{NodeID: s.cfg.NodeID, Config: s.groupConfig(), Consumer: s.consumerGroupConfig(),
		Partitions: s.offsetsPartitions, Partition: func(i int32) (*partition.Partition, bool) { return s.Partition(group.OffsetsTopic, i) },
		Logger: s.log, CompactAfter: int(s.cfg.OffsetsRewriteRecords)})
	s.groups.Go("group-coordinator", true, s.coord.Run)
	b := broker.New(s, s.log)
	s.groups.Go("kafka-listener", true, func(ctx context.Context) error { return b.Serve(ctx, ln) })
	s.groups.Go("checkpointer", false, s.checkpointLoop)
	s.groups.Go("metadata-snapshots", false, s.metaSnapshotLoop)
	s.groups.Go("retention", false, s.retentionLoop)
	if s.cfg.ScrubBytesPerSecond > 0 {
		s.groups.Go("log-scrubber", false, s.scrubLoop)
	}

	var bytes int64
	s.mu.RLock()
	for _, p := range s.parts {
		bytes += p.Log.Size()
	}
	n, off := len(s.parts), len(s.offline)
	s.mu.RUnlock()
	s.log.Info("storage recovered", "data_dir", s.cfg.DataDir, "partitions", n, "offline", off, "bytes", bytes,
		"wal_profile", prof.Name, "took", time.Since(start).Round(time.Millisecond))
	s.log.Info("serving kafka", "listener", ln.Addr().String(), "advertised", s.cfg.Advertise, "cluster_id", s.meta.ClusterID())
	s.phase.Store("serving")
	s.ready.Store(true)
	serving.Store(true)
	// The committer lives in its own set (it must outlive the groups), so
	// its failure is watched for here as well.
	select {
	case <-s.groups.Context().Done():
	case <-s.infra.Context().Done():
	case <-ctx.Done():
		s.stopping.Store(true)
		s.ready.Store(false)
		s.phase.Store("moving leadership away")
		s.moveLeadershipAway(s.groups.Context())
	}
	stopGroups()
	s.stopping.Store(true)
	s.ready.Store(false)
	s.phase.Store("shutting down")
	if err := s.fatal(); err != nil {
		return err // the caller logs it: one line naming the cause
	}
	s.log.Info("shutting down")
	return nil
}

// fatal is the error of the first critical task that failed (groups
// first: a group failing usually makes the committer's stop follow), or
// nil when the server stops because its context ended.
func (s *Server) fatal() error {
	if err := s.groups.Err(); err != nil {
		return fmt.Errorf("critical task failed: %w", err)
	}
	if err := s.infra.Err(); err != nil {
		return fmt.Errorf("critical task failed: %w", err)
	}
	return nil
}

func (s *Server) shutdown() {
	// Partition supervisors close their own logs as they stop.
	_ = s.groups.Stop()
	if s.metaLog != nil {
		if err := s.metaLog.Close(); err != nil {
			s.log.Error("close metadata log", "err", err)
		}
	}
}

func (s *Server) logOptions() storage.Options {
	return storage.Options{Logger: s.log, RetentionAge: -1, RetentionBytes: -1, OnRoll: s.metrics.SegmentRolls.Inc}
}

// startMeta opens the metadata group, replays it and registers this broker.
func (s *Server) startMeta() error {
	var err error
	mo := s.logOptions()
	mo.Snapshots, mo.SegmentBytes = true, s.cfg.MetadataSegmentBytes
	s.metaLog, err = storage.Open(filepath.Join(s.cfg.DataDir, "logs", metaLogName), s.committer, mo)
	if err != nil {
		return fmt.Errorf("metadata log: %w", err)
	}
	if s.cfg.IsCluster() {
		if err := s.refuseIfWiped(s.groups.Context()); err != nil {
			return err
		}
	}
	s.meta = meta.NewState(configs.ValidateTopic, configs.ValidateBroker)
	s.metaGroup, err = raftlog.NewGroup(raftlog.Config{
		GroupID: meta.MetadataGroup, NodeID: uint64(s.cfg.NodeID), Voters: s.metaVoters(), Transport: s.tr,
		Log: s.metaLog, SM: s.meta, ReplayAll: true, Logger: s.log, ForwardProposals: true,
	})
	if err != nil {
		return err
	}
	s.host.Add(s.metaGroup)
	s.groups.Go("raft-metadata", true, s.metaGroup.Run)
	wait := 30 * time.Second
	if s.cfg.IsCluster() {
		// The other nodes may start later: wait as long as it takes for a
		// quorum (readiness says why meanwhile).
		s.phase.Store("waiting for a metadata quorum")
		wait = 24 * time.Hour
	}
	ctx, cancel := context.WithTimeout(s.groups.Context(), wait)
	defer cancel()
	if err := s.waitCaughtUp(ctx, s.metaGroup); err != nil {
		return fmt.Errorf("metadata group: %w", err)
	}
	host, portStr, _ := net.SplitHostPort(s.cfg.Advertise)
	port, _ := strconv.Atoi(portStr)
	want := meta.Broker{ID: s.cfg.NodeID, Host: host, Port: int32(port), Rack: s.cfg.Rack}
	if err := s.initClusterID(ctx); err != nil {
		return err
	}
	for _, b := range s.meta.Brokers() {
		if b == want {
			return nil
		}
	}
	_, err = s.ProposeMeta(ctx, &meta.Command{Op: meta.OpRegisterBroker, Broker: &want})
	return err
}

// waitCaughtUp waits until g has a leader (this node, standalone) and has
// applied everything it knows committed.
func (s *Server) waitCaughtUp(ctx context.Context, g *raftlog.Group) error {
	logged := time.Now()
	for {
		st := g.Status()
		if (st.IsLeader || s.cfg.IsCluster() && st.Leader != 0) && st.Applied >= st.Commit {
			return nil
		}
		if s.cfg.IsCluster() && time.Since(logged) > 10*time.Second {
			logged = time.Now()
			s.log.Info("waiting for a metadata quorum", "peers", len(s.cfg.Peers))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-g.Stopped():
			return g.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ProposeMeta commits a metadata command and returns its outcome.
// On a follower the command is forwarded to the leader through Raft and
// its outcome read when it is applied here (matched by its id).
func (s *Server) ProposeMeta(ctx context.Context, c *meta.Command) (uint64, error) {
	if c.ID == "" {
		var id [12]byte
		_, _ = rand.Read(id[:])
		c.ID = base64.RawURLEncoding.EncodeToString(id[:])
	}
	b, err := meta.Encode(c)
	if err != nil {
		return 0, err
	}
	outcome, forget := s.meta.Await(c.ID)
	defer forget()
	p := raftlog.NewProposal(b, nil, false)
	p.Forward = true
	r, err := s.metaGroup.ProposeWait(ctx, p)
	if err != nil {
		return 0, err
	}
	if !r.Forwarded {
		return r.Index, s.meta.Result(r.Index)
	}
	select {
	case o := <-outcome:
		return o.Index, o.Err
	case <-ctx.Done():
		return 0, fmt.Errorf("metadata command forwarded to the controller: %w", ctx.Err())
	}
}

// Meta returns the metadata state.
func (s *Server) Meta() *meta.State { return s.meta }

// checkpointLoop checkpoints changed logs every 10 s.
func (s *Server) checkpointLoop(ctx context.Context) error {
	return every(ctx, 10*time.Second, func() {
		for _, l := range s.logs() {
			if err := l.Checkpoint(); err != nil {
				s.log.Warn("checkpoint", "log", l.Name(), "err", err)
			}
		}
	})
}

// metaSnapshotLoop saves a snapshot of the metadata state and deletes the
// metadata log segments it covers once the log grew by
// metadata.log.max.record.bytes.between.snapshots since the last one, so
// start-up replays only the tail and a node far behind gets the snapshot.
func (s *Server) metaSnapshotLoop(ctx context.Context) error {
	if s.cfg.MetadataSnapshotBytes <= 0 {
		return nil
	}
	base := s.metaLog.Size()
	return every(ctx, time.Second, func() {
		if s.metaLog.Size()-base < s.cfg.MetadataSnapshotBytes {
			return
		}
		idx, data, err := s.meta.Snapshot()
		if err != nil {
			s.log.Warn("metadata snapshot", "err", err)
			return
		}
		if err := s.metaLog.SaveSnapshot(idx, data); err != nil {
			if !errors.Is(err, storage.ErrNotApplied) {
				s.log.Warn("metadata snapshot", "err", err)
			}
			return // applied in the state but not yet in the log: next time
		}
		n, err := s.metaLog.CompactTo(idx)
		if err != nil {
			s.log.Warn("metadata log compaction", "err", err)
		}
		base = s.metaLog.Size()
		s.log.Info("metadata snapshot saved", "index", idx, "bytes", len(data), "segments_deleted", n)
	})
}

// retentionLoop applies retention every log.retention.check.interval.ms
// (5 minutes by default).
func (s *Server) retentionLoop(ctx context.Context) error {
	return every(ctx, time.Duration(max(s.cfg.RetentionCheckMs, 100))*time.Millisecond, func() {
		for _, l := range s.logs() {
			if n, err := l.EnforceRetention(); err != nil {
				s.log.Warn("retention", "log", l.Name(), "err", err)
			} else if n > 0 {
				s.metrics.RetentionDeletions.Add(float64(n))
				s.log.Info("retention deleted segments", "log", l.Name(), "segments", n)
			}
		}
	})
}

// every runs fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fn()
		}
	}
}

func (s *Server) logs() []*storage.Log {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []*storage.Log{s.metaLog}
	for _, p := range s.parts {
		out = append(out, p.Log)
	}
	return out
}

// Offline returns the partitions that could not be opened and why.
func (s *Server) Offline() map[string]error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]error, len(s.offline))
	for k, v := range s.offline {
		out[k] = v
	}
	return out
}
