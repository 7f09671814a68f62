// Package lifecycle starts goroutines that have an owner: every goroutine a
// component starts goes through a Tasks value, which cancels them together
// and waits for all of them on shutdown. It must never start a goroutine
// that nobody waits for.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Tasks is a set of goroutines sharing one context.
type Tasks struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	fatal  error // the first critical task's error: why the set stopped
}

// New returns a Tasks whose goroutines stop when parent ends or Stop is called.
func New(parent context.Context, log *slog.Logger) *Tasks {
	ctx, cancel := context.WithCancel(parent)
	return &Tasks{ctx: ctx, cancel: cancel, log: log}
}

// Context is the context the tasks run under.
func (t *Tasks) Context() context.Context { return t.ctx }

// Go runs fn in a goroutine. An error other than context cancellation is
// logged, kept for Stop, and, if critical, cancels every other task and
// becomes the set's Err (the first one only: the failures it causes in
// the others are consequences, not causes).
func (t *Tasks) Go(name string, critical bool, fn func(ctx context.Context) error) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		err := fn(t.ctx)
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		t.log.Error("task failed", "task", name, "critical", critical, "err", err)
		t.mu.Lock()
		t.errs = append(t.errs, err)
		if critical && t.fatal == nil {
			t.fatal = fmt.Errorf("%s: %w", name, err)
		}
		t.mu.Unlock()
		if critical {
			t.cancel()
		}
	}()
}

// Err returns the error of the first critical task that failed, named
// after the task, or nil: a set whose context ended for that reason must
// report it, not look like an orderly stop.
func (t *Tasks) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fatal
}

// Stop cancels every task, waits for them and returns their errors.
func (t *Tasks) Stop() error {
	t.cancel()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.errs...)
}

// Wait waits until every task returned (after the context ended).
func (t *Tasks) Wait() { t.wg.Wait() }
