// Package peers runs the peers' own test suites against a Chronik broker:
// franz-go's kgo integration tests at the version in go.mod, pointed at a
// broker process with KGO_SEEDS. Every test's outcome goes into
// docs/COMPATIBILITY-PEERS.md (make test-peers); the run fails when a test
// fails without a known reason: a feature whose issue is still open, or a
// client-side limitation written down here.
package peers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chronik-go/chronik/internal/testbroker"
)

var writeDoc = flag.Bool("update", false, "rewrite docs/COMPATIBILITY-PEERS.md from this run")

// knownFailures are the kgo tests that fail against Chronik for a reason
// that is not a protocol or behaviour difference, with that reason.
var knownFailures = map[string]string{}

// outcome is one top-level test of a suite.
type outcome struct {
	name, result, reason string // result: pass, fail, skip
	elapsed              float64
}

// franzGoVersion is the franz-go version go.mod requires.
func franzGoVersion(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/twmb/franz-go").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/twmb/franz-go: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestPeersFranzGo runs github.com/twmb/franz-go/pkg/kgo's tests (the
// integration tests that need a broker) against a fresh broker process.
func TestPeersFranzGo(t *testing.T) {
	dir := t.TempDir()
	addr := testbroker.FreePort(t)
	b := testbroker.StartProcess(t, dir, addr, "--group-initial-rebalance-delay-ms", "0")
	start := time.Now()
	cmd := exec.Command("go", "test", "-count=1", "-json", "-timeout", "25m", "github.com/twmb/franz-go/pkg/kgo")
	cmd.Env = append(os.Environ(), "KGO_SEEDS="+b.Addr, "KGO_TEST_RF=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if len(out) == 0 {
		t.Fatalf("go test github.com/twmb/franz-go/pkg/kgo: %v\n%s", err, stderr.String())
	}
	results := parse(t, out)
	took := time.Since(start).Round(time.Second)
	var unexplained []string
	for i, r := range results {
		if r.result == "fail" {
			if why, ok := knownFailures[r.name]; ok {
				results[i].reason = why
			} else {
				unexplained = append(unexplained, r.name)
			}
		}
	}
	doc := render("franz-go "+franzGoVersion(t)+" (pkg/kgo)", took, results)
	path := filepath.Join("..", "..", "docs", "COMPATIBILITY-PEERS.md")
	if *writeDoc {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(unexplained) > 0 {
		t.Errorf("kgo tests failed without a known reason: %s\n(their output is in the -json stream; broker log:\n%s)", strings.Join(unexplained, ", "), tailOf(b.Output()))
	}
	if len(results) == 0 {
		t.Fatal("no kgo test ran")
	}
}

func tailOf(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// parse reads go test -json output into the outcomes of top-level tests;
// a skipped test's reason is its last output line before the skip (not
// counting what deferred cleanups log).
func parse(t *testing.T, out []byte) []outcome {
	var res []outcome
	lastLine := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Action, Test, Output string
			Elapsed              float64
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Test == "" || strings.Contains(ev.Test, "/") {
			continue
		}
		switch ev.Action {
		case "output":
			// Lines logged by deferred cleanups after t.Skip come from
			// panic.go (Skip ends the test with runtime.Goexit).
			if l := strings.TrimSpace(ev.Output); l != "" && !strings.HasPrefix(l, "---") && !strings.HasPrefix(l, "===") && !strings.HasPrefix(l, "panic.go:") {
				lastLine[ev.Test] = l
			}
		case "pass", "fail", "skip":
			o := outcome{name: ev.Test, result: ev.Action, elapsed: ev.Elapsed}
			if ev.Action == "skip" {
				o.reason = lastLine[ev.Test]
			}
			res = append(res, o)
		}
	}
	slices.SortFunc(res, func(a, b outcome) int { return strings.Compare(a.name, b.name) })
	return res
}

func render(suite string, took time.Duration, results []outcome) string {
	var b strings.Builder
	count := map[string]int{}
	for _, r := range results {
		count[r.result]++
	}
	b.WriteString("# The peers' own test suites against Chronik\n\n")
	b.WriteString("Written by `make test-peers` (`go test ./tests/peers -update`), which starts a standalone broker process and runs\n")
	b.WriteString("the suite against it. A run fails when a test fails for a reason not listed here (a feature whose issue is still\n")
	b.WriteString("open, or a client-side limitation); such a failure is a bug to fix. Not part of `make test`.\n\n")
	fmt.Fprintf(&b, "## %s\n\n%d passed, %d failed, %d skipped in %s (KGO_SEEDS, KGO_TEST_RF=1).\n\n", suite, count["pass"], count["fail"], count["skip"], took)
	b.WriteString("| test | result | why |\n|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.name, r.result, strings.ReplaceAll(r.reason, "|", "\\|"))
	}
	return b.String()
}
