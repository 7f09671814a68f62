package broker

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestBudgetBlocksThenAdmitsInOrder(t *testing.T) {
	b := NewBudget(100)
	r1, _ := b.Reserve(context.Background(), 60)
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	// 50 and 60 cannot be held together: each waiter is admitted only after
	// the one before it released, so the order is observable.
	for i, n := range []int64{50, 60, 45} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := b.Reserve(context.Background(), n)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			rel()
		}()
		time.Sleep(20 * time.Millisecond) // queue them in this order
	}
	mu.Lock()
	if len(order) != 0 {
		t.Fatalf("admitted %v while the budget was full", order)
	}
	mu.Unlock()
	r1()
	r1() // releasing twice gives back once
	wg.Wait()
	if len(order) != 3 || order[0] != 0 || order[1] != 1 || order[2] != 2 {
		t.Fatalf("waiters were admitted in order %v, want arrival order", order)
	}
	if s := b.Stats(); s.Used != 0 || s.Peak > 100 || s.Blocked == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBudgetOversizedRequestAndCancel(t *testing.T) {
	b := NewBudget(100)
	big, err := b.Reserve(context.Background(), 500) // larger than the budget, admitted when alone
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := b.Reserve(ctx, 10); err == nil {
		t.Fatal("a reservation beyond the budget did not wait")
	}
	big()
	rel, err := b.Reserve(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	rel()
	if s := b.Stats(); s.Used != 0 {
		t.Fatalf("used %d after every release", s.Used)
	}
}

// reserveAsync reserves in a goroutine and reports the release once granted.
func reserveAsync(t *testing.T, s *Share, n int64) <-chan func() {
	ch := make(chan func(), 1)
	ctx := t.Context() // a waiter left at the end gives up with the test
	go func() {
		rel, err := s.Reserve(ctx, n)
		if err == nil {
			ch <- rel
		}
	}()
	return ch
}

func granted(ch <-chan func(), within time.Duration) (func(), bool) {
	select {
	case rel := <-ch:
		return rel, true
	case <-time.After(within):
		return nil, false
	}
}

func TestBudgetShares(t *testing.T) {
	t.Run("a connection over its fair part waits and does not hold up others", func(t *testing.T) {
		b := NewBudget(100)
		a, c := b.NewShare(), b.NewShare()
		// Whole frames read and handed on (FrameDone): memory held by
		// requests being served.
		a1, _ := a.Reserve(context.Background(), 40)
		a.FrameDone()
		a2, _ := a.Reserve(context.Background(), 20) // alone: its part is the whole budget
		a.FrameDone()
		c1, _ := c.Reserve(context.Background(), 10) // holds nothing: it may always start
		c.FrameDone()
		// Two active shares: each may hold 50. a holds 60 and its next
		// frame must wait, although the capacity has room.
		aw := reserveAsync(t, a, 10)
		if _, ok := granted(aw, 50*time.Millisecond); ok {
			t.Fatal("a share over its fair part was admitted")
		}
		// c is within its part: admitted at once, past the waiting a.
		cw := reserveAsync(t, c, 10)
		c2, ok := granted(cw, time.Second)
		if !ok {
			t.Fatal("a share within its part queued behind one over its part")
		}

		// a gives back enough to be within its part again: admitted.
		a1()
		a3, ok := granted(aw, time.Second)
		if !ok {
			t.Fatal("a share back within its part was not admitted")
		}
		for _, r := range []func(){a2, a3, c1, c2} {
			r()
		}
		if s := b.Stats(); s.Used != 0 || a.Held() != 0 || c.Held() != 0 {
			t.Fatalf("after every release: used %d, held %d and %d", s.Used, a.Held(), c.Held())
		}
	})
	t.Run("the rest of a started frame is held back by the capacity only", func(t *testing.T) {
		b := NewBudget(100)
		a, c := b.NewShare(), b.NewShare()
		a1, _ := a.Reserve(context.Background(), 10)
		a.FrameDone()
		c1, _ := c.Reserve(context.Background(), 10) // a new frame's first chunk
		c2, ok := granted(reserveAsync(t, c, 50), time.Second)
		if !ok {
			t.Fatal("the rest of a started frame was held back by the fair part")
		}
		c.FrameDone()
		// c now holds 60, over its part of 50: its next frame waits.
		cw := reserveAsync(t, c, 10)
		if _, ok := granted(cw, 50*time.Millisecond); ok {
			t.Fatal("a new frame started while its share held more than its part")
		}
		c2()
		c3, ok := granted(cw, time.Second)
		if !ok {
			t.Fatal("the share back within its part could not start a frame")
		}
		for _, r := range []func(){a1, c1, c3} {
			r()
		}
	})
	t.Run("when every holder waits the largest holder goes on", func(t *testing.T) {
		b := NewBudget(100)
		a, c := b.NewShare(), b.NewShare()
		a1, _ := a.Reserve(context.Background(), 60)
		c1, _ := c.Reserve(context.Background(), 30)
		// Both are mid-frame and need more than the capacity allows: once
		// both wait nothing can come back, so a (the larger holder) is
		// admitted past the capacity and c waits for a's memory.
		cw := reserveAsync(t, c, 30)
		if _, ok := granted(cw, 50*time.Millisecond); ok {
			t.Fatal("admitted past the capacity while another holder could release")
		}
		aw := reserveAsync(t, a, 30)
		a2, ok := granted(aw, time.Second)
		if !ok {
			t.Fatal("deadlock: every holder waits and none was admitted")
		}
		if _, ok := granted(cw, 50*time.Millisecond); ok {
			t.Fatal("the smaller holder was admitted too")
		}
		a1()
		a2()
		c2, ok := granted(cw, time.Second)
		if !ok {
			t.Fatal("the waiting holder was not admitted after the other released")
		}
		c1()
		c2()
		if s := b.Stats(); s.Used != 0 || s.Peak != 120 {
			t.Fatalf("stats %+v: want used 0, peak 120 (one frame past the capacity)", s)
		}
	})
	t.Run("the fair part never drops below capacity/8", func(t *testing.T) {
		b := NewBudget(800)
		shares := make([]*Share, 20)
		for i := range shares {
			shares[i] = b.NewShare()
			if _, err := shares[i].Reserve(context.Background(), 10); err != nil {
				t.Fatal(err)
			}
			shares[i].FrameDone()
		}
		// 20 active shares: 800/20 = 40 < 800/8 = 100, so a share may
		// hold 100.
		rel, ok := granted(reserveAsync(t, shares[0], 90), time.Second)
		if !ok {
			t.Fatal("a share within capacity/8 was refused")
		}
		rel()
		if _, ok := granted(reserveAsync(t, shares[1], 91), 50*time.Millisecond); ok {
			t.Fatal("a share past capacity/8 with 20 active shares was admitted")
		}
	})
}

// TestBudgetNoDeadlockUnderChurn drives a small budget the way connections
// do: frames of random sizes (up to 1.5 times the capacity) reserved chunk
// by chunk, handed on (FrameDone) and released later by "request
// processing", some given up half-way. Every frame must get through: a
// lost accounting of what can still be released shows up as a hang.
func TestBudgetNoDeadlockUnderChurn(t *testing.T) {
	const capacity, chunk, conns, frames = 1000, 64, 16, 150
	b := NewBudget(capacity)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var processing sync.WaitGroup
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := b.NewShare()
			seed := uint64(c)*7919 + 1
			next := func(n uint64) uint64 { seed = seed*6364136223846793005 + 1442695040888963407; return (seed >> 33) % n }
			for f := range frames {
				size := int64(1 + next(capacity*3/2))
				var rels []func()
				abandon := f%17 == 5
				for got := int64(0); got < size; got += chunk {
					rel, err := s.Reserve(ctx, min(chunk, size-got))
					if err != nil {
						t.Errorf("conn %d frame %d: %v (deadlock)", c, f, err)
						return
					}
					rels = append(rels, rel)
					if abandon && got > size/2 {
						break
					}
				}
				if abandon {
					for _, r := range rels {
						r()
					}
					s.FrameDone()
					continue
				}
				s.FrameDone()
				processing.Add(1)
				delay := time.Duration(next(500)) * time.Microsecond
				go func() {
					defer processing.Done()
					time.Sleep(delay)
					for _, r := range rels {
						r()
					}
				}()
			}
		}()
	}
	wg.Wait()
	processing.Wait()
	if st := b.Stats(); st.Used != 0 {
		t.Fatalf("used %d after every release", st.Used)
	}
}
