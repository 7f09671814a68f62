package broker

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestConnLimits(t *testing.T) {
	a, b, c := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("10.0.0.7")
	noDNS := func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("no resolver here") }
	admitN := func(t *testing.T, l *connLimits, ip netip.Addr, n int) {
		t.Helper()
		for i := range n {
			if reason, ok := l.admit(ip); !ok {
				t.Fatalf("connection %d from %s refused: %s", i+1, ip, reason)
			}
		}
	}
	refused := func(t *testing.T, l *connLimits, ip netip.Addr, want string) {
		t.Helper()
		if reason, ok := l.admit(ip); ok || reason != want {
			t.Fatalf("from %s: admitted=%v reason=%q, want refused for %s", ip, ok, reason, want)
		}
	}
	t.Run("per ip", func(t *testing.T) {
		l, _ := newConnLimits(context.Background(), 100, 5, nil, noDNS)
		admitN(t, l, a, 5)
		refused(t, l, a, rejectMaxPerIP)
		admitN(t, l, b, 5) // another address has its own count
		l.release(a)
		admitN(t, l, a, 1)
		refused(t, l, a, rejectMaxPerIP)
	})
	t.Run("total", func(t *testing.T) {
		l, _ := newConnLimits(context.Background(), 3, 100, nil, noDNS)
		admitN(t, l, a, 2)
		admitN(t, l, b, 1)
		refused(t, l, c, rejectMaxConnections)
		l.release(b)
		admitN(t, l, c, 1)
	})
	t.Run("overrides by literal", func(t *testing.T) {
		l, errs := newConnLimits(context.Background(), 100, 2, map[string]int32{"127.0.0.2": 4, "10.0.0.7": 0, "::ffff:127.0.0.1": 3}, noDNS)
		if len(errs) != 0 {
			t.Fatal(errs)
		}
		admitN(t, l, b, 4)
		refused(t, l, b, rejectMaxPerIP)
		refused(t, l, c, rejectMaxPerIP) // 0 refuses the address altogether
		// An IPv4-mapped IPv6 key and peer count as the IPv4 address.
		admitN(t, l, netip.MustParseAddr("::ffff:127.0.0.1"), 2)
		admitN(t, l, a, 1)
		refused(t, l, a, rejectMaxPerIP)
	})
	t.Run("overrides by host name", func(t *testing.T) {
		resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
			if host == "clients.example" {
				return []netip.Addr{a, b}, nil
			}
			return nil, errors.New("no such host")
		}
		l, errs := newConnLimits(context.Background(), 100, 1, map[string]int32{"clients.example": 3, "127.0.0.2": 2, "gone.example": 9}, resolve)
		if len(errs) != 1 {
			t.Fatalf("want one error for the name that does not resolve, got %v", errs)
		}
		admitN(t, l, a, 3)
		refused(t, l, a, rejectMaxPerIP)
		admitN(t, l, b, 2) // the literal wins over the name
		refused(t, l, b, rejectMaxPerIP)
		admitN(t, l, c, 1)
		refused(t, l, c, rejectMaxPerIP)
	})
	t.Run("localhost through the system resolver", func(t *testing.T) {
		l, errs := newConnLimits(context.Background(), 100, 1, map[string]int32{"localhost": 2}, lookupHost)
		if len(errs) != 0 {
			t.Fatal(errs)
		}
		admitN(t, l, a, 2)
		refused(t, l, a, rejectMaxPerIP)
	})
	t.Run("zero caps mean none", func(t *testing.T) {
		// A Config built in code (not parsed) leaves the caps at zero.
		l, _ := newConnLimits(context.Background(), 0, 0, nil, noDNS)
		admitN(t, l, a, 1000)
	})
	t.Run("release forgets idle addresses", func(t *testing.T) {
		l, _ := newConnLimits(context.Background(), 10, 10, nil, noDNS)
		admitN(t, l, a, 2)
		l.release(a)
		l.release(a)
		if len(l.byIP) != 0 || l.total != 0 {
			t.Fatalf("counts left behind: %v total %d", l.byIP, l.total)
		}
	})
}

func TestSampler(t *testing.T) {
	s := &sampler{every: time.Second}
	t0 := time.Unix(1000, 0)
	if ok, n := s.allow(t0); !ok || n != 0 {
		t.Fatalf("first line: %v %d", ok, n)
	}
	for i := range 9 {
		if ok, _ := s.allow(t0.Add(time.Duration(i+1) * 50 * time.Millisecond)); ok {
			t.Fatalf("line %d within the second let through", i)
		}
	}
	if ok, n := s.allow(t0.Add(time.Second)); !ok || n != 9 {
		t.Fatalf("after a second: ok=%v suppressed=%d, want true 9", ok, n)
	}
}

func TestAcceptBackoff(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0)
	for range 10 {
		d = nextAcceptBackoff(d)
		got = append(got, d)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff schedule %v, want %v ms", got, want)
		}
	}
}
