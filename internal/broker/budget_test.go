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
