package broker

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Budget bounds the bytes of requests in flight (the produce profile's
// buffer memory). A connection reserves memory for a request's bytes as
// they arrive (chunk by chunk, never for bytes a frame only announces) and
// releases it when the request is finished, on every path. When the budget
// is used up, Reserve blocks, the connection stops reading, and TCP pushes
// back on the client: slower producers, never an error.
//
// Fairness: each connection reserves through its own Share, and a share
// may start reading a new frame only while it holds at most a fair part of
// the budget (capacity divided by the shares that hold or want memory,
// never less than capacity/minShareDiv), so one connection cannot take the
// budget by pipelining; the rest of a frame already started continues
// within the capacity. Waiters are admitted in the order their frames
// began (the rest of a frame keeps its frame's place), so memory goes to
// finishing frames before new ones start, and a large request is not
// starved by small ones; a waiter over its fair part steps aside and lets
// the others pass. Progress: a share that holds nothing may
// always start; and when all memory in use belongs to partly read frames
// of waiting shares (nothing can come back), the waiter that holds the
// most is admitted even past the capacity, so that its frame completes and
// its memory returns. The overshoot is bounded by one frame.
type Budget struct {
	capacity int64

	mu      sync.Mutex
	used    int64
	waiters []*waiter // FIFO
	// active counts shares that hold memory or wait for it; busy those of
	// them that hold memory and are not waiting (they will release).
	active, busy int
	mark         uint64 // generation for releasable
	frames       uint64 // frames started (their order numbers)

	// Stats.
	blockedNanos int64
	waits        int64
	peak         int64
}

// minShareDiv bounds how small a connection's fair part may get: at
// least capacity/minShareDiv, so that many idle-but-holding connections do
// not shrink everybody's part to nothing.
const minShareDiv = 8

type waiter struct {
	n       int64
	share   *Share
	frame   uint64 // waiters are served in frame order
	granted chan struct{}
}

// Share is one connection's part of a budget. Its methods are safe for
// concurrent use (a connection's requests release from other goroutines).
type Share struct {
	b       *Budget
	held    int64
	waiting int
	mark    uint64
	// partial is what held belongs to the frame being read (not yet
	// handed to a handler, so it cannot be released by work finishing).
	partial int64
	// frame is the order number of the frame being read (0: none).
	frame uint64
}

// NewBudget returns a budget of capacity bytes.
func NewBudget(capacity int64) *Budget { return &Budget{capacity: capacity} }

// NewShare returns a connection's part of the budget.
func (b *Budget) NewShare() *Share { return &Share{b: b} }

// Reserve takes n bytes for an anonymous holder (no fairness between
// holders: arrival order and capacity only).
func (b *Budget) Reserve(ctx context.Context, n int64) (release func(), err error) {
	return b.reserve(ctx, nil, n)
}

// Reserve takes n bytes for this share, waiting while they are not
// available to it. The returned release gives back exactly what was taken;
// it is safe to call more than once.
func (s *Share) Reserve(ctx context.Context, n int64) (release func(), err error) {
	return s.b.reserve(ctx, s, n)
}

// FrameDone says the frame being read is complete and handed on: what it
// holds will come back when its request finishes.
func (s *Share) FrameDone() {
	s.b.mu.Lock()
	s.partial, s.frame = 0, 0
	s.b.mu.Unlock()
}

// Held is what the share holds now.
func (s *Share) Held() int64 {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.held
}

func (b *Budget) reserve(ctx context.Context, s *Share, n int64) (release func(), err error) {
	b.mu.Lock()
	w := &waiter{n: n, share: s}
	// The rest of a frame keeps the frame's place in line: frames are
	// served oldest first, so memory goes to finishing frames rather than
	// to starting new ones that would each hold a part and wait.
	if s != nil && s.frame != 0 {
		w.frame = s.frame
	} else {
		b.frames++
		w.frame = b.frames
		if s != nil {
			s.frame = w.frame
		}
	}
	if len(b.waiters) == 0 && b.fits(w) {
		b.take(w)
		b.mu.Unlock()
		return b.releaser(s, n, w.frame), nil
	}
	start := time.Now()
	w.granted = make(chan struct{})
	i := len(b.waiters)
	for i > 0 && b.waiters[i-1].frame > w.frame {
		i--
	}
	b.waiters = slices.Insert(b.waiters, i, w)
	b.setWaiting(s, +1)
	b.grantLocked()
	b.mu.Unlock()
	select {
	case <-w.granted:
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.granted:
			// Granted while we gave up: give it back.
			b.mu.Unlock()
			b.release(s, n, w.frame)
			return nil, ctx.Err()
		default:
		}
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
		b.setWaiting(s, -1)
		b.grantLocked()
		b.mu.Unlock()
		return nil, ctx.Err()
	}
	b.mu.Lock()
	b.blockedNanos += int64(time.Since(start))
	b.waits++
	b.mu.Unlock()
	return b.releaser(s, n, w.frame), nil
}

// share is the fair part of the budget per active holder. mu held.
func (b *Budget) share() int64 {
	return max(b.capacity/int64(max(b.active, 1)), b.capacity/minShareDiv)
}

// fits reports whether w may be admitted now. mu held.
func (b *Budget) fits(w *waiter) bool {
	if b.used == 0 {
		return true // alone: anything goes, so nothing can deadlock
	}
	return b.used+w.n <= b.capacity && b.withinShare(w)
}

// withinShare reports whether w may start: the rest of a frame already
// being read always may (its bytes are arriving; stopping half-way would
// only hold memory longer); a new frame may while the share holds at most
// its fair part, or nothing at all. mu held.
func (b *Budget) withinShare(w *waiter) bool {
	s := w.share
	return s == nil || s.partial > 0 || s.held == 0 || s.held+w.n <= b.share()
}

// state keeps active and busy in step with a share's held and waiting.
func (b *Budget) state(s *Share, f func()) {
	if s == nil {
		f()
		return
	}
	wasActive, wasBusy := s.held > 0 || s.waiting > 0, s.held > 0 && s.waiting == 0
	f()
	isActive, isBusy := s.held > 0 || s.waiting > 0, s.held > 0 && s.waiting == 0
	b.active += bool2int(isActive) - bool2int(wasActive)
	b.busy += bool2int(isBusy) - bool2int(wasBusy)
}

func bool2int(v bool) int {
	if v {
		return 1
	}
	return 0
}

func (b *Budget) setWaiting(s *Share, d int) {
	b.state(s, func() {
		if s != nil {
			s.waiting += d
		}
	})
}

func (b *Budget) take(w *waiter) {
	b.state(w.share, func() {
		b.used += w.n
		if w.share != nil {
			w.share.held += w.n
			w.share.partial += w.n
		}
	})
	b.peak = max(b.peak, b.used)
}

func (b *Budget) releaser(s *Share, n int64, frame uint64) func() {
	var once sync.Once
	return func() { once.Do(func() { b.release(s, n, frame) }) }
}

// release gives back n bytes taken for frame.
func (b *Budget) release(s *Share, n int64, frame uint64) {
	b.mu.Lock()
	b.state(s, func() {
		b.used -= n
		if s != nil {
			s.held -= n
			if s.frame == frame {
				// A frame given up half-way (its connection failed).
				s.partial -= min(s.partial, n)
			}
		}
	})
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked admits waiters in arrival order while they fit; a waiter
// over its fair part does not hold up those behind it. When nothing could
// be admitted and no holder is free to release, the waiter holding the
// most is admitted regardless (see Budget). mu held.
func (b *Budget) grantLocked() {
	for i := 0; i < len(b.waiters); {
		w := b.waiters[i]
		if !b.withinShare(w) {
			i++
			continue
		}
		if !b.fits(w) {
			break
		}
		b.admit(i)
	}
	if len(b.waiters) == 0 || b.busy > 0 || b.releasable() {
		return
	}
	best := 0
	for i, w := range b.waiters {
		if w.share != nil && b.waiters[best].share != nil && w.share.held > b.waiters[best].share.held {
			best = i
		}
	}
	b.admit(best)
}

// releasable reports whether some memory will come back without a waiter
// being admitted: memory held by requests being served, by shares that
// are not waiting, or by anonymous holders. Only memory of partly read
// frames of waiting shares cannot. mu held.
func (b *Budget) releasable() bool {
	b.mark++
	var stuck int64
	for _, w := range b.waiters {
		if w.share != nil && w.share.mark != b.mark {
			w.share.mark = b.mark
			stuck += w.share.partial
		}
	}
	return b.used > stuck
}

// admit grants waiter i. mu held.
func (b *Budget) admit(i int) {
	w := b.waiters[i]
	b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
	b.setWaiting(w.share, -1)
	b.take(w)
	close(w.granted)
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
