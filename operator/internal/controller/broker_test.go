package controller

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The topic tests talk to a real chronik broker: built from the
// repository this module lives in, started on loopback with the config
// file the operator generated.
var (
	chronikOnce sync.Once
	chronikPath string
	chronikErr  error
)

// chronikBinary builds bin/chronik of the enclosing repository once.
func chronikBinary(t *testing.T) string {
	t.Helper()
	chronikOnce.Do(func() {
		repo := filepath.Join(moduleRoot(), "..")
		if _, err := os.Stat(filepath.Join(repo, "cmd", "chronik")); err != nil {
			chronikErr = fmt.Errorf("the broker's source is not at %s: %w", repo, err)
			return
		}
		dir, err := os.MkdirTemp("", "chronik-operator-test-")
		if err != nil {
			chronikErr = err
			return
		}
		chronikPath = filepath.Join(dir, "chronik")
		cmd := exec.Command("go", "build", "-o", chronikPath, "./cmd/chronik")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			chronikErr = fmt.Errorf("go build ./cmd/chronik: %w\n%s", err, out)
		}
	})
	if chronikErr != nil {
		t.Fatal(chronikErr)
	}
	return chronikPath
}

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// brokerProc is one running broker process.
type brokerProc struct {
	cmd    *exec.Cmd
	exited chan error
	log    string
}

// runBroker starts `chronik args...` with extra environment and stops it
// with SIGTERM when the test ends (printing its log if the test failed).
func runBroker(t *testing.T, dir string, env []string, args ...string) *brokerProc {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(dir, "broker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chronikBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &brokerProc{cmd: cmd, exited: make(chan error, 1), log: logf.Name()}
	go func() { p.exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				t.Logf("broker log %s:\n%s", p.log, b)
			}
		}
	})
	return p
}

// waitReady waits until the broker answers /readyz on metricsAddr.
func (p *brokerProc) waitReady(t *testing.T, metricsAddr string) {
	t.Helper()
	eventually(t, 2*time.Minute, "broker /readyz on "+metricsAddr, func() error {
		select {
		case err := <-p.exited:
			p.exited <- err
			b, _ := os.ReadFile(p.log)
			t.Fatalf("broker exited: %v\n%s", err, b)
		default:
		}
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
}

// stop signals the process and waits for it (kill -9 after 30 s).
func (p *brokerProc) stop(sig syscall.Signal) {
	select {
	case err := <-p.exited:
		p.exited <- err
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.exited:
		p.exited <- err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		p.exited <- <-p.exited
	}
}

// startBroker runs `chronik server --config conf` with the data directory
// and listeners moved to a temporary directory and loopback ports (flags
// override the file), waits for /readyz, and stops it with SIGTERM at the
// end of the test. It returns the Kafka and metrics addresses.
func startBroker(t *testing.T, conf string) (kafka, metrics string) {
	t.Helper()
	dir := t.TempDir()
	confPath := filepath.Join(dir, "chronik.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	kafka = "127.0.0.1:" + strconv.Itoa(freePort(t))
	metrics = "127.0.0.1:" + strconv.Itoa(freePort(t))
	p := runBroker(t, dir, nil, "server", "--config", confPath, "--data-dir", filepath.Join(dir, "data"),
		"--bind", kafka, "--advertise", kafka, "--metrics-bind", metrics)
	p.waitReady(t, metrics)
	return kafka, metrics
}

// brokerContext bounds one test's Kafka calls.
func brokerContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
