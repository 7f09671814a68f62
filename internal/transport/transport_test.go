package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// value reads one counter or gauge (client_golang's testutil would add a
// dependency for this).
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	return d.GetCounter().GetValue() + d.GetGauge().GetValue()
}

func quiet() *slog.Logger {
	if os.Getenv("TRANSPORT_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

const testCluster = "test-cluster"

// tnode is one running transport.
type tnode struct {
	id     uint64
	addr   string
	tr     *Transport
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// listen opens a loopback listener, on addr when given (a restarted node
// takes its old address).
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	// The old listener's port may take a moment to be free again.
	for range 100 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("listen %s: %v", addr, err)
	return nil
}

// reserve returns n loopback listeners (so that every node's address is
// known before any starts).
func reserve(t testing.TB, ids ...uint64) (map[uint64]net.Listener, map[uint64]string) {
	lns := map[uint64]net.Listener{}
	addrs := map[uint64]string{}
	for _, id := range ids {
		lns[id] = listen(t, "")
		addrs[id] = lns[id].Addr().String()
	}
	return lns, addrs
}

func startTransport(t testing.TB, id uint64, ln net.Listener, peers map[uint64]string, deliver func(uint64, *pb.Message), mod func(*Options)) *tnode {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{NodeID: id, ClusterID: testCluster, Peers: peers, Deliver: deliver, Logger: quiet(), Registerer: reg,
		PingInterval: 100 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &tnode{id: id, addr: ln.Addr().String(), tr: tr, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- tr.Run(ctx, ln) }()
	return n
}

func (n *tnode) stop(t testing.TB) {
	t.Helper()
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	if err := <-n.done; err != nil {
		t.Errorf("node %d: Run: %v", n.id, err)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// connected reports whether n has both lanes to peer up.
func (n *tnode) connected(peer uint64) bool { return n.tr.Connected(peer) }

func (n *tnode) waitConnected(t testing.TB, peers ...uint64) {
	t.Helper()
	for _, p := range peers {
		waitFor(t, "a connection", func() bool { return n.connected(p) })
	}
}

func (n *tnode) dropped(peer, reason string) float64 {
	return value(n.tr.m.dropped.WithLabelValues(peer, reason))
}

// msg builds a message; term carries the group so that the receiver can
// check the group id arrived with it, index is a sequence number.
func msg(typ pb.MessageType, from, to, group, seq uint64, payload int) *pb.Message {
	m := &pb.Message{Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(group), Index: proto.Uint64(seq)}
	if payload > 0 {
		m.Entries = []*pb.Entry{{Index: proto.Uint64(seq), Term: proto.Uint64(1), Data: make([]byte, payload)}}
	}
	return m
}

// recorder collects delivered messages.
type recorder struct {
	mu   sync.Mutex
	msgs []*pb.Message
	bad  []string
}

func (r *recorder) deliver(group uint64, m *pb.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.GetTerm() != group {
		r.bad = append(r.bad, "group id does not match the message")
	}
	r.msgs = append(r.msgs, m)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// TestTransportExchange: three transports send messages of many groups to
// each other on both lanes; every message arrives exactly once, in order
// per sender and lane.
func TestTransportExchange(t *testing.T) {
	ids := []uint64{1, 2, 3}
	lns, addrs := reserve(t, ids...)
	recs := map[uint64]*recorder{}
	nodes := map[uint64]*tnode{}
	for _, id := range ids {
		recs[id] = &recorder{}
		nodes[id] = startTransport(t, id, lns[id], addrs, recs[id].deliver, nil)
	}
	defer func() {
		for _, n := range nodes {
			n.stop(t)
		}
	}()
	for _, n := range nodes {
		for _, p := range ids {
			if p != n.id {
				n.waitConnected(t, p)
			}
		}
	}
	const groups, rounds = 50, 20 // per sender, receiver and lane: groups*rounds messages
	var wg sync.WaitGroup
	for _, from := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := map[[2]uint64]uint64{} // (to, lane) → next sequence
			for r := range rounds {
				for g := uint64(1); g <= groups; g++ {
					var batch []*pb.Message
					for _, to := range ids {
						if to == from {
							continue
						}
						// Control and bulk messages of one group in one Send,
						// as a Ready produces them.
						seq[[2]uint64{to, 0}]++
						batch = append(batch, msg(pb.MsgHeartbeat, from, to, g, seq[[2]uint64{to, 0}], 0))
						seq[[2]uint64{to, 1}]++
						batch = append(batch, msg(pb.MsgApp, from, to, g, seq[[2]uint64{to, 1}], 64+r*16))
					}
					nodes[from].tr.Send(g, batch)
				}
			}
		}()
	}
	wg.Wait()
	want := 2 * 2 * groups * rounds // from two senders, two lanes each
	for _, id := range ids {
		waitFor(t, "every message", func() bool { return recs[id].count() >= want })
	}
	for _, id := range ids {
		r := recs[id]
		r.mu.Lock()
		if len(r.msgs) != want {
			t.Errorf("node %d received %d messages, want %d", id, len(r.msgs), want)
		}
		if len(r.bad) > 0 {
			t.Errorf("node %d: %v", id, r.bad[0])
		}
		next := map[[2]uint64]uint64{}
		for _, m := range r.msgs {
			k := [2]uint64{m.GetFrom(), uint64(laneOf(m))}
			next[k]++
			if m.GetIndex() != next[k] {
				t.Fatalf("node %d: from %d on %s got sequence %d, want %d", id, m.GetFrom(), laneOf(m), m.GetIndex(), next[k])
			}
		}
		r.mu.Unlock()
	}
	for _, n := range nodes {
		for _, p := range n.tr.peers {
			for _, lane := range []string{"control", "bulk"} {
				if got := value(n.tr.m.msgsReceived.WithLabelValues(p.label, lane)); got != groups*rounds {
					t.Errorf("node %d counted %v messages received from %d on %s, want %d", n.id, got, p.id, lane, groups*rounds)
				}
				// Counted after the flush returns, which may be after the
				// receiver has them.
				waitFor(t, "the sent messages counted", func() bool {
					return value(n.tr.m.msgsSent.WithLabelValues(p.label, lane)) == groups*rounds
				})
				if f := value(n.tr.m.flushes.WithLabelValues(p.label, lane)); f < 1 {
					t.Errorf("node %d: no flush to %d on %s counted", n.id, p.id, lane)
				} else {
					t.Logf("node %d → %d %s: %.1f messages per write", n.id, p.id, lane, groups*rounds/f)
				}
				if got := value(n.tr.m.connected.WithLabelValues(p.label, lane, "out")); got != 1 {
					t.Errorf("node %d: connection to %d on %s not reported up", n.id, p.id, lane)
				}
			}
		}
		for _, p := range []string{"1", "2", "3"} {
			for _, reason := range []string{dropQueueFull, dropDisconnected, dropWriteFailed} {
				if d := n.dropped(p, reason); d != 0 {
					t.Errorf("node %d dropped %v messages to %s (%s)", n.id, d, p, reason)
				}
			}
		}
		// The first ping goes out as a connection opens.
		for _, p := range n.tr.peers {
			waitFor(t, "a round trip", func() bool { return value(n.tr.m.rttLast.WithLabelValues(p.label)) > 0 })
		}
	}
	// Unknown peers are dropped and counted, without blocking.
	nodes[1].tr.Send(1, []*pb.Message{msg(pb.MsgHeartbeat, 1, 42, 1, 1, 0)})
	if d := nodes[1].dropped("unknown", dropUnknownPeer); d != 1 {
		t.Errorf("unknown-peer drops %v, want 1", d)
	}
}

// rawDial connects to addr and sends the handshake h plus extra bytes
// right after it (before the reply).
func rawDial(t *testing.T, addr string, h hello, extra []byte) (net.Conn, reply) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(append(h.encode(), extra...)); err != nil {
		t.Fatal(err)
	}
	r, err := readReply(c)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return c, r
}

// closedByPeer reports whether the other side closed c (it reads no more
// frames from it).
func closedByPeer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b [1]byte
	_, err := c.Read(b[:])
	return err != nil && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func frameOf(t *testing.T, group uint64, m *pb.Message) []byte {
	t.Helper()
	f, err := encodeMessage(group, m, DefaultMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTransportHandshake: strangers are refused with the reason, and
// nothing they send is delivered; duplicates follow the incarnation rule.
func TestTransportHandshake(t *testing.T) {
	lns, addrs := reserve(t, 1)
	addrs[2] = "127.0.0.1:1" // peer 2 exists but never runs
	rec := &recorder{}
	n := startTransport(t, 1, lns[1], addrs, rec.deliver, nil)
	defer n.stop(t)

	good := hello{version: protocolVersion, lane: Control, sender: 2, receiver: 1, incarnation: 10, clusterID: testCluster}
	cases := []struct {
		name   string
		mod    func(*hello)
		reason uint8
	}{
		{"wrong cluster id", func(h *hello) { h.clusterID = "other" }, reasonClusterID},
		{"unknown sender", func(h *hello) { h.sender = 9 }, reasonUnknownSender},
		{"own id as sender", func(h *hello) { h.sender = 1 }, reasonUnknownSender},
		{"wrong receiver", func(h *hello) { h.receiver = 3 }, reasonWrongReceiver},
		{"future version", func(h *hello) { h.version = 2 }, reasonVersion},
		{"unknown lane", func(h *hello) { h.lane = 5 }, reasonBadLane},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := good
			tc.mod(&h)
			// A frame right behind the handshake must not be delivered.
			c, r := rawDial(t, n.addr, h, frameOf(t, 1, msg(pb.MsgHeartbeat, h.sender, 1, 1, 1, 0)))
			defer c.Close()
			if !r.refused || r.reason != tc.reason || r.text == "" {
				t.Fatalf("reply %+v, want refusal %s", r, reasonName(tc.reason))
			}
			if !closedByPeer(c) {
				t.Fatal("connection not closed after the refusal")
			}
			if got := value(n.tr.m.refused.WithLabelValues(reasonName(tc.reason))); got < 1 {
				t.Fatalf("refusal not counted")
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		c, err := net.Dial("tcp", n.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n-----------"))
		if !closedByPeer(c) {
			t.Fatal("connection not closed")
		}
		waitFor(t, "garbage counted", func() bool { return value(n.tr.m.refused.WithLabelValues("garbage")) == 1 })
	})
	t.Run("duplicate", func(t *testing.T) {
		first, r := rawDial(t, n.addr, good, nil)
		defer first.Close()
		if r.refused {
			t.Fatalf("first connection refused: %+v", r)
		}
		older := good
		older.incarnation = 9
		c, r := rawDial(t, n.addr, older, nil)
		c.Close()
		if !r.refused || r.reason != reasonDuplicate {
			t.Fatalf("older duplicate: reply %+v, want refusal duplicate", r)
		}
		// The first connection still works.
		if _, err := first.Write(frameOf(t, 4, msg(pb.MsgHeartbeat, 2, 1, 4, 1, 0))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery on the first connection", func() bool { return rec.count() == 1 })
		newer := good
		newer.incarnation = 11
		second, r := rawDial(t, n.addr, newer, nil)
		defer second.Close()
		if r.refused {
			t.Fatalf("newer connection refused: %+v", r)
		}
		if !closedByPeer(first) {
			t.Fatal("the replaced connection stayed open")
		}
		if _, err := second.Write(frameOf(t, 4, msg(pb.MsgHeartbeat, 2, 1, 4, 2, 0))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery on the newer connection", func() bool { return rec.count() == 2 })
		// The same process redialling (its side of the old connection
		// broke, ours looks open) replaces it too.
		third, r := rawDial(t, n.addr, newer, nil)
		defer third.Close()
		if r.refused {
			t.Fatalf("redial of the same incarnation refused: %+v", r)
		}
		if !closedByPeer(second) {
			t.Fatal("the replaced connection stayed open")
		}
		if _, err := third.Write(frameOf(t, 4, msg(pb.MsgHeartbeat, 2, 1, 4, 3, 0))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery on the redialled connection", func() bool { return rec.count() == 3 })
	})
	if rec.count() != 3 {
		t.Fatalf("%d messages delivered, want only the duplicate case's 3", rec.count())
	}
}

// TestTransportStrangerCluster: two real transports of different clusters
// never connect, and count why; one that does not know its cluster id yet
// neither dials nor accepts until it is set.
func TestTransportStrangerCluster(t *testing.T) {
	lns, addrs := reserve(t, 1, 2)
	r1, r2 := &recorder{}, &recorder{}
	n1 := startTransport(t, 1, lns[1], addrs, r1.deliver, nil)
	defer n1.stop(t)
	n2 := startTransport(t, 2, lns[2], addrs, r2.deliver, func(o *Options) { o.ClusterID = "" })
	defer n2.stop(t)
	waitFor(t, "not_ready refusal", func() bool { return value(n2.tr.m.refused.WithLabelValues("not_ready")) > 0 })
	if got := value(n2.tr.m.dialFailures.WithLabelValues("1", "control")); got != 0 {
		t.Fatalf("node without a cluster id dialled (%v failures)", got)
	}
	n2.tr.SetClusterID("another-cluster")
	waitFor(t, "cluster_id refusal", func() bool { return value(n1.tr.m.refused.WithLabelValues("cluster_id")) > 0 })
	waitFor(t, "dial failures counted", func() bool { return value(n2.tr.m.dialFailures.WithLabelValues("1", "control")) > 0 })
	n1.tr.Send(1, []*pb.Message{msg(pb.MsgHeartbeat, 1, 2, 1, 1, 0)})
	n2.tr.Send(1, []*pb.Message{msg(pb.MsgHeartbeat, 2, 1, 1, 1, 0)})
	if n1.connected(2) || n2.connected(1) {
		t.Fatal("strangers connected")
	}
	if r1.count()+r2.count() != 0 {
		t.Fatal("a stranger's message was delivered")
	}
}

// TestTransportPeerRestart: while a peer is down Send never blocks and
// counts drops; when it comes back on the same address, messages flow.
func TestTransportPeerRestart(t *testing.T) {
	lns, addrs := reserve(t, 1, 2)
	r1, r2 := &recorder{}, &recorder{}
	n1 := startTransport(t, 1, lns[1], addrs, r1.deliver, nil)
	defer n1.stop(t)
	n2 := startTransport(t, 2, lns[2], addrs, r2.deliver, nil)
	n1.waitConnected(t, 2)
	n1.tr.Send(1, []*pb.Message{msg(pb.MsgHeartbeat, 1, 2, 1, 1, 0), msg(pb.MsgApp, 1, 2, 1, 1, 100)})
	waitFor(t, "delivery before the restart", func() bool { return r2.count() == 2 })

	n2.stop(t)
	waitFor(t, "the link to notice", func() bool {
		p := n1.tr.peers[2]
		return !p.lanes[Control].isConnected() && !p.lanes[Bulk].isConnected()
	})
	// Far more than the queues hold: Send must return each time.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range 2000 {
			n1.tr.Send(1, []*pb.Message{msg(pb.MsgHeartbeat, 1, 2, 1, uint64(i), 0), msg(pb.MsgApp, 1, 2, 1, uint64(i), 64<<10)})
		}
	}()
	select {
	case <-sent:
	case <-time.After(60 * time.Second): // a hang detector, not a speed bound
		t.Fatal("Send blocked while the peer was down")
	}
	if d := n1.dropped("2", dropDisconnected); d < 4000 {
		t.Fatalf("%v drops counted while the peer was down, want 4000", d)
	}

	r2b := &recorder{}
	n2 = startTransport(t, 2, listen(t, addrs[2]), addrs, r2b.deliver, nil)
	defer n2.stop(t)
	n1.waitConnected(t, 2)
	n1.tr.Send(1, []*pb.Message{msg(pb.MsgHeartbeat, 1, 2, 1, 1, 0), msg(pb.MsgApp, 1, 2, 1, 1, 100)})
	waitFor(t, "delivery after the restart", func() bool { return r2b.count() == 2 })
	// And the other direction, through the restarted node's new dial.
	n2.waitConnected(t, 1)
	n2.tr.Send(1, []*pb.Message{msg(pb.MsgVote, 2, 1, 1, 1, 0)})
	waitFor(t, "delivery from the restarted node", func() bool { return r1.count() == 1 })
}

// TestTransportBulkDoesNotDelayControl: a backlog of big appends to a
// slow receiver does not hold up heartbeats sent after it. The receiver
// stalls on the first append until the heartbeats are in (a 30 s guard
// against a hang), then takes 1 ms per append: if control traffic waited
// behind bulk, the heartbeats would arrive only after the whole backlog.
func TestTransportBulkDoesNotDelayControl(t *testing.T) {
	lns, addrs := reserve(t, 1, 2)
	const bulk, beats = 100, 10
	var mu sync.Mutex
	bulkSeen := 0
	var beatsAt []int // bulk messages delivered when each heartbeat arrived
	beatsIn := make(chan struct{})
	deliver := func(_ uint64, m *pb.Message) {
		if m.GetType() == pb.MsgApp {
			mu.Lock()
			first := bulkSeen == 0
			mu.Unlock()
			if first {
				select {
				case <-beatsIn:
				case <-time.After(30 * time.Second):
				}
			}
			time.Sleep(time.Millisecond) // a slow receiver
			mu.Lock()
			bulkSeen++
			mu.Unlock()
			return
		}
		mu.Lock()
		beatsAt = append(beatsAt, bulkSeen)
		if len(beatsAt) == beats {
			close(beatsIn)
		}
		mu.Unlock()
	}
	n1 := startTransport(t, 1, lns[1], addrs, func(uint64, *pb.Message) {}, nil)
	defer n1.stop(t)
	n2 := startTransport(t, 2, lns[2], addrs, deliver, nil)
	defer n2.stop(t)
	n1.waitConnected(t, 2)
	for i := range bulk {
		n1.tr.Send(uint64(i%7), []*pb.Message{msg(pb.MsgApp, 1, 2, uint64(i%7), uint64(i), 256<<10)})
	}
	for i := range beats {
		n1.tr.Send(uint64(i), []*pb.Message{msg(pb.MsgHeartbeat, 1, 2, uint64(i), uint64(i), 0)})
	}
	waitFor(t, "every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return bulkSeen == bulk && len(beatsAt) == beats
	})
	mu.Lock()
	defer mu.Unlock()
	for i, at := range beatsAt {
		if at >= bulk {
			t.Fatalf("heartbeat %d arrived after the whole bulk backlog (%d of %d appends delivered)", i, at, bulk)
		}
	}
	t.Logf("heartbeats arrived after %v of %d appends", beatsAt, bulk)
}

// TestTransportBadFrames: a damaged or unacceptable frame closes only the
// connection it came on, is counted by reason, and the sender can connect
// again; the other peers' links are not touched.
func TestTransportBadFrames(t *testing.T) {
	lns, addrs := reserve(t, 1, 2)
	addrs[3] = "127.0.0.1:1" // played by the test through raw connections
	r1 := &recorder{}
	n1 := startTransport(t, 1, lns[1], addrs, r1.deliver, nil)
	defer n1.stop(t)
	n2 := startTransport(t, 2, lns[2], addrs, func(uint64, *pb.Message) {}, nil)
	defer n2.stop(t)
	n2.waitConnected(t, 1)
	var link2 *inConn
	waitFor(t, "node 2's inbound control connection", func() bool {
		n1.tr.inMu.Lock()
		defer n1.tr.inMu.Unlock()
		link2 = n1.tr.inbound[inKey{2, Control}]
		return link2 != nil
	})

	good := func() []byte { return frameOf(t, 5, msg(pb.MsgHeartbeat, 3, 1, 5, 1, 0)) }
	reseal := func(kind byte, body []byte) []byte {
		b := make([]byte, frameHeader+len(body))
		copy(b[frameHeader:], body)
		sealFrame(b, kind, 5)
		return b
	}
	cases := []struct {
		name   string
		frame  func() []byte
		reason string
	}{
		{"body byte flipped", func() []byte { f := good(); f[len(f)-1] ^= 0x40; return f }, "crc"},
		{"crc byte flipped", func() []byte { f := good(); f[5] ^= 0x01; return f }, "crc"},
		{"group byte flipped", func() []byte { f := good(); f[10] ^= 0x80; return f }, "crc"},
		{"oversize", func() []byte { f := good(); f[0] = 0x7f; return f }, "oversize"},
		{"length below header", func() []byte { f := good(); f[0], f[1], f[2], f[3] = 0, 0, 0, 3; return f }, "oversize"},
		{"unknown kind", func() []byte { return reseal(9, []byte("x")) }, "kind"},
		{"not protobuf", func() []byte { return reseal(kindMessage, []byte{0xff, 0xff, 0xff}) }, "decode"},
		{"misrouted", func() []byte { return frameOf(t, 5, msg(pb.MsgHeartbeat, 2, 1, 5, 1, 0)) }, "misrouted"},
		{"pong from the dialer", func() []byte { return controlFrame(kindPong, 1) }, "unexpected"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := r1.count()
			h := hello{version: protocolVersion, lane: Control, sender: 3, receiver: 1, incarnation: uint64(100 + i), clusterID: testCluster}
			// A good frame, the bad one, and a good one that must not
			// be delivered since it follows the bad one.
			c, r := rawDial(t, n1.addr, h, append(append(good(), tc.frame()...), good()...))
			defer c.Close()
			if r.refused {
				t.Fatalf("refused: %+v", r)
			}
			if !closedByPeer(c) {
				t.Fatal("connection not closed after a bad frame")
			}
			if got := value(n1.tr.m.badFrames.WithLabelValues("3", tc.reason)); got < 1 {
				t.Fatalf("bad frame not counted as %s", tc.reason)
			}
			if got := r1.count() - before; got != 1 {
				t.Fatalf("%d messages delivered, want only the one before the bad frame", got)
			}
		})
	}
	// The sender can come back, and node 2's link was never touched.
	before := r1.count()
	c, r := rawDial(t, n1.addr, hello{version: protocolVersion, lane: Bulk, sender: 3, receiver: 1, incarnation: 1000, clusterID: testCluster}, good())
	defer c.Close()
	if r.refused {
		t.Fatalf("refused after bad frames: %+v", r)
	}
	n1.tr.inMu.Lock()
	same := n1.tr.inbound[inKey{2, Control}] == link2
	n1.tr.inMu.Unlock()
	if !same || !n2.connected(1) {
		t.Fatal("node 2's connection was disturbed by another connection's bad frames")
	}
	n2.tr.Send(1, []*pb.Message{msg(pb.MsgHeartbeat, 2, 1, 1, 1, 0)})
	waitFor(t, "delivery from node 2 and from the reconnected sender", func() bool { return r1.count() >= before+2 })
}

// corruptingProxy forwards connections to target and flips one byte of
// the first frame on the first control-lane connection.
type corruptingProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	done    bool
	conns   []net.Conn
	wg      sync.WaitGroup
	hsBytes int // handshake length, where frames begin
}

func (p *corruptingProxy) run() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // upstream → dialer, verbatim
			defer p.wg.Done()
			_, _ = io.Copy(c, up)
			c.Close()
		}()
		go func() { // dialer → upstream, corrupting once
			defer p.wg.Done()
			defer up.Close()
			hs := make([]byte, p.hsBytes)
			if _, err := io.ReadFull(c, hs); err != nil {
				return
			}
			p.mu.Lock()
			corrupt := !p.done && Lane(hs[6]) == Control
			p.done = p.done || corrupt
			p.mu.Unlock()
			if _, err := up.Write(hs); err != nil {
				return
			}
			if corrupt {
				f := make([]byte, frameHeader+8) // the first ping
				if _, err := io.ReadFull(c, f); err != nil {
					return
				}
				f[frameHeader+3] ^= 0x10
				if _, err := up.Write(f); err != nil {
					return
				}
			}
			_, _ = io.Copy(up, c)
		}()
	}
}

func (p *corruptingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestTransportCorruptLinkRecovers: a byte flipped on the wire closes the
// real link, is counted, and the dialer reconnects and delivers.
func TestTransportCorruptLinkRecovers(t *testing.T) {
	lns, addrs := reserve(t, 1, 2)
	proxy := &corruptingProxy{ln: listen(t, ""), target: addrs[1], hsBytes: helloFixed + len(testCluster)}
	proxy.wg.Add(1)
	go proxy.run()
	defer proxy.close()
	r1 := &recorder{}
	n1 := startTransport(t, 1, lns[1], addrs, r1.deliver, nil)
	defer n1.stop(t)
	viaProxy := map[uint64]string{1: proxy.ln.Addr().String(), 2: addrs[2]}
	n2 := startTransport(t, 2, lns[2], viaProxy, func(uint64, *pb.Message) {}, nil)
	defer n2.stop(t)
	waitFor(t, "the corrupted frame to be counted", func() bool { return value(n1.tr.m.badFrames.WithLabelValues("2", "crc")) == 1 })
	waitFor(t, "delivery after reconnecting", func() bool {
		if n2.connected(1) {
			n2.tr.Send(1, []*pb.Message{msg(pb.MsgHeartbeat, 2, 1, 1, 1, 0)})
		}
		return r1.count() > 0
	})
}

// BenchmarkTransportAppends sends 16 KiB appends of 64 groups from one
// node to another over loopback and waits for their delivery.
func BenchmarkTransportAppends(b *testing.B) {
	t := b
	lns, addrs := reserve(t, 1, 2)
	var got sync.WaitGroup
	n1 := startTransport(t, 1, lns[1], addrs, func(uint64, *pb.Message) {}, nil)
	n2 := startTransport(t, 2, lns[2], addrs, func(uint64, *pb.Message) { got.Done() }, nil)
	defer n1.stop(t)
	defer n2.stop(t)
	n1.waitConnected(t, 2)
	const size = 16 << 10
	msgs := make([]*pb.Message, 64)
	for g := range msgs {
		msgs[g] = msg(pb.MsgApp, 1, 2, uint64(g), 1, size)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		k := min(len(msgs), b.N-i)
		got.Add(k)
		for g := range k {
			n1.tr.Send(uint64(g), msgs[g:g+1])
		}
		got.Wait()
		i += k
	}
}

// mute is a peer that completes handshakes and then neither reads nor
// answers: a stuck process or a half-open link.
type mute struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	lanes map[Lane]int // accepted connections by lane
	wg    sync.WaitGroup
}

func (m *mute) run() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		h, err := readHello(c)
		if err != nil {
			c.Close()
			continue
		}
		_, _ = c.Write(reply{version: protocolVersion}.encode())
		m.mu.Lock()
		m.conns = append(m.conns, c)
		m.lanes[h.lane]++
		m.mu.Unlock()
	}
}

func (m *mute) accepted(l Lane) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lanes[l]
}

func (m *mute) close() {
	m.ln.Close()
	m.wg.Wait()
	m.mu.Lock()
	for _, c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
}

// TestTransportStuckPeer: a peer that stops answering pings loses its
// control connection, and one that stops reading loses its bulk
// connection to the write deadline (the batch counted as dropped); the
// sender redials both and Send never blocks.
func TestTransportStuckPeer(t *testing.T) {
	lns, addrs := reserve(t, 1)
	m := &mute{ln: listen(t, ""), lanes: map[Lane]int{}}
	m.wg.Add(1)
	go m.run()
	defer m.close()
	addrs[2] = m.ln.Addr().String()
	n1 := startTransport(t, 1, lns[1], addrs, func(uint64, *pb.Message) {}, func(o *Options) {
		o.PingInterval = 20 * time.Millisecond
		o.ConnTimeout = 100 * time.Millisecond
		o.WriteTimeout = 200 * time.Millisecond
	})
	defer n1.stop(t)
	waitFor(t, "the silent control connection to be replaced", func() bool { return m.accepted(Control) >= 2 })
	waitFor(t, "the bulk connection", func() bool { return n1.tr.peers[2].lanes[Bulk].isConnected() })
	for i := range 200 { // far more than socket buffers hold
		n1.tr.Send(1, []*pb.Message{msg(pb.MsgApp, 1, 2, 1, uint64(i), 1<<20)})
	}
	waitFor(t, "the stuck bulk connection to be replaced", func() bool { return m.accepted(Bulk) >= 2 })
	if d := n1.dropped("2", dropWriteFailed); d < 1 {
		t.Fatalf("no write_failed drops counted (%v)", d)
	}
}
