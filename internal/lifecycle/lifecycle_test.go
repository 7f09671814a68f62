package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestErrIsTheFirstCriticalFailure(t *testing.T) {
	boom := errors.New("accept: too bad")
	t.Run("critical", func(t *testing.T) {
		ts := New(context.Background(), quiet())
		ts.Go("waiter", true, func(ctx context.Context) error {
			<-ctx.Done()
			// A consequence of the cancel, not a cause: must not win.
			return errors.New("consequence")
		})
		ts.Go("listener", true, func(context.Context) error { return boom })
		<-ts.Context().Done()
		ts.Wait()
		err := ts.Err()
		if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "listener: ") {
			t.Fatalf("Err() = %v, want the listener's error named after it", err)
		}
		if serr := ts.Stop(); !errors.Is(serr, boom) {
			t.Fatalf("Stop() = %v", serr)
		}
	})
	t.Run("non-critical", func(t *testing.T) {
		ts := New(context.Background(), quiet())
		ts.Go("pprof", false, func(context.Context) error { return boom })
		ts.Go("waiter", true, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		if serr := ts.Stop(); !errors.Is(serr, boom) {
			t.Fatalf("Stop() = %v", serr)
		}
		if err := ts.Err(); err != nil {
			t.Fatalf("a non-critical failure is not fatal: %v", err)
		}
	})
	t.Run("orderly stop", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		ts := New(ctx, quiet())
		ts.Go("waiter", true, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		cancel()
		ts.Wait()
		if err := ts.Err(); err != nil {
			t.Fatalf("cancelled by its parent: %v", err)
		}
	})
}
