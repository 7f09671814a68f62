package transport

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// liveness is what this node knows of one peer's process, judged only by
// what the peer sends us on its control connection: pings every
// PingInterval (the node heartbeat) and Raft's control messages. Quiesced
// Raft groups rely on it instead of their own heartbeats, so it must notice
// a dead process (its connection ends: at once for a kill -9) and a paused
// one (its connection stays open and silent: after PeerTimeout).
type liveness struct {
	// heard is when the peer last spoke (t.since); written by the
	// connection's reader for every frame, read by watchSilence.
	heard atomic.Int64
	// silent is set while the peer is down for silence with its connection
	// still open: the next frame brings it back up.
	silent atomic.Bool

	mu   sync.Mutex // serialises transitions and OnPeer calls for the peer
	conn *inConn    // its current inbound control connection
	up   bool
}

func (t *Transport) since() int64 { return int64(time.Since(t.start)) }

// PeerUp reports whether peer is alive as this node sees it.
func (t *Transport) PeerUp(peer uint64) bool {
	p := t.peers[peer]
	if p == nil {
		return false
	}
	p.live.mu.Lock()
	defer p.live.mu.Unlock()
	return p.live.up
}

// controlAdmitted records a new inbound control connection from p: the
// peer is up. A connection from a different process (incarnation) than
// the one it replaces means the peer restarted: it is reported down first,
// so that whoever relied on the old process learns it is gone.
func (t *Transport) controlAdmitted(p *peer, ic *inConn) {
	l := &p.live
	l.mu.Lock()
	defer l.mu.Unlock()
	l.heard.Store(t.since())
	restarted := l.conn != nil && l.conn.incarnation != ic.incarnation
	l.conn = ic
	l.silent.Store(false)
	if restarted && l.up {
		t.setPeer(p, false, 0, "restarted")
	}
	if !l.up {
		t.setPeer(p, true, 0, "")
	}
}

// controlReleased records the end of an inbound control connection: the
// peer is down unless a newer connection already took its place.
func (t *Transport) controlReleased(p *peer, ic *inConn) {
	l := &p.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != ic {
		return
	}
	l.conn = nil
	l.silent.Store(false)
	if l.up {
		t.setPeer(p, false, time.Duration(t.since()-l.heard.Load()), "disconnected")
	}
}

// heardFrom notes a frame from p on its control connection; a peer that
// was silent is up again.
func (t *Transport) heardFrom(p *peer) {
	p.live.heard.Store(t.since())
	if !p.live.silent.Load() {
		return
	}
	l := &p.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.silent.Load() && l.conn != nil && !l.up {
		l.silent.Store(false)
		t.setPeer(p, true, 0, "")
	}
}

// watchSilence declares down every peer that said nothing for PeerTimeout
// while its connection stayed open, until ctx ends.
func (t *Transport) watchSilence(ctx context.Context) {
	every := max(t.opts.PeerTimeout/8, time.Millisecond)
	tk := time.NewTicker(every)
	defer tk.Stop()
	last := t.since()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		now := t.since()
		stalled := time.Duration(now-last) > t.opts.PeerTimeout/2
		last = now
		if stalled {
			// This process was not running (paused, or starved of CPU):
			// the silence is ours, and the peers' frames wait unread in
			// the sockets. Judge them after the readers caught up.
			continue
		}
		for _, p := range t.peers {
			l := &p.live
			quiet := time.Duration(t.since() - l.heard.Load())
			if quiet < t.opts.PeerTimeout {
				continue
			}
			l.mu.Lock()
			quiet = time.Duration(t.since() - l.heard.Load())
			if l.up && quiet >= t.opts.PeerTimeout {
				l.silent.Store(true)
				t.setPeer(p, false, quiet, "silent")
			}
			l.mu.Unlock()
		}
	}
}

// setPeer changes p's state, counts, logs and reports it; p.live.mu held.
func (t *Transport) setPeer(p *peer, up bool, silent time.Duration, reason string) {
	p.live.up = up
	if up {
		t.m.peerUp.WithLabelValues(p.label).Set(1)
		t.log.Info("raft peer is up", "peer", p.id)
	} else {
		t.m.peerUp.WithLabelValues(p.label).Set(0)
		t.m.peerDown.WithLabelValues(p.label, reason).Inc()
		t.log.Info("raft peer is down", "peer", p.id, "reason", reason, "silent", silent.Round(time.Millisecond))
	}
	if t.opts.OnPeer != nil {
		t.opts.OnPeer(p.id, up, silent)
	}
}
