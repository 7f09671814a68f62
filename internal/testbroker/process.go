package testbroker

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds bin/chronik once per test process (into a temp directory)
// and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			buildErr = fmt.Errorf("go list: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "chronik-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "chronik")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/chronik")
		cmd.Dir = strings.TrimSpace(string(out))
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a loopback address nobody listens on (for a broker that
// must come back on the same address after a restart).
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Process is a broker running as a child process of the real binary.
type Process struct {
	Cmd  *exec.Cmd
	Addr string
	Log  *strings.Builder
	mu   sync.Mutex
	done chan struct{}
}

// StartProcess runs `chronik server` on addr with data in dir and extra
// flags, and waits until it serves.
func StartProcess(t testing.TB, dir, addr string, extra ...string) *Process {
	t.Helper()
	args := append([]string{"server", "--data-dir", dir, "--bind", addr, "--advertise", addr, "--metrics-bind", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(Binary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{Cmd: cmd, Addr: addr, Log: &strings.Builder{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			p.mu.Lock()
			p.Log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), "serving kafka") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("broker exited during start-up:\n%s", p.Output())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("broker not serving after 60s:\n%s", p.Output())
	}
	t.Cleanup(func() { p.Kill() })
	return p
}

// Output returns what the broker logged.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Log.String()
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	_ = p.Cmd.Wait()
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *Process) Stop() error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	return p.Cmd.Wait()
}

// RSS returns the process's resident set size and its peak, in bytes.
func (p *Process) RSS() (cur, peak int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return -1, -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if n, _ := fmt.Sscanf(line, "VmRSS: %d kB", &kb); n == 1 {
			cur = kb << 10
		}
		if n, _ := fmt.Sscanf(line, "VmHWM: %d kB", &kb); n == 1 {
			peak = kb << 10
		}
	}
	return cur, peak
}
