package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/chronik-go/chronik/internal/lifecycle"
)

// inKey names an inbound connection: at most one per sender and lane.
type inKey struct {
	sender uint64
	lane   Lane
}

// inConn is an accepted, handshaken connection.
type inConn struct {
	key         inKey
	incarnation uint64
	conn        net.Conn
	replaced    atomic.Bool // closed because a newer connection took its place
}

// accept serves ln until ctx ends. Accept errors other than the listener
// closing are retried with a backoff (5 ms doubling to 1 s), as the Kafka
// listener does: running out of file descriptors must not stop Raft.
func (t *Transport) accept(ctx context.Context, ln net.Listener, tasks *lifecycle.Tasks) error {
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("transport: listener closed: %w", err)
			}
			t.log.Warn("transport accept failed", "err", err, "retry_in", backoff)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		tasks.Go("transport inbound", false, func(ctx context.Context) error {
			t.serveInbound(ctx, c)
			return nil
		})
	}
}

// serveInbound checks the handshake of one accepted connection and then
// delivers its messages until it fails or ctx ends.
func (t *Transport) serveInbound(ctx context.Context, c net.Conn) {
	remote := c.RemoteAddr().String()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(keepAlive)
	}
	if t.opts.TLS != nil {
		c = tls.Server(c, t.opts.TLS)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	// The handshake is read unbuffered: a connection that never completes
	// it costs a goroutine and no buffer.
	h, err := readHello(c)
	if err != nil {
		// Port scanners and TCP health checks end here: count every one,
		// log a few.
		if ctx.Err() == nil {
			t.m.refused.WithLabelValues("garbage").Inc()
			if t.logRefusal(0, reasonGarbage) {
				t.log.Warn("raft transport: bad handshake", "remote", remote, "err", err)
			}
		}
		return
	}
	ic, rep := t.admit(h, c)
	if rep.refused {
		t.m.refused.WithLabelValues(reasonName(rep.reason)).Inc()
		if t.logRefusal(h.sender, rep.reason) {
			t.log.Warn("raft transport: refused a connection", "remote", remote, "sender", h.sender, "lane", h.lane.String(),
				"reason", reasonName(rep.reason), "text", rep.text)
		}
		_, _ = c.Write(rep.encode())
		return
	}
	defer t.release(ic)
	if _, err := c.Write(rep.encode()); err != nil {
		t.log.Info("raft transport: handshake reply failed", "remote", remote, "sender", h.sender, "err", err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	br := bufio.NewReaderSize(c, 64<<10)
	log := t.log.With("peer", h.sender, "lane", h.lane.String(), "remote", remote)
	log.Info("raft peer connected (inbound)")
	err = t.readInbound(ic, br)
	switch {
	case ctx.Err() != nil:
	case ic.replaced.Load():
		log.Info("raft peer connection replaced by a newer one (inbound)")
	case errors.As(err, new(*frameError)):
		log.Warn("raft peer disconnected (inbound): bad frame", "err", err)
	default:
		log.Info("raft peer disconnected (inbound)", "reason", err)
	}
}

// admit decides on a handshake and, when it accepts, registers the
// connection, closing one it replaces (see docs/format/transport.md:
// an equal or later incarnation replaces, an earlier one is refused).
func (t *Transport) admit(h hello, c net.Conn) (*inConn, reply) {
	refuse := func(reason uint8, format string, args ...any) (*inConn, reply) {
		return nil, reply{version: protocolVersion, refused: true, reason: reason, text: fmt.Sprintf(format, args...)}
	}
	ours := t.cluster()
	switch {
	case h.version != protocolVersion:
		return refuse(reasonVersion, "protocol version %d not supported (speaks %d)", h.version, protocolVersion)
	case h.lane >= numLanes:
		return refuse(reasonBadLane, "unknown lane %d", h.lane)
	case ours == "":
		return refuse(reasonNotReady, "node %d does not know its cluster id yet", t.opts.NodeID)
	case h.clusterID != ours:
		return refuse(reasonClusterID, "cluster id %q, this node belongs to %q", h.clusterID, ours)
	case h.receiver != t.opts.NodeID:
		return refuse(reasonWrongReceiver, "meant for node %d, this is node %d", h.receiver, t.opts.NodeID)
	case t.peers[h.sender] == nil:
		return refuse(reasonUnknownSender, "node %d is not a peer of node %d", h.sender, t.opts.NodeID)
	}
	key := inKey{h.sender, h.lane}
	t.inMu.Lock()
	old := t.inbound[key]
	if old != nil && old.incarnation > h.incarnation {
		t.inMu.Unlock()
		return refuse(reasonDuplicate, "node %d is already connected on the %s lane by a later process (incarnation %d > %d)",
			h.sender, h.lane, old.incarnation, h.incarnation)
	}
	ic := &inConn{key: key, incarnation: h.incarnation, conn: c}
	t.inbound[key] = ic
	t.inMu.Unlock()
	if h.lane == Control {
		// Before the old connection closes: its end must not read as the
		// peer going away.
		t.controlAdmitted(t.peers[h.sender], ic)
	}
	if old != nil {
		old.replaced.Store(true)
		_ = old.conn.Close()
	}
	t.m.connected.WithLabelValues(strconv.FormatUint(h.sender, 10), h.lane.String(), "in").Set(1)
	return ic, reply{version: protocolVersion}
}

// release unregisters ic unless a newer connection already took its place.
func (t *Transport) release(ic *inConn) {
	t.inMu.Lock()
	current := t.inbound[ic.key] == ic
	if current {
		delete(t.inbound, ic.key)
	}
	t.inMu.Unlock()
	if current {
		t.m.connected.WithLabelValues(strconv.FormatUint(ic.key.sender, 10), ic.key.lane.String(), "in").Set(0)
	}
	if ic.key.lane == Control {
		t.controlReleased(t.peers[ic.key.sender], ic)
	}
}

// readInbound delivers the messages of one connection and answers pings.
func (t *Transport) readInbound(ic *inConn, r io.Reader) error {
	label := strconv.FormatUint(ic.key.sender, 10)
	lane := ic.key.lane.String()
	msgs := t.m.msgsReceived.WithLabelValues(label, lane)
	bytes := t.m.bytesReceived.WithLabelValues(label, lane)
	fr := frameReader{r: r, maxFrame: t.opts.MaxFrameBytes}
	bad := func(fe *frameError) error {
		t.m.badFrames.WithLabelValues(label, fe.reason).Inc()
		return fe
	}
	control := ic.key.lane == Control
	p := t.peers[ic.key.sender]
	for {
		if control {
			_ = ic.conn.SetReadDeadline(time.Now().Add(t.opts.ConnTimeout))
		}
		kind, group, body, err := fr.next()
		if err != nil {
			var fe *frameError
			if errors.As(err, &fe) {
				return bad(fe)
			}
			return err
		}
		bytes.Add(float64(len(body) + frameHeader))
		if control {
			t.heardFrom(p)
		}
		switch kind {
		case kindMessage:
			m := &pb.Message{}
			if err := proto.Unmarshal(body, m); err != nil {
				return bad(&frameError{"decode", err.Error()})
			}
			if m.GetFrom() != ic.key.sender || m.GetTo() != t.opts.NodeID {
				return bad(&frameError{"misrouted", fmt.Sprintf("message from %d to %d on a connection from %d to %d",
					m.GetFrom(), m.GetTo(), ic.key.sender, t.opts.NodeID)})
			}
			msgs.Inc()
			t.opts.Deliver(group, m)
		case kindPing:
			pong := make([]byte, frameHeader+8)
			copy(pong[frameHeader:], body)
			sealFrame(pong, kindPong, 0)
			_ = ic.conn.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
			if _, err := ic.conn.Write(pong); err != nil {
				return fmt.Errorf("write pong: %w", err)
			}
		default:
			return bad(&frameError{"unexpected", fmt.Sprintf("frame kind %d from the dialer", kind)})
		}
	}
}

// logRefusal says whether a refusal of sender for reason should be logged:
// once per refusalLogEvery, as the metric counts every one.
func (t *Transport) logRefusal(sender uint64, reason uint8) bool {
	k := refusalKey{sender, reason}
	now := time.Now()
	t.refusalMu.Lock()
	defer t.refusalMu.Unlock()
	if last, ok := t.refusalLogs[k]; ok && now.Sub(last) < refusalLogEvery {
		return false
	}
	if len(t.refusalLogs) > 1024 {
		// Senders are whatever strangers claim: keep the map bounded.
		clear(t.refusalLogs)
	}
	t.refusalLogs[k] = now
	return true
}
