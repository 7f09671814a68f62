package quota

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestResolvePrecedence(t *testing.T) {
	// The eight levels of KIP-55, highest first, each with its own limit.
	levels := []struct {
		e       Entity
		limit   float64
		measure Entity
	}{
		{Entity{UserPart: Named, User: "alice", ClientPart: Named, ClientID: "app"}, 1, Entity{UserPart: Named, User: "alice", ClientPart: Named, ClientID: "app"}},
		{Entity{UserPart: Named, User: "alice", ClientPart: Default}, 2, Entity{UserPart: Named, User: "alice", ClientPart: Named, ClientID: "app"}},
		{Entity{UserPart: Named, User: "alice"}, 3, Entity{UserPart: Named, User: "alice"}},
		{Entity{UserPart: Default, ClientPart: Named, ClientID: "app"}, 4, Entity{UserPart: Named, User: "alice", ClientPart: Named, ClientID: "app"}},
		{Entity{UserPart: Default, ClientPart: Default}, 5, Entity{UserPart: Named, User: "alice", ClientPart: Named, ClientID: "app"}},
		{Entity{UserPart: Default}, 6, Entity{UserPart: Named, User: "alice"}},
		{Entity{ClientPart: Named, ClientID: "app"}, 7, Entity{ClientPart: Named, ClientID: "app"}},
		{Entity{ClientPart: Default}, 8, Entity{ClientPart: Named, ClientID: "app"}},
	}
	// Level i wins when levels i.. are configured (and none above).
	for i, want := range levels {
		t.Run(want.e.String(), func(t *testing.T) {
			entries := map[Entity]Values{}
			for _, l := range levels[i:] {
				entries[l.e] = Values{ProducerByteRate: l.limit}
			}
			// Noise that must never match alice/app.
			entries[Entity{UserPart: Named, User: "bob"}] = Values{ProducerByteRate: 100}
			entries[Entity{ClientPart: Named, ClientID: "other"}] = Values{ProducerByteRate: 100}
			r := NewTable(entries).Resolve(Produce, "alice", "app")
			if !r.OK || r.Limit != want.limit || r.Measure != want.measure {
				t.Fatalf("got %+v, want limit %v measured as %v", r, want.limit, want.measure)
			}
		})
	}
	t.Run("per key", func(t *testing.T) {
		// A higher entity without the key does not hide a lower one that
		// has it: each kind resolves on its own.
		tab := NewTable(map[Entity]Values{
			{UserPart: Named, User: "alice"}: {ConsumerByteRate: 10},
			{ClientPart: Default}:            {ProducerByteRate: 20},
		})
		if r := tab.Resolve(Produce, "alice", "x"); !r.OK || r.Limit != 20 {
			t.Fatalf("produce: %+v", r)
		}
		if r := tab.Resolve(Fetch, "alice", "x"); !r.OK || r.Limit != 10 {
			t.Fatalf("fetch: %+v", r)
		}
		if r := tab.Resolve(Request, "alice", "x"); r.OK {
			t.Fatalf("request: %+v", r)
		}
		if r := tab.Resolve(Fetch, "bob", "x"); r.OK {
			t.Fatalf("fetch for bob: %+v", r)
		}
	})
	t.Run("empty table", func(t *testing.T) {
		var nilTable *Table
		if nilTable.Has(Produce) || nilTable.Resolve(Produce, "a", "b").OK {
			t.Fatal("nil table resolves")
		}
	})
}

func TestRateWindow(t *testing.T) {
	w := Window{Samples: 11, Size: time.Second}
	at := func(s float64) int64 { return t0.Add(time.Duration(s * float64(time.Second))).UnixNano() }
	cases := []struct {
		name       string
		records    [][2]float64 // seconds, value
		measureAt  float64
		wantRate   float64
		wantWindow time.Duration
	}{
		{"one early record is spread over samples-1 windows", [][2]float64{{0, 100}}, 0.5, 100 / 10.5, 10500 * time.Millisecond},
		{"steady 10 per second over 20 s: the oldest sample expired", steady(0, 20, 10), 20, 10, 10 * time.Second},
		{"a sample expires after samples x size", [][2]float64{{0, 1000}, {5, 10}}, 11.5, 10 / 10.5, 10500 * time.Millisecond},
		{"everything expired", [][2]float64{{0, 1000}}, 30, 0, 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rate{w: w}
			for _, rec := range c.records {
				r.record(at(rec[0]), rec[1])
			}
			got, win := r.measure(at(c.measureAt))
			if diff := got - c.wantRate; diff > 1e-9 || diff < -1e-9 || win != c.wantWindow {
				t.Fatalf("rate %v over %v, want %v over %v", got, win, c.wantRate, c.wantWindow)
			}
		})
	}
}

// steady records v at every whole second in [from, to).
func steady(from, to int, v float64) [][2]float64 {
	var out [][2]float64
	for s := from; s < to; s++ {
		out = append(out, [2]float64{float64(s), v})
	}
	return out
}

func TestThrottleTime(t *testing.T) {
	for _, c := range []struct {
		name         string
		rate, limit  float64
		window, want time.Duration
	}{
		{"under", 9, 10, 10 * time.Second, 0},
		{"at", 10, 10, 10 * time.Second, 0},
		{"double", 20, 10, 10 * time.Second, 10 * time.Second},
		{"ten percent over", 11, 10, 11 * time.Second, 1100 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := throttleTime(c.rate, c.limit, c.window); got != c.want {
				t.Fatalf("got %v want %v", got, c.want)
			}
		})
	}
}

// TestManagerHoldsTheRate plays a client that sends a request of 4 KiB
// whenever it is not muted against a quota of 10 KiB/s, on a simulated
// clock for 60 s: what gets through stays within the quota plus the
// initial burst Kafka's window allows, and requests are throttled.
func TestManagerHoldsTheRate(t *testing.T) {
	m := NewManager(Window{Samples: 11, Size: time.Second})
	m.SetTable(NewTable(map[Entity]Values{{ClientPart: Named, ClientID: "slow"}: {ProducerByteRate: 10 << 10}}))
	var c, free Client
	now := t0
	sent, throttled := 0.0, 0
	for now.Before(t0.Add(60 * time.Second)) {
		sent += 4 << 10
		d := m.Record(&c, Produce, Anonymous, "slow", now, 4<<10)
		if d > 0 {
			throttled++
		}
		if fd := m.Record(&free, Produce, Anonymous, "fast", now, 1<<20); fd != 0 {
			t.Fatalf("a client without a quota was throttled %v", fd)
		}
		now = now.Add(max(d, time.Millisecond))
	}
	got := sent / 60
	// Kafka's window lets a new client burst (samples-1) windows of quota
	// before throttling: 60 s may carry up to 70 s worth.
	if limit := float64(10<<10) * 70 / 60 * 1.02; got > limit || got < 10<<10*0.9 {
		t.Fatalf("rate %.0f B/s against a quota of %d B/s", got, 10<<10)
	}
	if throttled == 0 || m.Stats(Produce).Throttled != int64(throttled) {
		t.Fatalf("throttled %d, stats %+v", throttled, m.Stats(Produce))
	}
	t.Logf("%.0f B/s for a quota of %d B/s, %d throttled responses", got, 10<<10, throttled)
}

func TestRequestThrottleIsCapped(t *testing.T) {
	m := NewManager(Window{Samples: 11, Size: time.Second})
	m.SetTable(NewTable(map[Entity]Values{{UserPart: Default}: {RequestPercentage: 1}}))
	var c Client
	// 50 s of handler time in one go: far over 1%, yet the throttle is at
	// most one sample long.
	if d := m.Record(&c, Request, Anonymous, "x", t0, 50*100); d != time.Second {
		t.Fatalf("throttle %v, want the cap of 1s", d)
	}
}

func TestFastPathDoesNotAllocate(t *testing.T) {
	m := NewManager(Window{Samples: 11, Size: time.Second})
	var c Client
	if n := testing.AllocsPerRun(100, func() { m.Record(&c, Produce, Anonymous, "app", t0, 100) }); n != 0 {
		t.Fatalf("no quotas: %v allocations per request", n)
	}
	m.SetTable(NewTable(map[Entity]Values{{ClientPart: Named, ClientID: "other"}: {ProducerByteRate: 1}}))
	m.Record(&c, Produce, Anonymous, "app", t0, 100) // binds once
	if n := testing.AllocsPerRun(100, func() { m.Record(&c, Produce, Anonymous, "app", t0, 100) }); n != 0 {
		t.Fatalf("quota for someone else: %v allocations per request", n)
	}
	m.SetTable(NewTable(map[Entity]Values{{ClientPart: Named, ClientID: "app"}: {ProducerByteRate: 1 << 30}}))
	m.Record(&c, Produce, Anonymous, "app", t0, 100)
	if n := testing.AllocsPerRun(100, func() { m.Record(&c, Produce, Anonymous, "app", t0.Add(time.Millisecond), 100) }); n != 0 {
		t.Fatalf("bound quota: %v allocations per request", n)
	}
}

func TestValidateValue(t *testing.T) {
	for _, c := range []struct {
		key  string
		v    float64
		want error
	}{
		{ProducerByteRate, 1024, nil},
		{ConsumerByteRate, 1.5, ErrBadValue},
		{ProducerByteRate, 0, ErrBadValue},
		{RequestPercentage, 12.5, nil},
		{ControllerMutationRate, -1, ErrBadValue},
		{"bytes_per_fortnight", 1, ErrUnknownKey},
	} {
		t.Run(c.key, func(t *testing.T) {
			if err := ValidateValue(c.key, c.v); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("%s=%v: %v, want %v", c.key, c.v, err, c.want)
			}
		})
	}
}

// BenchmarkRecord is the per-request cost: with no quota configured, with
// quotas for other clients only, and for a client bound to its quota.
func BenchmarkRecord(b *testing.B) {
	other := NewTable(map[Entity]Values{{ClientPart: Named, ClientID: "other"}: {ProducerByteRate: 1 << 20}})
	mine := NewTable(map[Entity]Values{{ClientPart: Named, ClientID: "app"}: {ProducerByteRate: 1 << 40}})
	for _, c := range []struct {
		name  string
		table *Table
	}{{"no quotas", nil}, {"quotas for others", other}, {"own quota", mine}} {
		b.Run(c.name, func(b *testing.B) {
			m := NewManager(Window{Samples: 11, Size: time.Second})
			if c.table != nil {
				m.SetTable(c.table)
			}
			var cl Client
			now := t0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Microsecond)
				m.Record(&cl, Produce, Anonymous, "app", now, 1024)
			}
		})
	}
}
