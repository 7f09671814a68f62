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
		a1, _ := a.Reserve(context.Background(), 40)
		a2, _ := a.Reserve(context.Background(), 20) // alone: its part is the whole budget
		c1, _ := c.Reserve(context.Background(), 10) // holds nothing: its first chunk always fits
		// Two active shares: each may hold 50. a holds 60 and must wait,
		// although the capacity has room.
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
	t.Run("when every holder waits the largest holder goes on", func(t *testing.T) {
		b := NewBudget(100)
		a, c := b.NewShare(), b.NewShare()
		a1, _ := a.Reserve(context.Background(), 60)
		c1, _ := c.Reserve(context.Background(), 30)
		// Both are mid-frame and need more than their part and the
		// capacity allow: nobody can release, so a (the larger holder)
		// is admitted past the limit and c waits for a's memory.
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
