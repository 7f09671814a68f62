// Package faultnet is a TCP fault proxy for the links between the broker
// processes of a fault run (docs/FAULTS F4, F5, F6): every node's Raft
// address, as its peers know it, is a proxy listener that forwards to the
// node's real listener, and the proxy applies a rule per directed link
// (dialling node → accepting node): cut (a partition: bytes are held, as
// dropped packets are retransmitted only after the heal, and a new
// connection waits without reaching the node), added latency and jitter,
// a bandwidth limit, and resets (RST) of the open connections.
//
// The dialling node is identified from the kernel (the owner of the
// connecting socket, /proc/net/tcp and /proc/PID/fd), not from anything in
// the bytes, so the proxy does not depend on the transport's wire format.
// It only ever listens on and dials loopback addresses it is given, and
// is used by the fault harness (internal/chaos), never by the broker.
package faultnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Link is a directed node link: the connections that From dials to To.
// The transport sends From's messages to To over them (and To's answers to
// pings come back on them), so cutting Link{1,2} alone stops 1 → 2 while
// 2 → 1 still flows: an asymmetric partition.
type Link struct{ From, To int }

// Rule is what happens to a link's bytes, in both directions of its
// connections. The zero Rule passes everything at once.
type Rule struct {
	// Cut holds every byte (a partition): nothing reaches either end until
	// the rule changes; a connection opened meanwhile is accepted by the
	// proxy but not forwarded, so the dialler's handshake times out.
	Cut bool
	// Delay is added to every chunk; Jitter adds a uniform [0, Jitter) on
	// top. Order is kept: a chunk never overtakes the one before it.
	Delay, Jitter time.Duration
	// Rate limits each direction to this many bytes per second (0: none).
	Rate int64
}

func (r Rule) String() string {
	if r.Cut {
		return "cut"
	}
	s := ""
	if r.Delay > 0 || r.Jitter > 0 {
		s += fmt.Sprintf("delay %v±%v ", r.Delay, r.Jitter)
	}
	if r.Rate > 0 {
		s += fmt.Sprintf("rate %d B/s", r.Rate)
	}
	if s == "" {
		return "pass"
	}
	return s
}

// Identifier names the node that opened a connection the proxy accepted
// (remote is the dialler's address, local the proxy's).
type Identifier func(remote, local net.Addr) (int, error)

// Net is the set of proxies of one cluster and the rules of its links.
type Net struct {
	identify Identifier
	log      *slog.Logger

	mu      sync.Mutex
	rules   map[Link]Rule
	changed chan struct{} // closed and replaced at every rule change
	lns     []net.Listener
	conns   map[*conn]struct{}
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a Net with no proxies and no rules; identify names the
// dialling node of each accepted connection.
func New(identify Identifier, log *slog.Logger) *Net {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Net{identify: identify, log: log, rules: map[Link]Rule{}, changed: make(chan struct{}),
		conns: map[*conn]struct{}{}, ctx: ctx, cancel: cancel}
}

// ErrClosed is returned by Listen after Close.
var ErrClosed = errors.New("faultnet: closed")

// Listen starts the proxy of node: a listener on a free loopback port
// (returned) that forwards to target, the node's real address.
func (n *Net) Listen(node int, target string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("proxy listener: %w", err)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = ln.Close()
		return "", ErrClosed
	}
	n.lns = append(n.lns, ln)
	n.wg.Add(1)
	n.mu.Unlock()
	go n.accept(ln, node, target)
	return ln.Addr().String(), nil
}

// SetRule sets one link's rule (the zero Rule removes it).
func (n *Net) SetRule(l Link, r Rule) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r == (Rule{}) {
		delete(n.rules, l)
	} else {
		n.rules[l] = r
	}
	close(n.changed)
	n.changed = make(chan struct{})
}

// Rules returns a copy of the rules in force.
func (n *Net) Rules() map[Link]Rule {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[Link]Rule, len(n.rules))
	for l, r := range n.rules {
		out[l] = r
	}
	return out
}

// Partition cuts every link, both directions, between nodes of different
// groups; links inside a group are left as they are. A node in no group
// keeps all its links (a bridge: Partition([]int{1}, []int{3}) leaves 2
// talking to both).
func (n *Net) Partition(groups ...[]int) {
	side := map[int]int{}
	for g, nodes := range groups {
		for _, id := range nodes {
			side[id] = g + 1
		}
	}
	for a, ga := range side {
		for b, gb := range side {
			if ga != gb {
				n.SetRule(Link{a, b}, Rule{Cut: true})
			}
		}
	}
}

// Heal removes every rule: all links pass again, and held bytes flow.
func (n *Net) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rules = map[Link]Rule{}
	close(n.changed)
	n.changed = make(chan struct{})
}

// Reset closes every open connection of the link with an RST to both ends
// and returns how many there were.
func (n *Net) Reset(l Link) int {
	n.mu.Lock()
	var cs []*conn
	for c := range n.conns {
		if c.link == l {
			cs = append(cs, c)
		}
	}
	n.mu.Unlock()
	for _, c := range cs {
		c.reset()
	}
	return len(cs)
}

// Conns counts the open connections of a link (forwarded or held).
func (n *Net) Conns(l Link) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for c := range n.conns {
		if c.link == l {
			k++
		}
	}
	return k
}

// Close stops every proxy and closes every connection; it waits for all
// of the proxy's goroutines.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	lns := n.lns
	cs := make([]*conn, 0, len(n.conns))
	for c := range n.conns {
		cs = append(cs, c)
	}
	n.mu.Unlock()
	n.cancel()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, c := range cs {
		c.close()
	}
	n.wg.Wait()
	return nil
}

// rule returns a link's rule and the channel closed at the next change.
func (n *Net) rule(l Link) (Rule, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rules[l], n.changed
}

func (n *Net) accept(ln net.Listener, node int, target string) {
	defer n.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed
		}
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			_ = c.Close()
			return
		}
		n.wg.Add(1)
		n.mu.Unlock()
		go n.serve(c, node, target)
	}
}

// conn is one proxied connection: down is the dialler's side, up the
// node's (nil until the link lets the connection through).
type conn struct {
	link Link
	mu   sync.Mutex
	down net.Conn
	up   net.Conn
	done bool
	quit chan struct{} // closed by close
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		close(c.quit)
	}
	c.done = true
	_ = c.down.Close()
	if c.up != nil {
		_ = c.up.Close()
	}
}

// reset closes both sides with SO_LINGER 0, which sends an RST.
func (c *conn) reset() {
	c.mu.Lock()
	for _, x := range []net.Conn{c.down, c.up} {
		if tc, ok := x.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	c.mu.Unlock()
	c.close()
}

func (c *conn) setUp(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return false
	}
	c.up = up
	return true
}

type chunk struct {
	b  []byte
	at time.Time
}

func (n *Net) serve(down net.Conn, node int, target string) {
	defer n.wg.Done()
	from, err := n.identify(down.RemoteAddr(), down.LocalAddr())
	if err != nil {
		n.log.Warn("faultnet: refusing a connection from an unknown dialler", "to", node, "remote", down.RemoteAddr().String(), "err", err)
		_ = down.Close()
		return
	}
	c := &conn{link: Link{from, node}, down: down, quit: make(chan struct{})}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = down.Close()
		return
	}
	n.conns[c] = struct{}{}
	n.mu.Unlock()
	defer func() {
		c.close()
		n.mu.Lock()
		delete(n.conns, c)
		n.mu.Unlock()
	}()

	// The dialler's bytes are read (and held) from the start, so that its
	// closing is noticed while the link is cut.
	toUp := make(chan chunk, 16)
	gone := make(chan struct{}) // closed when the dialler's side ends
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); defer close(gone); read(down, toUp, c.quit) }()
	defer wg.Wait()
	defer c.close() // ends the readers before wg.Wait

	// Wait until the link lets the connection through.
	for {
		r, changed := n.rule(c.link)
		if !r.Cut {
			break
		}
		select {
		case <-changed:
		case <-n.ctx.Done():
			return
		case <-gone:
			return
		case <-c.quit:
			return
		}
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.DialContext(n.ctx, "tcp", target)
	if err != nil {
		return // the node is down: the dialler sees its connection close
	}
	if !c.setUp(up) {
		_ = up.Close()
		return
	}
	toDown := make(chan chunk, 16)
	wg.Add(3)
	go func() { defer wg.Done(); read(up, toDown, c.quit) }()
	errc := make(chan struct{}, 2)
	go func() { defer wg.Done(); n.write(c, up, toUp); errc <- struct{}{} }()
	go func() { defer wg.Done(); n.write(c, down, toDown); errc <- struct{}{} }()
	<-errc // either direction ending ends the connection
}

// read moves what arrives on c into ch, stamped with its arrival time,
// and closes ch at the end; it gives up a send when quit closes (the
// writer that drained ch may be gone).
func read(c net.Conn, ch chan<- chunk, quit <-chan struct{}) {
	defer close(ch)
	for {
		b := make([]byte, 32<<10)
		k, err := c.Read(b)
		if k > 0 {
			select {
			case ch <- chunk{b[:k], time.Now()}:
			case <-quit:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// write delivers the queued chunks to c under the link's rule; a rule
// change while a chunk waits is applied to it at once (a cut holds it).
func (n *Net) write(pc *conn, c net.Conn, ch <-chan chunk) {
	l := pc.link
	var last, free time.Time
	for ck := range ch {
		for {
			r, changed := n.rule(l)
			if r.Cut {
				select {
				case <-changed:
					continue
				case <-pc.quit:
					return
				case <-n.ctx.Done():
					return
				}
			}
			at := ck.at.Add(r.Delay)
			if r.Jitter > 0 {
				at = at.Add(rand.N(r.Jitter))
			}
			if at.Before(last) {
				at = last
			}
			var fin time.Time
			if r.Rate > 0 {
				fin = free
				if now := time.Now(); fin.Before(now) {
					fin = now
				}
				fin = fin.Add(time.Duration(float64(len(ck.b)) / float64(r.Rate) * float64(time.Second)))
				if fin.After(at) {
					at = fin
				}
			}
			if wait := time.Until(at); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-changed:
					t.Stop()
					continue
				case <-pc.quit:
					t.Stop()
					return
				case <-n.ctx.Done():
					t.Stop()
					return
				}
			}
			if r.Rate > 0 {
				free = fin
			}
			last = at
			break
		}
		if _, err := c.Write(ck.b); err != nil {
			return
		}
	}
}
