package fatal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
	"github.com/chronik-go/chronik/internal/testfs"
)

// serverArgs are the flags of a broker on addr with data in dir.
func serverArgs(dir, addr string) []string {
	return []string{"server", "--data-dir", dir, "--bind", addr, "--advertise", addr, "--metrics-bind", "127.0.0.1:0"}
}

// TestFatalStartupFailuresExitNonZero: a data directory locked by another
// broker and a Kafka port in use each stop `chronik server` at start with
// a non-zero status and exactly one ERROR line, which names the cause.
func TestFatalStartupFailuresExitNonZero(t *testing.T) {
	t.Run("data directory locked", func(t *testing.T) {
		dir := t.TempDir()
		first := testbroker.StartProcess(t, dir, testbroker.FreePort(t))
		code, log := exit(t, serverArgs(dir, testbroker.FreePort(t))...)
		errs := errorLines(log)
		if code == 0 || len(errs) != 1 || !strings.Contains(errs[0], "in use by another process") {
			t.Fatalf("exit status %d, error lines %q:\n%s", code, errs, log)
		}
		t.Logf("exit status %d: %s", code, errs[0])
		if err := first.Stop(); err != nil {
			t.Fatalf("the first broker, stopped by SIGTERM: %v", err)
		}
	})
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		code, log := exit(t, serverArgs(t.TempDir(), ln.Addr().String())...)
		errs := errorLines(log)
		if code == 0 || len(errs) != 1 || !strings.Contains(errs[0], "address already in use") || !strings.Contains(errs[0], "kafka listener") {
			t.Fatalf("exit status %d, error lines %q:\n%s", code, errs, log)
		}
		t.Logf("exit status %d: %s", code, errs[0])
	})
}

// waitExited waits until the process has exited (a zombie, not yet
// reaped), so that a signal sent to reap it cannot change its status.
func waitExited(t *testing.T, p *testbroker.Process, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if _, rest, _ := strings.Cut(string(b), ") "); strings.HasPrefix(rest, "Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker still running after %s:\n%s", within, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFatalRunTimeCriticalFailureExitsNonZero: a critical task failing
// while the broker serves ends the process with a non-zero status. The
// failure is real: the metadata log's active segment is made immutable
// (chattr +i on a loop-mounted ext4, so even root's writes get EPERM),
// then a CreateTopics makes the metadata Raft group append to it; its
// driver fails, which is critical. Before this change the process exited 0.
func TestFatalRunTimeCriticalFailureExitsNonZero(t *testing.T) {
	mnt := testfs.SmallExt4(t, 64)
	dir := filepath.Join(mnt, "data")
	addr := testbroker.FreePort(t)
	p := testbroker.StartProcess(t, dir, addr)
	segs, err := filepath.Glob(filepath.Join(dir, "logs", "__chronik_metadata-0", "*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("metadata segments: %v %v", segs, err)
	}
	sort.Strings(segs)
	active := segs[len(segs)-1]
	testfs.Chattr(t, "+i", active)
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", active).Run() }) // before the unmount

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, cerr := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "doomed")
	waitExited(t, p, time.Minute)
	err = p.Stop() // reaps it; the signal reaches a process that has exited
	log := p.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v (create topic: %v)\n%s", err, cerr, log)
	}
	errs := errorLines(log)
	last := errs[len(errs)-1]
	if !strings.Contains(last, "chronik stopped") || !strings.Contains(last, "raft-metadata") || !strings.Contains(last, "operation not permitted") {
		t.Fatalf("last error line does not name the cause: %q\n%s", last, log)
	}
	t.Logf("exit status %d after %d ERROR lines; last: %s", ee.ExitCode(), len(errs), last)
}

// TestFatalAcceptOutOfFileDescriptors: with the broker's RLIMIT_NOFILE
// lowered (prlimit on the live process) to a few more than it has open,
// connections beyond the limit make accept fail with EMFILE. The broker
// stays up, the connections it accepted keep answering, and once some are
// closed the one waiting in the backlog is accepted and served; the
// failures are counted in chronik_accept_errors_total and logged sampled.
func TestFatalAcceptOutOfFileDescriptors(t *testing.T) {
	addr := testbroker.FreePort(t)
	p := testbroker.StartProcess(t, t.TempDir(), addr)
	maddr := metricsAddr(t, p)
	pid := p.Cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	limit := len(fds) + 6
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}
	t.Logf("broker had %d descriptors open; RLIMIT_NOFILE set to %d", len(fds), limit)

	// Connect one at a time until one is not served because accept failed.
	var served []net.Conn
	defer func() {
		for _, c := range served {
			_ = c.Close()
		}
	}()
	for i := int32(0); ; i++ {
		if int(i) > limit+10 {
			t.Fatalf("%d connections served, accept never failed:\n%s", len(served), p.Output())
		}
		c := dialFrom(t, "127.0.0.1", addr)
		answered := make(chan error, 1)
		go func() { answered <- apiVersions(c, i) }()
		for accepted := false; !accepted; {
			select {
			case err := <-answered:
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				served = append(served, c)
				accepted = true
			case <-time.After(20 * time.Millisecond):
				if strings.Contains(p.Output(), "too many open files") {
					// Its request stays queued in the socket; the answer comes
					// once the broker accepts it.
					defer c.Close()
					t.Logf("accept failed with EMFILE after %d connections", len(served))
					verifyAfterEMFILE(t, p, served, c, answered, addr, maddr)
					return
				}
			}
		}
	}
}

func verifyAfterEMFILE(t *testing.T, p *testbroker.Process, served []net.Conn, waiting net.Conn, answered chan error, addr, maddr string) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("broker gone: %v", err)
	}
	// Let the backoff run a few rounds while nothing can be accepted.
	time.Sleep(1500 * time.Millisecond)
	for i, c := range served {
		if err := apiVersions(c, int32(1000+i)); err != nil {
			t.Fatalf("served connection %d stopped answering while accept fails: %v", i, err)
		}
	}
	// Free descriptors: the backlog's connection is accepted and answered.
	for _, c := range served[:3] {
		_ = c.Close()
	}
	if err := <-answered; err != nil {
		t.Fatalf("the connection that waited in the backlog: %v", err)
	}
	if err := apiVersions(waiting, 2000); err != nil {
		t.Fatalf("the connection that waited: %v", err)
	}
	for i, c := range served[3:] {
		if err := apiVersions(c, int32(3000+i)); err != nil {
			t.Fatalf("served connection %d after recovery: %v", i+3, err)
		}
	}
	fresh := dialFrom(t, "127.0.0.1", addr)
	if err := apiVersions(fresh, 4000); err != nil {
		t.Fatalf("a new connection after recovery: %v", err)
	}
	_ = fresh.Close()
	for _, c := range served {
		_ = c.Close()
	}
	_ = waiting.Close()
	// The scrape needs descriptors too: it is answered once the broker
	// has closed the connections above.
	var n float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		if v, ok := tryMetric(maddr, "chronik_accept_errors_total"); ok {
			n = v
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no /metrics after the connections closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines := strings.Count(p.Output(), "accept failed; retrying")
	if n < 1 || lines < 1 || float64(lines) > n {
		t.Fatalf("chronik_accept_errors_total %v, log lines %d", n, lines)
	}
	if err := p.Cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("broker gone: %v", err)
	}
	t.Logf("chronik_accept_errors_total %v in %d sampled log lines", n, lines)
	if err := p.Stop(); err != nil {
		t.Fatalf("clean stop after the episode: %v\n%s", err, p.Output())
	}
}

// TestLimitsConnectionCaps: max.connections.per.ip=5 with an override of 8
// for 127.0.0.2 and max.connections=12. Connections over a cap are closed
// at once (the client reads EOF, no answer) while the admitted ones are
// served; a slot freed is usable again; every refusal is counted by reason.
func TestLimitsConnectionCaps(t *testing.T) {
	addr := testbroker.FreePort(t)
	p := testbroker.StartProcess(t, t.TempDir(), addr, "--max-connections", "12", "--max-connections-per-ip", "5",
		"--max-connections-per-ip-overrides", "127.0.0.2:8")
	maddr := metricsAddr(t, p)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	corr := int32(0)
	admit := func(from string) net.Conn {
		t.Helper()
		c := dialFrom(t, from, addr)
		corr++
		if err := apiVersions(c, corr); err != nil {
			t.Fatalf("connection %d from %s not served: %v", len(conns)+1, from, err)
		}
		conns = append(conns, c)
		return c
	}
	refused := func(from string) {
		t.Helper()
		c := dialFrom(t, from, addr)
		defer c.Close()
		corr++
		if err := apiVersions(c, corr); !closedByPeer(err) {
			t.Fatalf("connection from %s over its cap: %v, want closed by the broker", from, err)
		}
	}
	first := admit("127.0.0.1")
	for range 4 {
		admit("127.0.0.1")
	}
	refused("127.0.0.1") // 6th from 127.0.0.1
	for range 7 {
		admit("127.0.0.2") // the override allows 8
	}
	refused("127.0.0.2") // 8th from .2 would fit its cap, but 12 are open
	refused("127.0.0.3")
	for i, c := range conns {
		corr++
		if err := apiVersions(c, corr); err != nil {
			t.Fatalf("admitted connection %d after refusals: %v", i, err)
		}
	}
	// Free a slot; wait until the broker has seen the close.
	_ = first.Close()
	conns = conns[1:]
	deadline := time.Now().Add(30 * time.Second)
	for metric(t, maddr, "chronik_active_connections") != 11 {
		if time.Now().After(deadline) {
			t.Fatal("the closed connection is still counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	admit("127.0.0.2") // 8th from .2: its override
	refused("127.0.0.2")

	perIP := metric(t, maddr, `chronik_connections_rejected_total{reason="max_connections_per_ip"}`)
	total := metric(t, maddr, `chronik_connections_rejected_total{reason="max_connections"}`)
	if perIP != 2 || total != 2 {
		t.Fatalf("rejected: per ip %v (want 2), max connections %v (want 2)", perIP, total)
	}
	if !strings.Contains(p.Output(), "connection refused: cap reached") {
		t.Fatalf("no log line for the refusals:\n%s", p.Output())
	}
	t.Logf("rejected: max_connections_per_ip %v, max_connections %v; %d log lines", perIP, total, strings.Count(p.Output(), "connection refused: cap reached"))
}
