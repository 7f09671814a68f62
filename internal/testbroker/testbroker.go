// Package testbroker starts real Chronik brokers for tests, in-process, on
// loopback ports chosen by the kernel, with data in a temp directory. It is
// imported only by tests.
package testbroker

import (
	"context"
	"errors"
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
	c := config.Defaults()
	c.DataDir, c.NodeID, c.Bind, c.Advertise, c.Metrics = dir, 1, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	c.WALProfile, c.ProduceProfile = "low", "low-latency"
	c.RetentionMs, c.SegmentBytes = -1, 64<<20
	return c
}

// Broker is a running in-process broker.
type Broker struct {
	*server.Server
	Addr string
	stop func() error
}

// Stop shuts the broker down and waits for it; it may be called again.
func (b *Broker) Stop() error { return b.stop() }

// Run starts a broker and waits until it serves. Set CHRONIK_TEST_LOG=1 to
// see its log.
func Run(cfg *config.Config) (*Broker, error) {
	w := io.Discard
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
			return nil, errors.Join(errors.New("broker stopped during start-up"), err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			return nil, errors.New("broker not ready after 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopped, result := false, error(nil)
	return &Broker{Server: s, Addr: s.Addr().String(), stop: func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-errc
		}
		return result
	}}, nil
}

// Start runs a broker with cfg (Config(t.TempDir()) when nil) until the
// test ends.
func Start(t testing.TB, cfg *config.Config) *Broker {
	t.Helper()
	if cfg == nil {
		cfg = Config(t.TempDir())
	}
	b, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Errorf("broker: %v", err)
		}
	})
	return b
}
