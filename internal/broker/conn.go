package broker

import (
	"bufio"
	"context"
	"errors"
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
		principal: quota.Anonymous}
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
	go func() {
		select {
		case <-ctx.Done():
			c.close()
		case <-c.closed:
		}
	}()
	if err := c.read(ctx); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.b.log.Info("closing connection", "remote", c.remote, "reason", err.Error())
	}
	// The client is gone or broken: end long polls and waits at once (their
	// memory is released as they return), then let the writer drain.
	cancel()
	close(c.out)
	wg.Wait()
	c.close()
}

// read is the reader loop: frame, reserve memory, parse, dispatch.
func (c *conn) read(ctx context.Context) error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		if err := c.waitMuted(ctx); err != nil {
			return err
		}
		size, err := protocol.ReadSize(br, c.b.maxFrame)
		if err != nil {
			c.b.badFrame(err)
			return err
		}
		// A produce request's records live twice until they are durable:
		// in the request frame and in the Raft entry etcd raft copies them
		// into. The budget counts both, reserved at once (two reservations
		// could deadlock when every connection holds one half).
		cost := int64(size)
		if key, err := br.Peek(2); err == nil && int16(key[0])<<8|int16(key[1]) == int16(kmsg.Produce) {
			cost *= 2
		}
		release, err := c.b.budget.Reserve(ctx, cost)
		if err != nil {
			return err
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(br, frame); err != nil {
			release()
			return err
		}
		if err := c.dispatch(ctx, frame, release); err != nil {
			c.b.badFrame(err)
			release()
			return err
		}
	}
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

// write is the writer loop: responses leave in request order. Pipelined
// responses that are ready together share one write; a response is never
// held back waiting for a later one.
func (c *conn) write() {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	broken := false
	var next *pending
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
		if broken {
			continue
		}
		if p.kill {
			broken = true
			c.close()
			continue
		}
		if p.frame != nil {
			if _, err := bw.Write(p.frame); err != nil {
				broken = true
				c.close()
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
		if err := bw.Flush(); err != nil {
			broken = true
			c.close()
		}
	}
	if !broken {
		_ = bw.Flush()
	}
}
