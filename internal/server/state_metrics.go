package server

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/raftlog"
)

// MetricsAddr is the bound metrics address (nil when off or not yet bound).
func (s *Server) MetricsAddr() net.Addr {
	if ln := s.metricsLn.Load(); ln != nil {
		return (*ln).Addr()
	}
	return nil
}

var (
	descState      = prometheus.NewDesc("chronik_state_count", "Objects this broker knows, by type (topics, partitions, consumer_groups, active_connections), as the original Chronik exported them.", []string{"type"}, nil)
	descPartitions = prometheus.NewDesc("chronik_partitions", "Local partition replicas, by state (serving; offline: a corrupt log, kept offline, or storage that failed or could not be opened, retried with backoff; the rest still serve).", []string{"state"}, nil)
	descLeaders    = prometheus.NewDesc("chronik_raft_leader_count", "Partitions (and the metadata group) this broker leads.", nil, nil)
	descFollowers  = prometheus.NewDesc("chronik_raft_follower_count", "Partitions this broker serves as a follower.", nil, nil)
	descGroups     = prometheus.NewDesc("chronik_consumer_groups", "Consumer groups this broker coordinates, by state (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead; KIP-848 groups: Empty, Assigning, Reconciling, Stable).", []string{"state", "protocol"}, nil)
	descLag        = prometheus.NewDesc("chronik_consumer_lag", "Consumer lag per group and partition: high watermark minus committed offset (metrics.lag.per.partition; at most metrics.lag.max.series series, the largest).", []string{"group", "topic", "partition"}, nil)
	descGroupLag   = prometheus.NewDesc("chronik_consumer_group_lag", "Consumer lag per group, summed over its committed partitions.", []string{"group"}, nil)
	descReady      = prometheus.NewDesc("chronik_ready", "1 when /readyz says ready.", nil, nil)
	descUnderRepl  = prometheus.NewDesc("chronik_under_replicated_partitions", "Partitions this broker leads with fewer in-sync replicas than replicas (the signal a rolling restart waits on).", nil, nil)
	descLagMax     = prometheus.NewDesc("chronik_replica_max_lag_entries", "Per peer, the most Raft entries its durable log is behind this broker's, over the partitions (and the metadata group) this broker leads; measured with the in-sync replicas every few ticks.", []string{"peer"}, nil)
	descLagSum     = prometheus.NewDesc("chronik_replica_lag_entries", "Per peer, the Raft entries its durable log is behind this broker's, summed over the partitions (and the metadata group) this broker leads.", []string{"peer"}, nil)
)

// registerState exports state read at scrape time.
func (s *Server) registerState() {
	s.metrics.RegisterState([]*prometheus.Desc{descState, descPartitions, descLeaders, descFollowers, descGroups, descLag, descGroupLag, descReady, descUnderRepl,
		descLagMax, descLagSum},
		func(emit func(*prometheus.Desc, float64, ...string)) {
			_, ok := s.Readiness()
			emit(descReady, b2f(ok))
			if !ok {
				return // the fields below are set while starting
			}
			s.mu.RLock()
			serving, offline := len(s.parts), len(s.offline)
			leaders, followers, under := 0, 0, 0
			lagMax, lagSum := map[uint64]uint64{}, map[uint64]uint64{}
			addLag := func(ls []raftlog.PeerLag) {
				for _, l := range ls {
					lagMax[l.Node] = max(lagMax[l.Node], l.Entries)
					lagSum[l.Node] += l.Entries
				}
			}
			for _, p := range s.parts {
				if st := p.Group.Status(); st.IsLeader {
					addLag(p.Group.Lag())
					leaders++
					if t, ok := s.meta.Topic(p.Topic); ok && int(p.Index) < len(t.Partitions) && len(st.ISR) < len(t.Partitions[p.Index].Replicas) {
						under++
					}
				} else {
					followers++
				}
			}
			s.mu.RUnlock()
			if s.metaGroup != nil && s.metaGroup.Status().IsLeader {
				leaders++
				addLag(s.metaGroup.Lag())
			}
			for _, peer := range s.cfg.Peers {
				if id := uint64(peer.ID); peer.ID != s.cfg.NodeID {
					emit(descLagMax, float64(lagMax[id]), strconv.Itoa(int(peer.ID)))
					emit(descLagSum, float64(lagSum[id]), strconv.Itoa(int(peer.ID)))
				}
			}
			emit(descPartitions, float64(serving), "serving")
			emit(descPartitions, float64(offline), "offline")
			emit(descLeaders, float64(leaders))
			emit(descUnderRepl, float64(under))
			emit(descFollowers, float64(followers))
			topics := s.meta.Topics()
			parts := 0
			for _, t := range topics {
				parts += len(t.Partitions)
			}
			emit(descState, float64(len(topics)), "topics")
			emit(descState, float64(parts), "partitions")
			emit(descState, float64(s.metrics.Connections()), "active_connections")
			if s.coord == nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			type key struct{ state, protocol string }
			counts := map[key]int{}
			n := 0
			_, _ = s.coord.Each(ctx, func(gs *group.Groups, _ time.Time) {
				for _, g := range gs.All() {
					proto := "classic"
					if g.Consumer != nil {
						proto = "consumer"
					}
					counts[key{g.StateName(), proto}]++
					n++
				}
			})
			emit(descState, float64(n), "consumer_groups")
			for k, c := range counts {
				emit(descGroups, float64(c), k.state, k.protocol)
			}
			lags, err := s.GroupLag(ctx)
			if err != nil {
				return
			}
			s.emitLag(lags, emit)
		})
}

// emitLag exports per-group sums always, and per-partition series when
// enabled, capped to the largest LagMaxSeries.
func (s *Server) emitLag(lags []group.PartitionLag, emit func(*prometheus.Desc, float64, ...string)) {
	sums := map[string]int64{}
	for _, l := range lags {
		sums[l.Group] += max(l.Lag, 0)
	}
	for g, v := range sums {
		emit(descGroupLag, float64(v), g)
	}
	if !s.cfg.LagPerPartition {
		return
	}
	if len(lags) > s.cfg.LagMaxSeries {
		lags = slices.Clone(lags)
		slices.SortFunc(lags, func(a, b group.PartitionLag) int { return int(b.Lag - a.Lag) })
		lags = lags[:s.cfg.LagMaxSeries]
	}
	for _, l := range lags {
		emit(descLag, float64(max(l.Lag, 0)), l.Group, l.Topic, strconv.Itoa(int(l.Partition)))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
