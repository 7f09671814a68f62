package bench

import (
	"context"
	"sync/atomic"
	"time"
)

// Pacer hands out send slots at a fixed global rate: slot i is due at
// start + i/rate, whichever worker takes it. Latency measured from a
// slot's due time (not from when a worker got round to it) is free of
// coordinated omission: a stalled system makes every later slot late, and
// that lateness is counted.
type Pacer struct {
	start    time.Time
	interval time.Duration
	limit    int64 // slots in total; 0 = no limit
	next     atomic.Int64
}

// NewPacer paces rate slots per second from start; limit caps the number
// of slots (0: unlimited). rate must be positive.
func NewPacer(start time.Time, rate float64, limit int64) *Pacer {
	return &Pacer{start: start, interval: time.Duration(float64(time.Second) / rate), limit: limit}
}

// Due is the due time of slot i.
func (p *Pacer) Due(i int64) time.Time {
	return p.start.Add(time.Duration(i) * p.interval)
}

// Take claims the next slot and waits until it is due. It returns the
// slot's due time, or ok=false when the limit is reached or ctx ends.
func (p *Pacer) Take(ctx context.Context) (due time.Time, ok bool) {
	i := p.next.Add(1) - 1
	if p.limit > 0 && i >= p.limit {
		return time.Time{}, false
	}
	due = p.Due(i)
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
	return due, ctx.Err() == nil
}

// DueBy claims every slot due at or before now (at most max), for a single
// dispatcher that sends in bursts: it returns the first slot's index and
// how many were claimed.
func (p *Pacer) DueBy(now time.Time, most int64) (first, n int64) {
	var due int64
	if !now.Before(p.start) {
		due = int64(now.Sub(p.start)/p.interval) + 1
	}
	if p.limit > 0 {
		due = min(due, p.limit)
	}
	first = p.next.Load()
	n = min(max(due-first, 0), most)
	p.next.Store(first + n)
	return first, n
}

// Exhausted says whether every slot of a limited pacer has been taken.
func (p *Pacer) Exhausted() bool {
	return p.limit > 0 && p.next.Load() >= p.limit
}
