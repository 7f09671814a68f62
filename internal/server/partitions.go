package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chronik-go/chronik/internal/configs"
	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/raftlog"
	"github.com/chronik-go/chronik/internal/storage"
)

// groupMarker names the file in each partition directory that records the
// Raft group the directory belongs to, so that a directory left behind by a
// deleted topic is never mistaken for a new topic of the same name.
const groupMarker = "group"

func partitionLogName(topic string, index int32) string { return fmt.Sprintf("%s-%d", topic, index) }

// supervisor is the goroutine that owns one local partition.
type supervisor struct {
	group  uint64
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Server) nudge() {
	select {
	case s.nudgec <- struct{}{}:
	default:
	}
}

// reconcileLoop makes the running partitions follow the metadata.
func (s *Server) reconcileLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			for _, sv := range s.running {
				sv.cancel()
				<-sv.done
			}
			return nil
		case <-s.nudgec:
		}
		if err := s.reconcile(ctx); err != nil {
			s.log.Error("reconcile partitions", "err", err)
		}
	}
}

// reconcile stops and deletes partitions whose topic is gone, then starts
// every local partition that is not running. It waits for each new
// partition's first open, so that start-up reports recovery truthfully.
func (s *Server) reconcile(ctx context.Context) error {
	type want struct {
		t meta.Topic
		p meta.Partition
	}
	desired := map[string]want{}
	for _, t := range s.meta.Topics() {
		for _, p := range t.Partitions {
			for _, r := range p.Replicas {
				if r == s.cfg.NodeID {
					desired[partitionLogName(t.Name, p.Index)] = want{t, p}
				}
			}
		}
	}
	for name, sv := range s.running {
		if w, ok := desired[name]; ok && w.p.Group == sv.group {
			continue
		}
		sv.cancel()
		<-sv.done
		delete(s.running, name)
		s.mu.Lock()
		delete(s.offline, name)
		s.mu.Unlock()
		if err := s.removePartitionDir(name); err != nil {
			return err
		}
		s.log.Info("partition deleted", "partition", name)
	}
	var errs []error
	if !s.ready.Load() {
		s.partsWanted.Store(int64(len(desired)))
	}
	for name, w := range desired {
		if _, ok := s.running[name]; ok {
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		sv := &supervisor{group: w.p.Group, cancel: cancel, done: make(chan struct{})}
		opened := make(chan error, 1)
		s.running[name] = sv
		s.groups.Go("partition-"+name, false, func(context.Context) error {
			defer close(sv.done)
			return s.supervise(sctx, w.t, w.p, opened)
		})
		select {
		case err := <-opened:
			errs = append(errs, err)
			if !s.ready.Load() {
				s.partsOpened.Add(1)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.reconfigure()
	return errors.Join(errs...)
}

// removePartitionDir deletes a partition directory: renamed first, so that a
// crash halfway leaves a name that start-up recognises and finishes.
func (s *Server) removePartitionDir(name string) error {
	dir := filepath.Join(s.cfg.DataDir, "logs", name)
	trash := dir + ".deleted-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete partition %s: %w", name, err)
	}
	return os.RemoveAll(trash)
}

// removeTrash finishes deletions interrupted by a crash.
func (s *Server) removeTrash() error {
	ents, err := os.ReadDir(filepath.Join(s.cfg.DataDir, "logs"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".deleted-") {
			if err := os.RemoveAll(filepath.Join(s.cfg.DataDir, "logs", e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// supervise owns one local partition: it opens the log, runs its Raft
// group, and when storage fails (a full disk, an I/O error, a path that
// cannot be opened) closes and reopens the log (which repairs it) with
// backoff, 1 s doubling to 30 s, for as long as the partition is wanted
// here (its topic exists). While it is not open it is offline with the
// reason, which /readyz, Metadata (KAFKA_STORAGE_ERROR) and
// chronik_partitions{state="offline"} report; the other partitions serve
// on. A corrupt log is taken offline for good: reopening cannot repair
// it. Corruption found while serving (a read's CRC check or the scrub)
// stops the group at once through the log's OnDamage, so that clients
// learn it from Metadata instead of retrying a storage error for ever.
// The first open's outcome goes to opened; a failed first open is not
// an error there (start-up must not fail for one partition), only an
// offline partition to retry.
func (s *Server) supervise(ctx context.Context, t meta.Topic, mp meta.Partition, opened chan<- error) error {
	name := partitionLogName(t.Name, mp.Index)
	first := true
	report := func(err error) {
		if first {
			opened <- err
			first = false
		}
	}
	backoff := time.Second
	for {
		// The group runs under its own context so that damage found by
		// a reader (any goroutine) can stop it: cancel only signals, the
		// group's loop does the stopping, and supervise (its owner) takes
		// the partition offline once Run has returned.
		runCtx, stop := context.WithCancelCause(ctx)
		p, err := s.startPartition(t, mp, stop)
		switch {
		case errors.Is(err, storage.ErrCorrupt):
			stop(nil)
			s.setOffline(name, err, false)
			report(nil)
			return nil
		case err != nil:
			err = fmt.Errorf("open: %w", err)
			report(nil)
		default:
			report(nil)
			backoff = time.Second // it served: a later failure starts over
			runErr := p.Group.Run(runCtx)
			s.host.Remove(mp.Group)
			s.mu.Lock()
			delete(s.parts, name)
			s.mu.Unlock()
			damaged := p.Log.Damaged()
			if runErr == nil {
				if cerr := p.Close(); cerr != nil {
					s.log.Warn("producer snapshot on close", "partition", name, "err", cerr)
				}
			}
			if cerr := p.Log.Close(); cerr != nil && runErr == nil {
				runErr = cerr
			}
			if ctx.Err() != nil {
				stop(nil)
				return nil
			}
			if damaged != nil {
				stop(nil)
				s.setOffline(name, damaged, false)
				return nil
			}
			err = runErr
		}
		stop(nil)
		s.setOffline(name, fmt.Errorf("%w (retrying in %s)", err, backoff), true)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// effective returns the configuration a topic's partitions apply.
func (s *Server) effective(t meta.Topic) configs.Effective {
	return configs.Resolver{Static: s.cfg, Dynamic: s.meta.BrokerConfigs()}.Effective(t.Configs)
}

func logOptionsFor(e configs.Effective) storage.Options {
	return storage.Options{SegmentBytes: e.SegmentBytes, SegmentAge: time.Duration(e.SegmentMs) * time.Millisecond,
		IndexIntervalBytes: e.IndexInterval, RetentionAge: e.Retention(), RetentionBytes: e.RetentionBytes}
}

func partitionConfigFor(e configs.Effective) partition.Config {
	c := partition.DefaultConfig()
	c.MaxMessageBytes, c.LogAppendTime = e.MaxMessageBytes, e.LogAppendTime
	c.MinInsyncReplicas = max(e.MinInsyncReplicas, 1)
	c.Recompress, c.Codec = e.Compression >= 0, e.Compression
	c.TimestampBeforeMs, c.TimestampAfterMs = e.TimestampBeforeMs, e.TimestampAfterMs
	c.TimestampBounds = e.TimestampBeforeMs != math.MaxInt64 || e.TimestampAfterMs != math.MaxInt64
	c.NoDownConversion = !e.DownConversion
	return c
}

// startPartition opens a partition's log, recovers its producer state and
// builds its group. onDamage is called once when a read or the scrub finds
// the log damaged; it must not block.
func (s *Server) startPartition(t meta.Topic, mp meta.Partition, onDamage func(error)) (*partition.Partition, error) {
	name := partitionLogName(t.Name, mp.Index)
	dir := filepath.Join(s.cfg.DataDir, "logs", name)
	if err := s.claimDir(dir, mp.Group); err != nil {
		return nil, err
	}
	eff := s.effective(t)
	opts := logOptionsFor(eff)
	opts.Meta, opts.Logger, opts.OnRoll, opts.OnDamage = PartitionMeta, s.log, s.metrics.SegmentRolls.Inc, onDamage
	l, err := storage.Open(dir, s.committer, opts)
	if err != nil {
		return nil, err
	}
	p, err := partition.New(partition.Options{Topic: t.Name, Index: mp.Index, TopicID: t.ID, Log: l, Config: partitionConfigFor(eff), Logger: s.log})
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	voters := make([]uint64, len(mp.Replicas))
	for i, r := range mp.Replicas {
		voters[i] = uint64(r)
	}
	// In a cluster, elections and in-sync changes are recorded in the
	// metadata log (the cluster view of nodes without a replica) and
	// counted.
	onISR := func(term uint64, prev, isr []uint64) {
		s.metrics.ISRChanged(prev, isr)
		if s.cfg.IsCluster() {
			s.reportLeader(leaderReport{topic: t.Name, topicID: t.ID, index: mp.Index, term: term, isr: toInt32(isr), group: p})
		}
	}
	onLeader := func(term uint64) error {
		s.metrics.LeaderElections.Inc()
		return p.OnLeader(term)
	}
	g, err := raftlog.NewGroup(raftlog.Config{GroupID: mp.Group, NodeID: uint64(s.cfg.NodeID), Voters: voters, Log: l,
		Meta: PartitionMeta, SM: p, OnLeader: onLeader, OnISRChange: onISR, Logger: s.log, Transport: s.tr, ReplicaLagTicks: s.replicaLagTicks(),
		CampaignAtStart: len(mp.Replicas) > 1 && mp.Replicas[0] == s.cfg.NodeID, HeartbeatTicks: partitionHeartbeatTicks,
		Quiesce: true})
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	p.Group = g
	s.host.Add(g)
	s.mu.Lock()
	s.parts[name] = p
	delete(s.offline, name)
	s.mu.Unlock()
	return p, nil
}

// partitionHeartbeatTicks: a partition leader heartbeats its followers
// every 3 ticks (300 ms), not every tick: the election timeout (10–20
// ticks) still spans three or more of them. Idle partitions quiesce and
// send none (docs/DESIGN.md).
const partitionHeartbeatTicks = 3

func toInt32(ids []uint64) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

// reconfigure applies the current effective configuration to every serving
// partition (after topic or dynamic broker config changes).
func (s *Server) reconfigure() {
	s.mu.RLock()
	parts := make([]*partition.Partition, 0, len(s.parts))
	for _, p := range s.parts {
		parts = append(parts, p)
	}
	s.mu.RUnlock()
	for _, p := range parts {
		t, ok := s.meta.Topic(p.Topic)
		if !ok {
			continue
		}
		eff := s.effective(t)
		if err := p.Log.Reconfigure(logOptionsFor(eff)); err != nil {
			s.log.Warn("reconfigure partition", "partition", partitionLogName(p.Topic, p.Index), "err", err)
		}
		p.SetConfig(partitionConfigFor(eff))
	}
}

// claimDir makes dir belong to group: a directory recorded for another
// group (a deleted topic of the same name) or without a record (its
// creation was interrupted) is removed first.
func (s *Server) claimDir(dir string, group uint64) error {
	want := strconv.FormatUint(group, 10)
	b, err := os.ReadFile(filepath.Join(dir, groupMarker))
	switch {
	case err == nil && strings.TrimSpace(string(b)) == want:
		return nil
	case err == nil || errors.Is(err, os.ErrNotExist):
		if _, serr := os.Stat(dir); serr == nil {
			s.log.Warn("removing stale partition directory", "dir", dir, "recorded_group", strings.TrimSpace(string(b)), "group", want)
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		}
	default:
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return writeMarker(dir, want)
}

func writeMarker(dir, content string) error {
	tmp := filepath.Join(dir, groupMarker+".tmp")
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o644); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	serr := f.Sync()
	_ = f.Close()
	if serr != nil {
		return serr
	}
	if err := os.Rename(tmp, filepath.Join(dir, groupMarker)); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// setOffline records why a partition does not serve. retrying says
// whether its supervisor will try to open it again (storage failures) or
// not (a corrupt log, which needs an operator).
func (s *Server) setOffline(name string, err error, retrying bool) {
	if retrying {
		s.log.Error("partition offline: storage failed; reopening", "partition", name, "err", err)
	} else {
		s.log.Error("partition offline: its log is corrupt", "partition", name, "err", err)
	}
	s.mu.Lock()
	s.offline[name] = err
	s.mu.Unlock()
}

// PartitionOffline reports whether a local partition is offline (its log
// could not be opened or failed; the reason is in Offline).
func (s *Server) PartitionOffline(topic string, index int32) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.offline[partitionLogName(topic, index)]
	return ok
}

// Partition returns a serving local partition.
func (s *Server) Partition(topic string, index int32) (*partition.Partition, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.parts[partitionLogName(topic, index)]
	return p, ok
}
