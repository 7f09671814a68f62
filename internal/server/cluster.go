package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/transport"
)

// metaVoters is the metadata group's initial configuration: every
// configured peer, or this node alone.
func (s *Server) metaVoters() []uint64 {
	if !s.cfg.IsCluster() {
		return []uint64{uint64(s.cfg.NodeID)}
	}
	var ids []uint64
	for _, p := range s.cfg.Peers {
		ids = append(ids, uint64(p.ID))
	}
	slices.Sort(ids)
	return ids
}

// replicaLagTicks is replica.lag.time.max.ms in Raft ticks (100 ms).
func (s *Server) replicaLagTicks() int {
	if s.cfg.ReplicaLagMaxMs <= 0 {
		return 0 // the driver's default (30 s)
	}
	return max(int(s.cfg.ReplicaLagMaxMs/100), 1)
}

// peersKey names the cluster in the transport's handshake before the
// metadata log (which holds the Kafka cluster id) can replicate: nodes
// started from the same peer list agree on it, a node of another cluster
// does not.
func peersKey(peers []uint64, addrs map[uint64]string) string {
	var b strings.Builder
	for _, id := range peers {
		b.WriteString(strconv.FormatUint(id, 10) + "=" + addrs[id] + ";")
	}
	sum := sha256.Sum256([]byte(b.String()))
	return "peers-" + hex.EncodeToString(sum[:8])
}

// startTransport opens the node-to-node listener and starts the transport.
func (s *Server) startTransport() error {
	ln, err := net.Listen("tcp", s.cfg.RaftBind)
	if err != nil {
		return fmt.Errorf("raft listener on %s: %w", s.cfg.RaftBind, err)
	}
	addrs := map[uint64]string{}
	for _, p := range s.cfg.Peers {
		addrs[uint64(p.ID)] = p.Raft
	}
	tr, err := transport.New(transport.Options{NodeID: uint64(s.cfg.NodeID), ClusterID: peersKey(s.metaVoters(), addrs),
		Peers: addrs, Deliver: s.host.Deliver, Logger: s.log, Registerer: s.metrics.Registry})
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.tr = tr
	s.leaderc = make(chan leaderReport, 4096)
	s.groups.Go("raft-transport", true, func(ctx context.Context) error {
		defer ln.Close()
		return tr.Run(ctx, ln)
	})
	s.log.Info("serving raft", "listener", ln.Addr().String(), "peers", len(s.cfg.Peers))
	return nil
}

// leaderReport is a partition leadership this node won.
type leaderReport struct {
	topic   string
	topicID [16]byte
	index   int32
	term    uint64
	group   *partition.Partition
}

// reportLeader queues a report; it runs on the partition's Raft goroutine
// and must not block.
func (s *Server) reportLeader(r leaderReport) {
	select {
	case s.leaderc <- r:
	default:
		s.log.Warn("partition leadership report dropped (queue full); nodes that do not host it learn it at its next election",
			"topic", r.topic, "partition", r.index)
	}
}

// reportLeaders records won elections in the metadata log, so that nodes
// without a replica of a partition can name its leader (the cluster view).
// A report whose leadership is already gone is not sent.
func (s *Server) reportLeaders(ctx context.Context) error {
	for {
		var r leaderReport
		select {
		case <-ctx.Done():
			return nil
		case r = <-s.leaderc:
		}
		for attempt := 0; ; attempt++ {
			st := r.group.Group.Status()
			if !st.IsLeader || st.Term != r.term {
				break
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := s.ProposeMeta(pctx, &meta.Command{Op: meta.OpPartitionLeader, Topic: r.topic, TopicID: r.topicID,
				Partition: r.index, Leader: s.cfg.NodeID, Epoch: int32(r.term)})
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			if attempt%10 == 0 {
				s.log.Warn("recording partition leadership", "topic", r.topic, "partition", r.index, "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}
