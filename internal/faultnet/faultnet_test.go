package faultnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo is a real TCP server that writes back what it reads and counts
// the connections it accepted.
type echo struct {
	ln       net.Listener
	accepted atomic.Int32
	wg       sync.WaitGroup
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.wg.Add(1)
			go func() { defer e.wg.Done(); defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); e.wg.Wait() })
	return e
}

// ports maps a dialler's local port to the node it stands for: the tests
// dial from chosen ports so that one process can play several nodes.
type ports struct {
	mu sync.Mutex
	m  map[int]int
}

func (p *ports) identify(remote, _ net.Addr) (int, error) {
	ta := remote.(*net.TCPAddr)
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.m[ta.Port]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("port %d: %w", ta.Port, ErrUnknownDialler)
}

func (p *ports) dial(t *testing.T, node int, addr string) *net.TCPConn {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		p.mu.Lock()
		p.m[port] = node
		p.mu.Unlock()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
		c, err := d.Dial("tcp", addr)
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
			return c.(*net.TCPConn)
		}
	}
	t.Fatal("no local port to dial from")
	return nil
}

func newNet(t *testing.T) (*Net, *ports, string, *echo) {
	t.Helper()
	p := &ports{m: map[int]int{}}
	n := New(p.identify, nil)
	t.Cleanup(func() { _ = n.Close() })
	e := startEcho(t)
	addr, err := n.Listen(9, e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return n, p, addr, e
}

// roundTrip writes msg and reads it back, or fails after wait.
func roundTrip(c net.Conn, msg string, wait time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(wait))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != msg {
		return fmt.Errorf("echo %q, want %q", b, msg)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestFaultnetPassAndCut(t *testing.T) {
	n, p, addr, _ := newNet(t)
	c1 := p.dial(t, 1, addr)
	c2 := p.dial(t, 2, addr)
	for _, c := range []net.Conn{c1, c2} {
		if err := roundTrip(c, "hello", 5*time.Second); err != nil {
			t.Fatalf("no fault: %v", err)
		}
	}
	n.SetRule(Link{1, 9}, Rule{Cut: true})
	t.Run("cut link holds its bytes", func(t *testing.T) {
		if err := roundTrip(c1, "held", 300*time.Millisecond); !isTimeout(err) {
			t.Fatalf("through a cut link: %v, want a timeout", err)
		}
	})
	t.Run("other link passes", func(t *testing.T) {
		if err := roundTrip(c2, "other", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("heal delivers what was held", func(t *testing.T) {
		n.Heal()
		_ = c1.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 4)
		if _, err := io.ReadFull(c1, b); err != nil || string(b) != "held" {
			t.Fatalf("after heal: %q, %v", b, err)
		}
		if err := roundTrip(c1, "again", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFaultnetNewConnectionWhileCut(t *testing.T) {
	n, p, addr, e := newNet(t)
	n.Partition([]int{1}, []int{9})
	c := p.dial(t, 1, addr) // the proxy accepts; the node must not see it
	if err := roundTrip(c, "x", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("through a partition: %v, want a timeout", err)
	}
	if k := e.accepted.Load(); k != 0 {
		t.Fatalf("the node accepted %d connections across a partition", k)
	}
	if k := n.Conns(Link{1, 9}); k != 1 {
		t.Fatalf("held connections: %d, want 1", k)
	}
	n.Heal()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "x" {
		t.Fatalf("after heal: %q, %v", b, err)
	}
	if k := e.accepted.Load(); k != 1 {
		t.Fatalf("node accepted %d connections after the heal, want 1", k)
	}
}

func TestFaultnetPartitionSides(t *testing.T) {
	n := New(func(net.Addr, net.Addr) (int, error) { return 0, nil }, nil)
	defer n.Close()
	n.Partition([]int{1}, []int{3}) // node 2 in neither: a bridge
	want := map[Link]Rule{{1, 3}: {Cut: true}, {3, 1}: {Cut: true}}
	got := n.Rules()
	if len(got) != len(want) {
		t.Fatalf("rules %v, want %v", got, want)
	}
	for l, r := range want {
		if got[l] != r {
			t.Fatalf("rule of %v: %v, want %v", l, got[l], r)
		}
	}
}

func TestFaultnetDelayAndRate(t *testing.T) {
	n, p, addr, _ := newNet(t)
	c := p.dial(t, 1, addr)
	t.Run("delay applies each way", func(t *testing.T) {
		n.SetRule(Link{1, 9}, Rule{Delay: 100 * time.Millisecond})
		start := time.Now()
		if err := roundTrip(c, "slow", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		// A lower bound only: the proxy must have held the bytes both ways.
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Fatalf("round trip %v with 100 ms each way", d)
		}
	})
	t.Run("rate limits bytes", func(t *testing.T) {
		n.SetRule(Link{1, 9}, Rule{Rate: 256 << 10})
		msg := string(make([]byte, 128<<10))
		start := time.Now()
		if err := roundTrip(c, msg, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		// 128 KiB at 256 KiB/s takes half a second to pass one way (the
		// echo overlaps the way back), a lower bound.
		if d := time.Since(start); d < 490*time.Millisecond {
			t.Fatalf("128 KiB round trip in %v at 256 KiB/s", d)
		}
	})
}

func TestFaultnetReset(t *testing.T) {
	n, p, addr, _ := newNet(t)
	c := p.dial(t, 1, addr)
	if err := roundTrip(c, "a", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if k := n.Reset(Link{1, 9}); k != 1 {
		t.Fatalf("reset %d connections, want 1", k)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after reset: %v, want ECONNRESET", err)
	}
}

func TestFaultnetUnknownDiallerRefused(t *testing.T) {
	_, _, addr, e := newNet(t)
	c, err := net.Dial("tcp", addr) // from a port the identifier does not know
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("unknown dialler: read %v, want the connection closed", err)
	}
	if k := e.accepted.Load(); k != 0 {
		t.Fatalf("node accepted %d connections from an unknown dialler", k)
	}
}

// TestFaultnetProcIdentifier: the kernel's socket table names the process
// that dialled: this test process, and a child process (bash's /dev/tcp).
func TestFaultnetProcIdentifier(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed to dial from a second process: %v", err)
	}
	child := exec.Command(bash, "-c", "exec 3<>/dev/tcp/127.0.0.1/"+strconv.Itoa(port)+"; read -r -u 3 line")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	fromChild, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer fromChild.Close()
	mine, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	fromMe, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer fromMe.Close()

	id := ProcIdentifier(func() map[int]int { return map[int]int{1: os.Getpid(), 2: child.Process.Pid} })
	for _, tc := range []struct {
		name string
		c    net.Conn
		want int
	}{{"this process", fromMe, 1}, {"child process", fromChild, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := id(tc.c.RemoteAddr(), tc.c.LocalAddr())
			if err != nil || got != tc.want {
				t.Fatalf("identified %d, %v; want node %d", got, err, tc.want)
			}
		})
	}
	t.Run("not a listed process", func(t *testing.T) {
		only := ProcIdentifier(func() map[int]int { return map[int]int{2: child.Process.Pid} })
		if _, err := only(fromMe.RemoteAddr(), fromMe.LocalAddr()); !errors.Is(err, ErrUnknownDialler) {
			t.Fatalf("err %v, want ErrUnknownDialler", err)
		}
	})
}

func TestFaultnetParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:0016": "[::ffff:127.0.0.1]:22",
	} {
		got, err := parseProcAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("parseProcAddr(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := parseProcAddr("zz:1"); err == nil {
		t.Error("bad hex accepted")
	}
}

// TestFaultnetNodeGoesAway: the node stops reading, the dialler fills
// every buffer and queue on the way, then the node goes away (a killed
// node); the proxy must end the connection and Close must return, with no
// goroutine left waiting on a full queue.
func TestFaultnetNodeGoesAway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	p := &ports{m: map[int]int{}}
	n := New(p.identify, nil)
	addr, err := n.Listen(9, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := p.dial(t, 1, addr)
	node := <-accepted // it never reads
	buf := make([]byte, 64<<10)
	for {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(buf); err != nil {
			if !isTimeout(err) {
				t.Fatalf("write: %v", err)
			}
			break // everything between here and the node is full
		}
	}
	_ = node.Close()
	closed := make(chan struct{})
	go func() { _ = n.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return: a proxy goroutine is stuck")
	}
}
