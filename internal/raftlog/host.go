package raftlog

import (
	"context"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Host runs the groups of one node: it ticks them and routes incoming
// messages. Adding peers means giving the Host a network Transport and
// feeding Deliver from it; nothing else changes.
type Host struct {
	tick time.Duration

	mu     sync.RWMutex
	groups map[uint64]*Group
}

// NewHost returns a host ticking every tick (default 100 ms).
func NewHost(tick time.Duration) *Host {
	if tick <= 0 {
		tick = tickInterval
	}
	return &Host{tick: tick, groups: map[uint64]*Group{}}
}

// Add registers g so that it receives ticks and messages.
func (h *Host) Add(g *Group) {
	h.mu.Lock()
	h.groups[g.ID()] = g
	h.mu.Unlock()
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

// Run ticks every group until ctx ends.
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
				g.Tick()
			}
			h.mu.RUnlock()
		}
	}
}
