package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestScrubPacer: the first chunk goes at once, a chunk beyond the rate
// waits (here: is cut short by the context), and a pacer whose start is
// far enough back lets the bytes due by now through without waiting.
func TestScrubPacer(t *testing.T) {
	ctx := context.Background()
	p := newPacer(1000, time.Now())
	if err := p.wait(ctx, 1000); err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.wait(cctx, 1000); !errors.Is(err, context.Canceled) {
		t.Fatalf("second chunk within the same second: %v, want to wait until the context ends", err)
	}
	old := newPacer(1000, time.Now().Add(-time.Hour))
	for range 10 {
		if err := old.wait(ctx, 1000); err != nil {
			t.Fatalf("chunk already due: %v", err)
		}
	}
}
