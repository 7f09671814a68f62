package transport

import (
	"slices"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// peerEvents records OnPeer calls.
type peerEvents struct {
	mu  sync.Mutex
	evs []peerEvent
}

type peerEvent struct {
	peer   uint64
	up     bool
	silent time.Duration
}

func (e *peerEvents) on(peer uint64, up bool, silent time.Duration) {
	e.mu.Lock()
	e.evs = append(e.evs, peerEvent{peer, up, silent})
	e.mu.Unlock()
}

// ups returns the sequence of up/down reports so far.
func (e *peerEvents) ups() []bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []bool
	for _, ev := range e.evs {
		out = append(out, ev.up)
	}
	return out
}

func (e *peerEvents) last() peerEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.evs[len(e.evs)-1]
}

// TestTransportPeerLiveness: a peer is up once its control connection is
// handshaken; it is down at once when its process goes away (the
// connection ends), down after PeerTimeout when it stays connected but
// says nothing (a paused process), up again when it speaks, and reported
// down then up when a new process of it replaces the old connection.
func TestTransportPeerLiveness(t *testing.T) {
	t.Run("process stops", func(t *testing.T) {
		lns, addrs := reserve(t, 1, 2)
		ev := &peerEvents{}
		n1 := startTransport(t, 1, lns[1], addrs, func(uint64, *pb.Message) {}, func(o *Options) { o.OnPeer = ev.on })
		defer n1.stop(t)
		n2 := startTransport(t, 2, lns[2], addrs, func(uint64, *pb.Message) {}, nil)
		waitFor(t, "peer 2 up", func() bool { return n1.tr.PeerUp(2) })
		if got := ev.ups(); !slices.Equal(got, []bool{true}) || ev.last().peer != 2 {
			t.Fatalf("reports %v, want one up for peer 2", got)
		}
		n2.stop(t)
		waitFor(t, "peer 2 down", func() bool { return !n1.tr.PeerUp(2) })
		if got := ev.ups(); !slices.Equal(got, []bool{true, false}) {
			t.Fatalf("reports %v after the peer stopped, want up, down", got)
		}
		if v := value(n1.tr.m.peerDown.WithLabelValues("2", "disconnected")); v != 1 {
			t.Fatalf("peer_down_total{reason=disconnected} = %v, want 1", v)
		}
		n2 = startTransport(t, 2, listen(t, addrs[2]), addrs, func(uint64, *pb.Message) {}, nil)
		defer n2.stop(t)
		waitFor(t, "peer 2 up again", func() bool { return n1.tr.PeerUp(2) })
		if got := ev.ups(); !slices.Equal(got, []bool{true, false, true}) {
			t.Fatalf("reports %v after the peer returned", got)
		}
		if v := value(n1.tr.m.peerUp.WithLabelValues("2")); v != 1 {
			t.Fatalf("peer_up = %v, want 1", v)
		}
	})

	t.Run("silent peer", func(t *testing.T) {
		lns, addrs := reserve(t, 1)
		addrs[2] = "127.0.0.1:1" // never dialled successfully; we play node 2 by hand
		ev := &peerEvents{}
		n1 := startTransport(t, 1, lns[1], addrs, func(uint64, *pb.Message) {}, func(o *Options) {
			o.OnPeer = ev.on
			o.PeerTimeout = 300 * time.Millisecond
		})
		defer n1.stop(t)
		c, r := rawDial(t, n1.addr, hello{version: protocolVersion, lane: Control, sender: 2, receiver: 1, incarnation: 5, clusterID: testCluster}, nil)
		defer c.Close()
		if r.refused {
			t.Fatalf("handshake refused: %s", r.text)
		}
		waitFor(t, "peer 2 up", func() bool { return n1.tr.PeerUp(2) })
		// Say nothing: the connection stays open, the peer goes down.
		waitFor(t, "peer 2 down for silence", func() bool { return !n1.tr.PeerUp(2) })
		e := ev.last()
		if e.up || e.silent < 300*time.Millisecond {
			t.Fatalf("last report %+v, want down after at least 300ms of silence", e)
		}
		if v := value(n1.tr.m.peerDown.WithLabelValues("2", "silent")); v != 1 {
			t.Fatalf("peer_down_total{reason=silent} = %v, want 1", v)
		}
		// One ping and it is back, on the same connection.
		if _, err := c.Write(controlFrame(kindPing, 1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "peer 2 up after it spoke", func() bool { return n1.tr.PeerUp(2) })
		// Keep it talking (until the transport closes the connection as
		// replaced) so that it is up when its successor arrives.
		pinging := make(chan struct{})
		go func() {
			defer close(pinging)
			for {
				if _, err := c.Write(controlFrame(kindPing, 1)); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		defer func() { _ = c.Close(); <-pinging }()

		// A new process of node 2 (later incarnation) replaces the
		// connection: down (restarted), then up.
		c2, r2 := rawDial(t, n1.addr, hello{version: protocolVersion, lane: Control, sender: 2, receiver: 1, incarnation: 6, clusterID: testCluster}, nil)
		defer c2.Close()
		if r2.refused {
			t.Fatalf("handshake of the new process refused: %s", r2.text)
		}
		defer func() {
			t.Logf("reports %v silent %v restarted %v disc %v", ev.ups(), value(n1.tr.m.peerDown.WithLabelValues("2", "silent")), value(n1.tr.m.peerDown.WithLabelValues("2", "restarted")), value(n1.tr.m.peerDown.WithLabelValues("2", "disconnected")))
		}()
		waitFor(t, "the restart reported", func() bool {
			return value(n1.tr.m.peerDown.WithLabelValues("2", "restarted")) == 1
		})
		if got := ev.ups(); !slices.Equal(got, []bool{true, false, true, false, true}) {
			t.Fatalf("reports %v, want up, down (silent), up, down (restarted), up", got)
		}
		// The replaced connection ending is not news: while the new one
		// keeps pinging, no further report comes.
		_ = c.Close()
		for range 10 {
			if _, err := c2.Write(controlFrame(kindPing, 2)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := ev.ups(); len(got) != 5 || !n1.tr.PeerUp(2) {
			t.Fatalf("reports %v after the replaced connection closed, want no change", got)
		}
	})
}
