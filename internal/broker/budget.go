package broker

import (
	"context"
	"sync"
	"time"
)

// Budget bounds the bytes of requests in flight (the produce profile's
// buffer memory). A connection reserves a request's cost before reading its
// body and releases it when the request is finished, on every path. When
// the budget is used up, Reserve blocks, the connection stops reading, and
// TCP pushes back on the client: slower producers, never an error.
// Waiters are served in arrival order, so a large request is not starved by
// small ones and a release wakes only the waiters it can admit.
type Budget struct {
	capacity int64

	mu      sync.Mutex
	used    int64
	waiters []*waiter // FIFO

	// Stats.
	blockedNanos int64
	waits        int64
	peak         int64
}

type waiter struct {
	n       int64
	granted chan struct{}
}

// NewBudget returns a budget of capacity bytes.
func NewBudget(capacity int64) *Budget { return &Budget{capacity: capacity} }

// Reserve takes n bytes, waiting (behind earlier waiters) while they are not
// available. A request larger than the whole budget is admitted when
// nothing else is reserved, so it can never deadlock. The returned release
// gives back exactly what was taken; it is safe to call more than once.
func (b *Budget) Reserve(ctx context.Context, n int64) (release func(), err error) {
	b.mu.Lock()
	if len(b.waiters) == 0 && b.fits(n) {
		b.take(n)
		b.mu.Unlock()
		return b.releaser(n), nil
	}
	start := time.Now()
	w := &waiter{n: n, granted: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.granted:
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.granted:
			// Granted while we gave up: give it back.
			b.mu.Unlock()
			b.release(n)
			return nil, ctx.Err()
		default:
		}
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
		b.grantLocked()
		b.mu.Unlock()
		return nil, ctx.Err()
	}
	b.mu.Lock()
	b.blockedNanos += int64(time.Since(start))
	b.waits++
	b.mu.Unlock()
	return b.releaser(n), nil
}

func (b *Budget) fits(n int64) bool { return b.used+n <= b.capacity || b.used == 0 }

func (b *Budget) take(n int64) {
	b.used += n
	b.peak = max(b.peak, b.used)
}

func (b *Budget) releaser(n int64) func() {
	var once sync.Once
	return func() { once.Do(func() { b.release(n) }) }
}

func (b *Budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked admits waiters from the head while they fit. mu held.
func (b *Budget) grantLocked() {
	for len(b.waiters) > 0 && b.fits(b.waiters[0].n) {
		w := b.waiters[0]
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		b.take(w.n)
		close(w.granted)
	}
}

// BudgetStats is a snapshot of a budget.
type BudgetStats struct {
	Capacity, Used, Peak int64
	Blocked              time.Duration
	Waits                int64 // reservations that had to wait
}

// Stats returns the budget's counters.
func (b *Budget) Stats() BudgetStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BudgetStats{Capacity: b.capacity, Used: b.used, Peak: b.peak, Blocked: time.Duration(b.blockedNanos), Waits: b.waits}
}
