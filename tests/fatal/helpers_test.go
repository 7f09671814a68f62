// Package fatal runs the real chronik binary into real failures (a file
// descriptor limit, a locked data directory, a port in use, an immutable
// metadata segment, connection caps) and checks what the process does:
// it goes on serving what it can, or it exits non-zero with one line
// naming the cause.
package fatal

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// apiVersions sends an ApiVersions v0 request on c and reads its response:
// an answer means the broker accepted the connection and serves it.
func apiVersions(c net.Conn, corr int32) error {
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fatal-test")).AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), corr)
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := c.Write(frame); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	size, got := int32(binary.BigEndian.Uint32(hdr[:4])), int32(binary.BigEndian.Uint32(hdr[4:]))
	if got != corr {
		return fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	if _, err := io.CopyN(io.Discard, c, int64(size-4)); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return nil
}

// dialFrom connects to addr from the local address from (a loopback
// address of 127/8: every one of them is this host).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 30 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	return c
}

// closedByPeer reports whether err says the other side closed the
// connection (what a refused connection looks like to its client).
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

var metricsAddrRe = regexp.MustCompile(`serving metrics and health"? addr=(\S+)`)

// metricsAddr is the metrics address a broker process logged.
func metricsAddr(t *testing.T, p *testbroker.Process) string {
	t.Helper()
	m := metricsAddrRe.FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", p.Output())
	}
	return m[1]
}

// metric reads one sample (name with labels as exposed) from /metrics.
func metric(t *testing.T, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("sample %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no sample %s in /metrics", sample)
	return 0
}

// tryMetric reads one sample, or reports false when /metrics does not
// answer (a broker out of file descriptors cannot accept the scrape).
func tryMetric(addr, sample string) (float64, bool) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// exit runs the binary with args until it exits (at most two minutes) and
// returns its exit code and what it logged.
func exit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testbroker.Binary(t), args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("still running after two minutes:\n%s", out.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// errorLines are the ERROR lines of a text log.
func errorLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return out
}
