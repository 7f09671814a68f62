// Package testbroker starts real Chronik brokers for tests: in-process
// (Start) or as a child process of the real binary (Process), on loopback
// ports chosen by the kernel, with data in the test's temp directory. It is
// imported only by tests.
package testbroker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/chronik-go/chronik/internal/config"
	"github.com/chronik-go/chronik/internal/server"
)

// Config returns the settings of a test broker with data in dir.
func Config(dir string) *config.Config {
	return &config.Config{DataDir: dir, NodeID: 1, Bind: "127.0.0.1:0", Advertise: "127.0.0.1:0", Metrics: "127.0.0.1:0",
		WALProfile: "low", ProduceProfile: "low-latency", LogLevel: "info", LogFormat: "text",
		NumPartitions: 1, AutoCreateTopics: true, RetentionMs: -1, RetentionBytes: -1,
		SegmentBytes: 64 << 20, SegmentMs: 7 * 24 * 3600 * 1000, SocketRequestMaxBytes: 100 << 20}
}

// Broker is a running in-process broker.
type Broker struct {
	*server.Server
	Addr string
	stop func()
}

// Stop shuts the broker down and waits for it.
func (b *Broker) Stop() { b.stop() }

// Start runs a broker with cfg (Config(t.TempDir()) when nil) until the
// test ends. Set CHRONIK_TEST_LOG=1 to see its log.
func Start(t testing.TB, cfg *config.Config) *Broker {
	t.Helper()
	if cfg == nil {
		cfg = Config(t.TempDir())
	}
	var w io.Writer = io.Discard
	if os.Getenv("CHRONIK_TEST_LOG") != "" {
		w = os.Stderr
	}
	s := server.New(cfg, slog.New(slog.NewTextHandler(w, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !s.Ready() {
		select {
		case err := <-errc:
			cancel()
			t.Fatalf("broker stopped during start-up: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("broker not ready after 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopped := false
	b := &Broker{Server: s, Addr: s.Addr().String()}
	b.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("broker: %v", err)
		}
	}
	t.Cleanup(b.stop)
	return b
}
