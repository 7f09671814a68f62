package raftlog

import (
	"context"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Host runs the groups of one node: it ticks them, routes incoming
// messages, and keeps what the transport knows of the other nodes'
// liveness, which quiesced groups rely on instead of their own heartbeats.
type Host struct {
	tick time.Duration

	mu     sync.RWMutex
	groups map[uint64]*Group

	peerMu sync.RWMutex
	peers  map[uint64]PeerState
}

// PeerState is what the transport last reported of a node.
type PeerState struct {
	// Known is false for a node the transport never reported.
	Known bool
	// Up: the node's process talks to us.
	Up bool
	// Gen changes at every report, Downs at every report of the node
	// going down (a restart is reported as down, then up): a group that
	// kept them knows whether the node changed, or went away, since.
	Gen, Downs uint64
	// Silent is how long the node had been silent when it went down.
	Silent time.Duration
}

// NewHost returns a host ticking every tick (default 100 ms).
func NewHost(tick time.Duration) *Host {
	if tick <= 0 {
		tick = tickInterval
	}
	return &Host{tick: tick, groups: map[uint64]*Group{}, peers: map[uint64]PeerState{}}
}

// Add registers g so that it receives ticks, messages and liveness changes.
func (h *Host) Add(g *Group) {
	g.host.Store(h)
	h.mu.Lock()
	h.groups[g.ID()] = g
	h.mu.Unlock()
	g.peerChanged()
}

// Remove unregisters a group.
func (h *Host) Remove(id uint64) {
	h.mu.Lock()
	delete(h.groups, id)
	h.mu.Unlock()
}

// Group returns a registered group.
func (h *Host) Group(id uint64) (*Group, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	g, ok := h.groups[id]
	return g, ok
}

// Deliver routes a message from another node to its group.
func (h *Host) Deliver(group uint64, m *pb.Message) {
	if g, ok := h.Group(group); ok {
		g.Step(m)
	}
}

// SetPeer records a change of node's liveness (the transport's OnPeer) and
// tells every group; each decides on its own goroutine whether it cares.
func (h *Host) SetPeer(node uint64, up bool, silent time.Duration) {
	h.peerMu.Lock()
	ps := h.peers[node]
	ps.Known, ps.Up, ps.Silent = true, up, silent
	ps.Gen++
	if !up {
		ps.Downs++
	}
	h.peers[node] = ps
	h.peerMu.Unlock()
	h.mu.RLock()
	for _, g := range h.groups {
		g.peerChanged()
	}
	h.mu.RUnlock()
}

// Peer returns what is known of node's liveness.
func (h *Host) Peer(node uint64) PeerState {
	h.peerMu.RLock()
	defer h.peerMu.RUnlock()
	return h.peers[node]
}

// Quiesced counts the registered groups that are quiesced.
func (h *Host) Quiesced() int {
	n := 0
	h.mu.RLock()
	for _, g := range h.groups {
		if g.quiet.Load() {
			n++
		}
	}
	h.mu.RUnlock()
	return n
}

// Run ticks every group that is not quiesced until ctx ends.
func (h *Host) Run(ctx context.Context) error {
	t := time.NewTicker(h.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.mu.RLock()
			for _, g := range h.groups {
				if !g.quiet.Load() {
					g.Tick()
				}
			}
			h.mu.RUnlock()
		}
	}
}
