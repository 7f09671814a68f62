package broker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Reasons a connection is refused, as the label of
// chronik_connections_rejected_total.
const (
	rejectMaxConnections = "max_connections"
	rejectMaxPerIP       = "max_connections_per_ip"
)

// connLimits enforces Kafka's max.connections, max.connections.per.ip and
// max.connections.per.ip.overrides on accepted connections. It only
// counts: the accept loop closes what it refuses. Kafka's acceptor pauses
// while max.connections is reached; we close the new connection at once
// instead, as Kafka does for the per-address cap, so that a flood never
// parks connections in the kernel's backlog where nobody sees them.
type connLimits struct {
	max       int // <= 0: no cap (a config built in code, not parsed)
	perIP     int
	overrides map[netip.Addr]int // a cap of its own per address; 0 refuses it

	mu    sync.Mutex
	total int
	byIP  map[netip.Addr]int
}

// resolveFunc returns the addresses of a host name.
type resolveFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// newConnLimits builds the limits. An override's key is an IP literal or a
// host name; names are resolved once, here (Kafka too resolves them when
// the setting is read), and a name that does not resolve is reported in
// errs and skipped. An address named both literally and through a host
// name keeps the literal's cap.
func newConnLimits(ctx context.Context, maxConns, perIP int32, overrides map[string]int32, resolve resolveFunc) (l *connLimits, errs []error) {
	l = &connLimits{max: int(maxConns), perIP: int(perIP), overrides: map[netip.Addr]int{}, byIP: map[netip.Addr]int{}}
	literal := map[netip.Addr]bool{}
	for host, n := range overrides {
		if a, err := netip.ParseAddr(host); err == nil {
			l.overrides[a.Unmap()] = int(n)
			literal[a.Unmap()] = true
		}
	}
	for host, n := range overrides {
		if _, err := netip.ParseAddr(host); err == nil {
			continue
		}
		addrs, err := resolve(ctx, host)
		if err != nil || len(addrs) == 0 {
			errs = append(errs, fmt.Errorf("max.connections.per.ip.overrides: host %q: %w", host, orNoAddress(err)))
			continue
		}
		for _, a := range addrs {
			if a = a.Unmap(); !literal[a] {
				l.overrides[a] = int(n)
			}
		}
	}
	return l, errs
}

func orNoAddress(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("no address")
}

// lookupHost resolves with the system resolver, bounded in time: a broker
// must not hang at start on a DNS server that does not answer.
func lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// capFor is the per-address cap of ip.
func (l *connLimits) capFor(ip netip.Addr) (int, bool) {
	if n, ok := l.overrides[ip]; ok {
		return n, true
	}
	return l.perIP, l.perIP > 0
}

// admit counts a new connection from ip, or refuses it and says which cap
// it hit. An admitted connection must be released exactly once.
func (l *connLimits) admit(ip netip.Addr) (reason string, ok bool) {
	ip = ip.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, capped := l.capFor(ip); capped && l.byIP[ip] >= n {
		return rejectMaxPerIP, false
	}
	if l.max > 0 && l.total >= l.max {
		return rejectMaxConnections, false
	}
	l.total++
	l.byIP[ip]++
	return "", true
}

// release forgets a connection admitted from ip.
func (l *connLimits) release(ip netip.Addr) {
	ip = ip.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip) // the map holds only addresses with connections
	}
}

// remoteIP is the peer address of an accepted connection (the zero Addr
// for a listener that is not TCP: such peers share one count).
func remoteIP(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// sampler lets one log line through per interval and counts the ones it
// held back, so a flood of the same failure (an accept loop out of file
// descriptors, a client reconnecting past its cap) costs one line a
// second that says how many it stands for.
type sampler struct {
	every time.Duration

	mu      sync.Mutex
	next    time.Time
	dropped int
}

// allow reports whether a line may be logged at now and how many were
// held back since the last one.
func (s *sampler) allow(now time.Time) (ok bool, suppressed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.next) {
		s.dropped++
		return false, 0
	}
	s.next = now.Add(s.every)
	suppressed, s.dropped = s.dropped, 0
	return true, suppressed
}

// Accept backoff after a failed Accept: 5 ms doubling to 1 s, reset by a
// success (net/http's schedule). An accept that fails for lack of file
// descriptors fails again at once; spinning on it would take the CPU the
// open connections need to finish and free them.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func nextAcceptBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return acceptBackoffMin
	}
	return min(2*d, acceptBackoffMax)
}
