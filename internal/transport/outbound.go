package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronik-go/chronik/internal/lifecycle"
)

// outLane is one lane to one peer: a bounded queue of encoded frames that
// Send fills and the connection's writer empties, and the loop that keeps
// the connection up.
type outLane struct {
	t     *Transport
	p     *peer
	lane  Lane
	limit int // queue bound in bytes

	notify     chan struct{} // wakes the writer; capacity 1
	queueBytes prometheus.Gauge
	connGauge  prometheus.Gauge
	msgsSent   prometheus.Counter
	bytesSent  prometheus.Counter
	flushes    prometheus.Counter

	// up mirrors connected for Send's check without the lock.
	up atomic.Bool

	mu        sync.Mutex
	connected bool
	frames    [][]byte
	spare     [][]byte // the writer's last batch, reused
	bytes     int      // in frames
	inflight  int      // taken by the writer, not yet written
}

func (l *outLane) isConnected() bool { return l.up.Load() }

func (l *outLane) dropped(reason string, n int) {
	l.t.m.dropped.WithLabelValues(l.p.label, reason).Add(float64(n))
}

// push queues one frame, or drops it when the lane is down or the queue
// full. The bound covers what is queued and what the writer is writing, so
// a slow peer holds at most limit bytes (plus one frame: an empty lane
// takes a frame of any size, so that a message larger than the bound still
// goes out alone).
func (l *outLane) push(frame []byte) {
	l.mu.Lock()
	switch {
	case !l.connected:
		l.mu.Unlock()
		l.dropped(dropDisconnected, 1)
		return
	case l.bytes+l.inflight > 0 && l.bytes+l.inflight+len(frame) > l.limit:
		l.mu.Unlock()
		l.dropped(dropQueueFull, 1)
		return
	}
	l.frames = append(l.frames, frame)
	l.bytes += len(frame)
	l.queueBytes.Set(float64(l.bytes + l.inflight))
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// take empties the queue; the returned slice is the writer's until the
// next take, and its bytes count against the bound until written.
func (l *outLane) take() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.spare)
	out := l.frames
	l.frames = l.spare[:0]
	l.spare = out
	l.inflight = l.bytes
	l.bytes = 0
	return out
}

// written releases the bytes of the batch take returned.
func (l *outLane) written() {
	l.mu.Lock()
	l.inflight = 0
	l.queueBytes.Set(float64(l.bytes))
	l.mu.Unlock()
}

// setConnected opens or closes the queue. Closing drops what is queued:
// after a reconnect Raft resends from its own state, and stale heartbeats
// would only delay it.
func (l *outLane) setConnected(up bool) {
	l.mu.Lock()
	l.connected = up
	l.up.Store(up)
	n := 0
	if !up {
		n = len(l.frames)
		clear(l.frames)
		l.frames = l.frames[:0]
		l.bytes = 0
		l.inflight = 0
		l.queueBytes.Set(0)
	}
	l.mu.Unlock()
	if n > 0 {
		l.dropped(dropDisconnected, n)
	}
	if up {
		l.connGauge.Set(1)
	} else {
		l.connGauge.Set(0)
	}
}

// jitter returns a duration in [d/2, d): peers that lost each other at the
// same moment do not redial in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// dialLoop keeps the lane connected until ctx ends: dial with backoff
// (50 ms doubling to 2 s, jittered), serve, repeat. It logs when the link
// comes up and goes down, and failures at most once per dialLogEvery.
func (l *outLane) dialLoop(ctx context.Context) {
	log := l.t.log.With("peer", l.p.id, "addr", l.p.addr, "lane", l.lane.String())
	select {
	case <-ctx.Done():
		return
	case <-l.t.clusterKnow:
	}
	backoff := dialBackoffMin
	var lastLog time.Time
	failures := 0
	for {
		conn, err := l.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			l.t.m.dialFailures.WithLabelValues(l.p.label, l.lane.String()).Inc()
			if now := time.Now(); now.Sub(lastLog) >= dialLogEvery {
				var refused *RefusedError
				if errors.As(err, &refused) {
					log.Warn("raft peer refused the connection", "reason", refused.Reason, "text", refused.Text, "failures", failures)
				} else {
					log.Info("raft peer unreachable", "err", err, "failures", failures)
				}
				lastLog = now
			}
			if !sleepCtx(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, dialBackoffMax)
			continue
		}
		log.Info("raft peer connected", "after_failures", failures)
		backoff, failures, lastLog = dialBackoffMin, 0, time.Time{}
		reason := l.serve(ctx, conn)
		if ctx.Err() != nil {
			return
		}
		log.Info("raft peer disconnected", "reason", reason)
		// A peer that accepts and then drops us at once must not make
		// this a busy loop.
		if !sleepCtx(ctx, jitter(dialBackoffMin)) {
			return
		}
	}
}

// dial connects and completes the handshake.
func (l *outLane) dial(ctx context.Context) (net.Conn, error) {
	t := l.t
	d := net.Dialer{Timeout: handshakeTimeout, KeepAliveConfig: keepAlive}
	conn, err := d.DialContext(ctx, "tcp", l.p.addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if t.opts.TLS != nil {
		cfg := t.opts.TLS.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(l.p.addr)
			cfg.ServerName = host
		}
		conn = tls.Client(conn, cfg)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	h := hello{version: protocolVersion, lane: l.lane, sender: t.opts.NodeID, receiver: l.p.id,
		incarnation: t.opts.Incarnation, clusterID: t.cluster()}
	if _, err := conn.Write(h.encode()); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("send handshake: %w", err)
	}
	r, err := readReply(conn)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if r.refused {
		_ = conn.Close()
		return nil, &RefusedError{Reason: reasonName(r.reason), Text: r.text}
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// serve runs one established connection: this goroutine writes, a second
// one (owned here, awaited before return) reads pongs and notices the
// peer closing. It returns why the connection ended.
func (l *outLane) serve(ctx context.Context, conn net.Conn) string {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Closing the connection is what unblocks the reader.
	stop := context.AfterFunc(connCtx, func() { _ = conn.Close() })
	defer stop()
	l.setConnected(true)
	defer l.setConnected(false)

	// The first failure is the reason; the other side's error is only
	// its consequence (the connection closed under it).
	var (
		once sync.Once
		why  error
	)
	fail := func(err error) {
		once.Do(func() { why = err })
		cancel()
	}
	tasks := lifecycle.New(connCtx, l.t.log)
	tasks.Go("transport reader", false, func(context.Context) error {
		fail(l.readLoop(conn))
		return nil
	})
	if err := l.writeLoop(connCtx, conn); err != nil {
		fail(err)
	}
	cancel()
	_ = conn.Close()
	_ = tasks.Stop()
	if why == nil {
		return "closed"
	}
	return why.Error()
}

// writeLoop writes everything queued in one buffered write per wake-up
// and, on the control lane, a ping every interval. It returns nil when ctx
// ends and the write error otherwise.
func (l *outLane) writeLoop(ctx context.Context, conn net.Conn) error {
	bw := bufio.NewWriterSize(conn, 64<<10)
	var ping <-chan time.Time
	if l.lane == Control {
		tk := time.NewTicker(l.t.opts.PingInterval)
		defer tk.Stop()
		ping = tk.C
		// The first round trip is measured at once, not after a second.
		if _, err := bw.Write(controlFrame(kindPing, uint64(time.Since(l.t.start)))); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	for {
		n := 0
		if bw.Buffered() == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-l.notify:
			case <-ping:
				f := controlFrame(kindPing, uint64(time.Since(l.t.start)))
				n += len(f)
				_, _ = bw.Write(f) // a failure shows in Flush
			}
		}
		frames := l.take()
		_ = conn.SetWriteDeadline(time.Now().Add(l.t.opts.WriteTimeout))
		var err error
		for _, f := range frames {
			if _, err = bw.Write(f); err != nil {
				break
			}
			n += len(f)
		}
		if err == nil {
			err = bw.Flush()
		}
		l.written()
		if err != nil {
			l.dropped(dropWriteFailed, len(frames))
			return fmt.Errorf("write: %w", err)
		}
		l.msgsSent.Add(float64(len(frames)))
		l.bytesSent.Add(float64(n))
		if len(frames) > 0 {
			l.flushes.Inc()
		}
	}
}

// readLoop reads what the acceptor sends back: pongs on the control lane,
// nothing on the bulk lane (where it only notices the connection closing).
// A control connection that hears no pong for ConnTimeout is dead.
func (l *outLane) readLoop(conn net.Conn) error {
	fr := frameReader{r: bufio.NewReaderSize(conn, 4096), maxFrame: 64}
	rtt := l.t.m.rtt.WithLabelValues(l.p.label)
	rttLast := l.t.m.rttLast.WithLabelValues(l.p.label)
	for {
		if l.lane == Control {
			_ = conn.SetReadDeadline(time.Now().Add(l.t.opts.ConnTimeout))
		}
		kind, _, body, err := fr.next()
		if err != nil {
			var fe *frameError
			if errors.As(err, &fe) {
				l.t.m.badFrames.WithLabelValues(l.p.label, fe.reason).Inc()
			}
			return fmt.Errorf("read: %w", err)
		}
		if kind != kindPong {
			l.t.m.badFrames.WithLabelValues(l.p.label, "unexpected").Inc()
			return fmt.Errorf("read: %w", &frameError{"unexpected", fmt.Sprintf("frame kind %d from the acceptor", kind)})
		}
		sent := time.Duration(binary.BigEndian.Uint64(body))
		d := (time.Since(l.t.start) - sent).Seconds()
		rtt.Observe(d)
		rttLast.Set(d)
	}
}
