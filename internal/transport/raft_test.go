package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/chronik-go/chronik/internal/raftlog"
	"github.com/chronik-go/chronik/internal/storage"
	"github.com/chronik-go/chronik/internal/wal"
)

// Entry data in these tests: base offset (8), count (4), then filler — the
// same convention as raftlog's own tests.
func payload(count uint32, filler int) []byte {
	b := make([]byte, 12+filler)
	binary.BigEndian.PutUint32(b[8:], count)
	return b
}

func assign(data []byte) func(int64, uint64) raftlog.Assignment {
	return func(base int64, _ uint64) raftlog.Assignment {
		binary.BigEndian.PutUint64(data, uint64(base))
		return raftlog.Assignment{Count: int64(binary.BigEndian.Uint32(data[8:]))}
	}
}

func entryMeta(data []byte) (storage.EntryMeta, bool, error) {
	if len(data) < 12 {
		return storage.EntryMeta{}, false, errors.New("short")
	}
	return storage.EntryMeta{BaseOffset: int64(binary.BigEndian.Uint64(data)), Count: binary.BigEndian.Uint32(data[8:]), MaxTimestamp: -1}, true, nil
}

// raftNode is one "process": committer, log, group, host and transport.
type raftNode struct {
	id     uint64
	log    *storage.Log
	g      *raftlog.Group
	tr     *Transport
	cancel context.CancelFunc
	wg     sync.WaitGroup
	runErr error
}

const raftGroup = 7

func startRaftNode(t *testing.T, id uint64, dir string, ln net.Listener, peers map[uint64]string) *raftNode {
	t.Helper()
	prof, err := wal.ProfileByName("low")
	if err != nil {
		t.Fatal(err)
	}
	c, err := wal.New(prof)
	if err != nil {
		t.Fatal(err)
	}
	n := &raftNode{id: id}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() { defer n.wg.Done(); _ = c.Run(ctx) }()
	n.log, err = storage.Open(dir, c, storage.Options{Meta: entryMeta, Logger: quiet(), SegmentBytes: 32 << 10, RetentionAge: -1})
	if err != nil {
		cancel()
		n.wg.Wait()
		t.Fatal(err)
	}
	host := raftlog.NewHost(10 * time.Millisecond)
	n.tr, err = New(Options{NodeID: id, ClusterID: testCluster, Peers: peers, Deliver: host.Deliver, Logger: quiet(), PingInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	voters := []uint64{1, 2, 3}
	n.g, err = raftlog.NewGroup(raftlog.Config{GroupID: raftGroup, NodeID: id, Voters: voters, Log: n.log, Meta: entryMeta,
		Transport: n.tr, Logger: quiet(), ElectionTicks: 10, HeartbeatTicks: 1})
	if err != nil {
		t.Fatal(err)
	}
	host.Add(n.g)
	n.wg.Add(3)
	go func() { defer n.wg.Done(); _ = n.g.Run(ctx) }()
	go func() { defer n.wg.Done(); _ = host.Run(ctx) }()
	go func() { defer n.wg.Done(); n.runErr = n.tr.Run(ctx, ln) }()
	return n
}

func (n *raftNode) stop(t *testing.T) {
	t.Helper()
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	n.wg.Wait()
	if n.runErr != nil {
		t.Errorf("node %d: transport: %v", n.id, n.runErr)
	}
	if err := n.log.Close(); err != nil {
		t.Errorf("node %d: close log: %v", n.id, err)
	}
}

// TestTransportRaftGroupFailover: three raftlog groups of one group id,
// one per node, talk only through transports over loopback TCP. They
// elect a leader and commit on all three; when the leader's node stops,
// the other two elect a new leader and commit more; the old node comes
// back on its address and catches up.
func TestTransportRaftGroupFailover(t *testing.T) {
	ids := []uint64{1, 2, 3}
	lns, addrs := reserve(t, ids...)
	dirs := map[uint64]string{}
	nodes := map[uint64]*raftNode{}
	for _, id := range ids {
		dirs[id] = t.TempDir()
		nodes[id] = startRaftNode(t, id, dirs[id], lns[id], addrs)
	}
	defer func() {
		for _, n := range nodes {
			n.stop(t)
		}
	}()
	leader := func(skip uint64) *raftNode {
		for id, n := range nodes {
			if id != skip && n.g.Status().IsLeader {
				return n
			}
		}
		return nil
	}
	// propose commits k two-offset entries through whoever leads,
	// following leadership like a client (a refused proposal may still
	// commit, so callers compare high watermarks, not counts).
	propose := func(k int, skip uint64) {
		for i := 0; i < k; {
			var l *raftNode
			waitFor(t, "a leader", func() bool { l = leader(skip); return l != nil })
			d := payload(2, 512)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := l.g.ProposeWait(ctx, raftlog.NewProposal(d, assign(d), false))
			cancel()
			switch {
			case errors.Is(err, raftlog.ErrNotLeader), errors.Is(err, context.DeadlineExceeded):
				continue
			case err != nil:
				t.Fatalf("propose on leader %d: %v", l.id, err)
			}
			i++
		}
	}
	// agreed waits until the leader and every other running node report the
	// same high watermark, and returns it.
	agreed := func(skip uint64) int64 {
		var hw int64
		waitFor(t, "replicas to agree on the high watermark", func() bool {
			l := leader(skip)
			if l == nil {
				return false
			}
			hw = l.g.HighWatermark()
			for id, n := range nodes {
				if id != skip && n.g.HighWatermark() != hw {
					return false
				}
			}
			return true
		})
		return hw
	}

	propose(40, 0)
	end := agreed(0)
	if end < 80 {
		t.Fatalf("high watermark %d after 40 two-offset proposals", end)
	}
	old := leader(0)
	if old == nil {
		t.Fatal("no leader")
	}
	t.Logf("leader %d committed up to offset %d", old.id, end)

	// Stop the leader's node entirely: group, host, transport, log.
	old.stop(t)
	waitFor(t, "a new leader among the other two", func() bool { return leader(old.id) != nil })
	newLeader := leader(old.id)
	if hw := newLeader.g.HighWatermark(); hw < end {
		t.Fatalf("new leader %d has high watermark %d, below the committed %d", newLeader.id, hw, end)
	}
	propose(20, old.id)
	end2 := agreed(old.id)
	if end2 < end+40 {
		t.Fatalf("high watermark %d after 20 more proposals from %d", end2, end)
	}
	t.Logf("new leader %d committed up to offset %d without node %d", newLeader.id, end2, old.id)

	// The old node restarts on its address and catches up through the
	// transport.
	nodes[old.id] = startRaftNode(t, old.id, dirs[old.id], listen(t, addrs[old.id]), addrs)
	waitFor(t, "the restarted node to catch up", func() bool { return nodes[old.id].g.HighWatermark() == end2 })
	for _, n := range nodes {
		if d := value(n.tr.m.dropped.WithLabelValues("unknown", dropUnknownPeer)); d != 0 {
			t.Fatalf("node %d sent %v messages to unknown peers", n.id, d)
		}
	}
}
