package broker

import (
	"context"
	"sync"
	"time"
)

// Budget bounds the bytes of requests in flight (the produce profile's
// buffer memory). A connection reserves a request's size before reading its
// body and releases it when the request is finished, on every path. When
// the budget is used up, Reserve blocks, the connection stops reading, and
// TCP pushes back on the client: slower producers, never an error.
type Budget struct {
	capacity int64

	mu      sync.Mutex
	used    int64
	waiters []chan struct{}

	// Stats.
	blockedNanos int64
	peak         int64
}

// NewBudget returns a budget of capacity bytes.
func NewBudget(capacity int64) *Budget { return &Budget{capacity: capacity} }

// Reserve takes n bytes, waiting while they are not available. A request
// larger than the whole budget waits until nothing else is reserved and
// then takes the whole budget (and its own excess), so it can never
// deadlock. The returned release gives back exactly what was taken; it is
// safe to call more than once.
func (b *Budget) Reserve(ctx context.Context, n int64) (release func(), err error) {
	var start time.Time
	b.mu.Lock()
	for !b.fits(n) {
		if start.IsZero() {
			start = time.Now()
		}
		ch := make(chan struct{})
		b.waiters = append(b.waiters, ch)
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		b.mu.Lock()
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	if !start.IsZero() {
		b.blockedNanos += int64(time.Since(start))
	}
	b.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { b.release(n) }) }, nil
}

func (b *Budget) fits(n int64) bool {
	return b.used+n <= b.capacity || b.used == 0
}

func (b *Budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	ws := b.waiters
	b.waiters = nil
	b.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// BudgetStats is a snapshot of a budget.
type BudgetStats struct {
	Capacity, Used, Peak int64
	Blocked              time.Duration
}

// Stats returns the budget's counters.
func (b *Budget) Stats() BudgetStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BudgetStats{Capacity: b.capacity, Used: b.used, Peak: b.peak, Blocked: time.Duration(b.blockedNanos)}
}
