package broker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
	"github.com/chronik-go/chronik/internal/quota"
)

// maxPipelined bounds the requests of one connection waiting for their
// responses; beyond it the reader stops reading (the client's max in-flight
// setting normally keeps it far lower).
const maxPipelined = 1024

// conn is one client connection: the reader goroutine (serve) reads,
// parses and dispatches requests in order; the writer goroutine writes
// their responses in the same order.
type conn struct {
	b      *Broker
	nc     net.Conn
	remote string
	out    chan *pending

	closeOnce sync.Once
	closed    chan struct{}

	// mutedUntil (unix nanos) holds the reader back after a quota
	// violation (KIP-219): the response leaves at once with its
	// throttle_time_ms and no further request is read until then.
	mutedUntil atomic.Int64
	// share is this connection's part of the produce budget.
	share *Share
	// inflight counts requests read and not yet answered.
	inflight atomic.Int64

	// principal is the authenticated user (quota.Anonymous until
	// authentication lands); quota binds the connection to its quota
	// sensors.
	principal string
	quota     quota.Client
}

// throttle mutes the connection for d from now (quota enforcement): the
// reader reads no further request until the time has passed. A longer
// mute already in force is kept.
func (c *conn) throttle(d time.Duration) {
	if d <= 0 {
		return
	}
	until := time.Now().Add(d).UnixNano()
	for {
		cur := c.mutedUntil.Load()
		if cur >= until || c.mutedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// waitMuted blocks while the connection is muted.
func (c *conn) waitMuted(ctx context.Context) error {
	until := c.mutedUntil.Load()
	if until == 0 {
		return nil
	}
	d := time.Until(time.Unix(0, until))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pending is one request's response slot.
type pending struct {
	ready   chan struct{}
	frame   []byte // the response frame; nil: nothing to send
	kill    bool   // close the connection instead of answering
	release func() // gives back the request's memory
}

func newConn(b *Broker, nc net.Conn) *conn {
	return &conn{b: b, nc: nc, remote: nc.RemoteAddr().String(), out: make(chan *pending, maxPipelined), closed: make(chan struct{}),
		share: b.budget.NewShare(), principal: quota.Anonymous}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.nc.Close()
	})
}

// serve runs the connection until EOF, an error, or ctx ending.
func (c *conn) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.write()
	}()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	if err := c.read(ctx); errors.Is(err, errClosedByBroker) {
		c.b.log.Warn("closing connection", "remote", c.remote, "reason", err.Error())
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.b.log.Info("closing connection", "remote", c.remote, "reason", err.Error())
	}
	// The client is gone or broken: end long polls and waits at once (their
	// memory is released as they return), then let the writer drain.
	cancel()
	close(c.out)
	wg.Wait()
	c.close()
}

// smallFrame: requests other than Produce up to this size are read without
// touching the produce budget, so Metadata, ApiVersions, heartbeats and
// fetches are never queued behind produce requests waiting for memory.
const smallFrame = 64 << 10

// readChunk: larger frames are reserved and read this much at a time, so
// memory is held for bytes that arrived, never for bytes a frame only
// announces.
const readChunk = 128 << 10

// Reasons a connection is closed by the broker (metric label).
const (
	closedIdle           = "idle"
	closedRequestTimeout = "request_timeout"
	// closedResponseTimeout: the client stopped reading its responses.
	closedResponseTimeout = "response_timeout"
)

// read is the reader loop: wait for a frame, reserve memory as its body
// arrives, parse, dispatch.
func (c *conn) read(ctx context.Context) error {
	var br *bufio.Reader // allocated with the first byte: idle connections hold no buffer
	for {
		if err := c.waitMuted(ctx); err != nil {
			return err
		}
		if err := c.awaitFrame(&br); err != nil {
			return err
		}
		// From its first byte, a frame has socket.request.timeout.ms to
		// arrive whole (time spent waiting for memory not counted).
		deadline := time.Now().Add(c.b.requestTimeout)
		_ = c.nc.SetReadDeadline(deadline)
		size, err := protocol.ReadSize(br, c.b.maxFrame)
		if err != nil {
			c.b.badFrame(err)
			return c.timedOut(err, 0, 4)
		}
		frame, release, err := c.readFrame(ctx, br, size, deadline)
		if err != nil {
			return err
		}
		if err := c.dispatch(ctx, frame, release); err != nil {
			c.b.badFrame(err)
			release()
			return err
		}
	}
}

// awaitFrame waits for the next frame's first byte. A connection that sends
// nothing for connections.max.idle.ms while none of its requests is being
// served is closed.
func (c *conn) awaitFrame(brp **bufio.Reader) error {
	for *brp == nil || (*brp).Buffered() == 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.b.idleTimeout))
		var err error
		if br := *brp; br != nil {
			_, err = br.Peek(1)
		} else {
			var first [1]byte
			var n int
			if n, err = c.nc.Read(first[:]); n == 1 {
				*brp = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(first[:]), c.nc), 64<<10)
				err = nil
			}
		}
		if err == nil {
			return nil
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		if c.inflight.Load() > 0 {
			continue // a long wait of ours (a rebalance, a long poll) is not idleness
		}
		c.b.connClosed(closedIdle)
		return fmt.Errorf("idle for %v (connections.max.idle.ms): %w", c.b.idleTimeout, errClosedByBroker)
	}
	return nil
}

// errClosedByBroker marks a connection the broker closed on purpose.
var errClosedByBroker = errors.New("closed by the broker")

// timedOut turns a read deadline into the request-timeout close (counted
// and explained); other errors pass through.
func (c *conn) timedOut(err error, got, size int64) error {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return err
	}
	c.b.connClosed(closedRequestTimeout)
	return fmt.Errorf("request frame incomplete after %v (socket.request.timeout.ms): %d of %d bytes arrived: %w",
		c.b.requestTimeout, got, size, errClosedByBroker)
}

// readFrame reads one frame body of size bytes. Small non-produce frames
// are read at once; others reserve budget chunk by chunk before reading
// it (a produce request's records live twice until they are durable: in
// the frame and in the Raft entry, so they count double).
func (c *conn) readFrame(ctx context.Context, br *bufio.Reader, size int32, deadline time.Time) ([]byte, func(), error) {
	produce := false
	if size >= 2 {
		key, err := br.Peek(2)
		if err != nil {
			return nil, nil, c.timedOut(err, int64(br.Buffered()), int64(size))
		}
		produce = int16(key[0])<<8|int16(key[1]) == int16(kmsg.Produce)
	}
	if !produce && size <= smallFrame {
		frame := make([]byte, size)
		if n, err := io.ReadFull(br, frame); err != nil {
			return nil, nil, c.timedOut(err, int64(n), int64(size))
		}
		return frame, func() {}, nil
	}
	cost := int64(1)
	if produce {
		cost = 2
	}
	var releases []func()
	releaseAll := func() {
		for _, r := range releases {
			r()
		}
	}
	var chunks [][]byte
	for got := int32(0); got < size; {
		n := min(size-got, readChunk)
		waitStart := time.Now()
		rel, err := c.share.Reserve(ctx, cost*int64(n))
		if err != nil {
			releaseAll()
			return nil, nil, err
		}
		releases = append(releases, rel)
		if waited := time.Since(waitStart); waited > time.Millisecond {
			deadline = deadline.Add(waited)
			_ = c.nc.SetReadDeadline(deadline)
		}
		chunk := make([]byte, n)
		if m, err := io.ReadFull(br, chunk); err != nil {
			releaseAll()
			return nil, nil, c.timedOut(err, int64(got)+int64(m), int64(size))
		}
		chunks = append(chunks, chunk)
		got += n
	}
	c.share.FrameDone()
	release := releaseAll
	if len(releases) == 1 {
		release = releases[0]
	}
	if len(chunks) == 1 {
		return chunks[0], release, nil
	}
	frame := make([]byte, 0, size)
	for _, ch := range chunks {
		frame = append(frame, ch...)
	}
	return frame, release, nil
}

// dispatch parses one frame and queues its response slot. Errors end the
// connection (Kafka closes connections it cannot parse).
func (c *conn) dispatch(ctx context.Context, frame []byte, release func()) error {
	start := time.Now()
	h, req, body, err := protocol.ParseRequest(frame, c.b.versions)
	if err != nil {
		if errors.Is(err, protocol.ErrUnsupportedVersion) && h.Key == int16(kmsg.ApiVersions) {
			c.b.badFrame(err)
			// KIP-511: answer an ApiVersions version we do not know with a
			// v0 response carrying UNSUPPORTED_VERSION and our table, so the
			// client can retry with a version we serve.
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.SetVersion(0)
			resp.ErrorCode = kerr.UnsupportedVersion.Code
			resp.ApiKeys = c.b.versions.APIKeys()
			return c.queue(&pending{ready: closedChan, frame: protocol.AppendResponse(nil, h.CorrelationID, resp), release: release})
		}
		return err
	}
	if err := req.ReadFrom(body); err != nil {
		return errors.Join(protocol.ErrMalformed, err)
	}
	res := c.b.handlers[h.Key](ctx, c, &h, req)
	reqThrottle := c.recordRequestTime(&h, time.Since(start))
	p := &pending{ready: make(chan struct{}), release: release}
	if res.wait == nil {
		raiseThrottle(res.resp, reqThrottle)
		if !res.noResponse {
			p.frame = protocol.AppendResponse(nil, h.CorrelationID, res.resp)
		}
		c.b.observe(h.Key, req, res.resp, time.Since(start))
		close(p.ready)
	} else {
		go func() {
			resp := res.wait()
			raiseThrottle(resp, reqThrottle)
			c.b.observe(h.Key, req, resp, time.Since(start))
			switch {
			case res.noResponse && resp != nil:
				p.kill = true
			case !res.noResponse:
				p.frame = protocol.AppendResponse(nil, h.CorrelationID, resp)
			}
			close(p.ready)
		}()
	}
	return c.queue(p)
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *conn) queue(p *pending) error {
	c.inflight.Add(1)
	select {
	case c.out <- p:
		return nil
	case <-c.closed:
		p.releaseWhenDone()
		return net.ErrClosed
	}
}

// releaseWhenDone gives the request's memory back once its work finished.
func (p *pending) releaseWhenDone() {
	go func() {
		<-p.ready
		p.release()
	}()
}

// writeFailed closes the connection after a failed write; a client that
// did not read its responses in time is counted and logged.
func (c *conn) writeFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.b.connClosed(closedResponseTimeout)
		c.b.log.Warn("closing connection", "remote", c.remote, "reason",
			fmt.Sprintf("the client read no response for %v (socket.request.timeout.ms): %v", c.b.requestTimeout, errClosedByBroker))
	}
	c.close()
}

// write is the writer loop: responses leave in request order. Pipelined
// responses that are ready together share one write; a response is never
// held back waiting for a later one.
func (c *conn) write() {
	var bw *bufio.Writer // allocated with the first response
	broken := false
	var next *pending
	// A client that stops reading its responses gets socket.request.timeout.ms
	// for each write, then the connection is closed (its pipelined
	// responses would otherwise pile up). The deadline is renewed when half
	// of it has passed, not per response.
	var writeDeadline time.Time
	for {
		p := next
		next = nil
		if p == nil {
			var ok bool
			if p, ok = <-c.out; !ok {
				break
			}
		}
		<-p.ready
		p.release()
		c.inflight.Add(-1)
		if broken {
			continue
		}
		if p.kill {
			broken = true
			c.close()
			continue
		}
		// Renewed after the wait for the response, right before writing.
		if now := time.Now(); writeDeadline.Sub(now) < c.b.requestTimeout/2 {
			writeDeadline = now.Add(c.b.requestTimeout)
			_ = c.nc.SetWriteDeadline(writeDeadline)
		}
		if p.frame != nil {
			if bw == nil {
				bw = bufio.NewWriterSize(c.nc, 64<<10)
			}
			if _, err := bw.Write(p.frame); err != nil {
				broken = true
				c.writeFailed(err)
				continue
			}
		}
		// Look at the next response: if it is not ready yet, flush now.
		select {
		case q, ok := <-c.out:
			if ok {
				next = q
				select {
				case <-q.ready:
					continue
				default:
				}
			}
		default:
		}
		if bw == nil {
			continue
		}
		if err := bw.Flush(); err != nil {
			broken = true
			c.writeFailed(err)
		}
	}
	if !broken && bw != nil {
		_ = bw.Flush()
	}
}
