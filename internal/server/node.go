package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chronik-go/chronik/internal/config"
	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/meta"
)

// The methods here make *Server the broker.Node the Kafka layer serves.

// NodeID is this broker's id.
func (s *Server) NodeID() int32 { return s.cfg.NodeID }

// Config is the static configuration.
func (s *Server) Config() *config.Config { return s.cfg }

// DataDir is the data directory.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// ControllerID is the metadata group's leader (-1 during an election).
func (s *Server) ControllerID() int32 {
	if st := s.metaGroup.Status(); st.Leader != 0 {
		return int32(st.Leader)
	}
	return -1
}

// Leader returns a partition's leader and epoch, or -1 and -1: from the
// local replica's Raft group where this node hosts an open one that knows
// its leader; otherwise (no local replica, not open yet, or an election
// running) the last leadership recorded in the metadata log, as Kafka
// keeps naming the last leader until a new one is known, so clients retry
// there instead of giving up on LEADER_NOT_AVAILABLE.
func (s *Server) Leader(topic string, index int32) (int32, int32) {
	if p, ok := s.Partition(topic, index); ok {
		if st := p.Group.Status(); st.Leader != 0 {
			return int32(st.Leader), int32(st.Term)
		}
	}
	if t, ok := s.meta.Topic(topic); ok && index >= 0 && int(index) < len(t.Partitions) {
		if mp := t.Partitions[index]; mp.Epoch > 0 {
			return mp.Leader, mp.Epoch
		}
	}
	return -1, -1
}

// InSync returns a partition's in-sync replicas: the leader's own view when
// this node leads it, otherwise what the current leader last recorded in
// the metadata log (false: nothing known for the current leadership).
func (s *Server) InSync(topic string, index int32) ([]int32, bool) {
	if p, ok := s.Partition(topic, index); ok {
		if st := p.Group.Status(); st.IsLeader && len(st.ISR) > 0 {
			return toInt32(st.ISR), true
		}
	}
	_, epoch := s.Leader(topic, index)
	t, ok := s.meta.Topic(topic)
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		return nil, false
	}
	if mp := t.Partitions[index]; epoch > 0 && mp.Epoch == epoch && len(mp.ISR) > 0 {
		return mp.ISR, true
	}
	return nil, false
}

// hosts reports whether this node holds a replica of p.
func (s *Server) hosts(p meta.Partition) bool { return slices.Contains(p.Replicas, s.cfg.NodeID) }

// WaitTopic waits until every local partition of topic serves with a leader
// (and, where this node leads it, answers reads).
func (s *Server) WaitTopic(ctx context.Context, topic string) error {
	for {
		t, ok := s.meta.Topic(topic)
		if !ok {
			return fmt.Errorf("topic %q does not exist", topic)
		}
		ready := true
		for _, p := range t.Partitions {
			if !s.hosts(p) {
				continue // its own nodes start it; Metadata names the leader once it reports
			}
			if leader, _ := s.Leader(topic, p.Index); leader < 0 {
				ready = false
				break
			}
			// A local leader also answers reads (raftlog.Status.Serving).
			if lp, ok := s.Partition(topic, p.Index); ok {
				if st := lp.Group.Status(); st.IsLeader && !st.Serving {
					ready = false
					break
				}
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// pidBlockSize is how many producer ids a broker reserves at a time.
const pidBlockSize = 1000

// producerIDs hands out producer ids from blocks reserved in the metadata
// log, so ids are unique across brokers and restarts.
type producerIDs struct {
	mu         sync.Mutex
	next, last int64 // [next, last)
}

// AllocateProducerID returns a fresh producer id.
func (s *Server) AllocateProducerID(ctx context.Context) (int64, error) {
	s.pids.mu.Lock()
	defer s.pids.mu.Unlock()
	if s.pids.next >= s.pids.last {
		idx, err := s.ProposeMeta(ctx, &meta.Command{Op: meta.OpAllocateProducerIDs, Broker: &meta.Broker{ID: s.cfg.NodeID}, Count: pidBlockSize})
		if err != nil {
			return -1, err
		}
		first, n, ok := s.meta.ProducerIDBlock(idx)
		if !ok {
			return -1, fmt.Errorf("producer id block at %d not found", idx)
		}
		s.pids.next, s.pids.last = first, first+n
	}
	id := s.pids.next
	s.pids.next++
	return id, nil
}

// initClusterID gives the cluster its id on first start.
func (s *Server) initClusterID(ctx context.Context) error {
	if s.meta.ClusterID() != "" {
		return nil
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	_, err := s.ProposeMeta(ctx, &meta.Command{Op: meta.OpInitCluster, ClusterID: base64.RawURLEncoding.EncodeToString(id[:])})
	return err
}

// Coordinator serves the consumer groups of the offsets partitions this
// node leads.
func (s *Server) Coordinator() *group.Coordinator { return s.coord }

// offsetsPartitions is the partition count of __consumer_offsets (0 until
// the first group request creates it).
func (s *Server) offsetsPartitions() int32 {
	t, ok := s.meta.Topic(group.OffsetsTopic)
	if !ok {
		return 0
	}
	return int32(len(t.Partitions))
}

// groupConfig is the coordinator's configuration from the node's.
func (s *Server) groupConfig() group.Config {
	c := group.DefaultConfig()
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	c.MinSessionTimeout, c.MaxSessionTimeout = ms(s.cfg.GroupMinSessionTimeoutMs), ms(s.cfg.GroupMaxSessionTimeoutMs)
	c.InitialRebalanceDelay = ms(s.cfg.GroupInitialRebalanceMs)
	c.MaxSize = int(s.cfg.GroupMaxSize)
	c.OffsetsRetention = time.Duration(s.cfg.OffsetsRetentionMinutes) * time.Minute
	c.OnRebalance = func(protocol string) { s.metrics.Rebalances.WithLabelValues(protocol).Inc() }
	return c
}

// consumerGroupConfig is the KIP-848 configuration from the node's.
func (s *Server) consumerGroupConfig() group.ConsumerConfig {
	c := group.DefaultConsumerConfig()
	c.SessionTimeout = time.Duration(s.cfg.ConsumerSessionTimeoutMs) * time.Millisecond
	c.HeartbeatInterval = time.Duration(s.cfg.ConsumerHeartbeatMs) * time.Millisecond
	return c
}

// GroupLag reports, for every group this node coordinates, how far each
// committed partition is behind its high watermark (partitions this node
// serves).
func (s *Server) GroupLag(ctx context.Context) ([]group.PartitionLag, error) {
	return s.coord.Lag(ctx, func(topic string, index int32) (int64, bool) {
		p, ok := s.Partition(topic, index)
		if !ok {
			return 0, false
		}
		return p.Group.HighWatermark(), true
	})
}
