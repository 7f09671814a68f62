package quota

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sensors unused for this long are dropped (Kafka expires inactive quota
// sensors after an hour too); the sweep runs at most once a minute, when a
// connection binds, so no goroutine is needed.
const (
	inactiveAfter = time.Hour
	sweepEvery    = time.Minute
)

// Manager measures usage per quota entity and turns a violation into a
// throttle time. Its zero value is not usable; see NewManager.
type Manager struct {
	w     Window
	table atomic.Pointer[Table]

	mu        sync.Mutex
	sensors   map[sensorKey]*sensor
	gen       atomic.Uint64 // bumped when sensors are dropped, so Clients rebind
	lastSweep int64

	throttled [numKinds]atomic.Int64 // throttled responses
	throttleN [numKinds]atomic.Int64 // throttle time handed out, nanos
}

type sensorKey struct {
	kind Kind
	e    Entity
}

// sensor is the usage of one measured entity for one kind.
type sensor struct {
	mu       sync.Mutex
	r        rate
	lastUsed int64
}

// NewManager returns a manager with no quotas.
func NewManager(w Window) *Manager {
	if w.Samples < 2 {
		w.Samples = 2
	}
	if w.Size <= 0 {
		w.Size = time.Second
	}
	return &Manager{w: w, sensors: map[sensorKey]*sensor{}}
}

// SetTable installs the configured quotas; connections rebind on their
// next request. Usage measured so far is kept.
func (m *Manager) SetTable(t *Table) { m.table.Store(t) }

// Active reports whether any quota of kind k is configured: callers skip
// even reading the clock when it is not.
func (m *Manager) Active(k Kind) bool { return m.table.Load().Has(k) }

// Table returns the configured quotas.
func (m *Manager) Table() *Table { return m.table.Load() }

// Client is one connection's binding to its sensors. It caches the
// resolution for the table, principal and client id it last saw, so that a
// request costs no map lookup while they stay the same. A Client may be
// used from several goroutines.
type Client struct {
	mu       sync.Mutex
	table    *Table
	gen      uint64
	user     string
	clientID string
	bound    [numKinds]binding
}

type binding struct {
	s     *sensor
	limit float64
}

// Record adds v to the usage of kind k by (user, clientID) at now and
// returns how long the client must be throttled (0 when within its quota
// or when no quota applies). Byte rates are throttled for as long as it
// takes the window to fall back to the quota, uncapped (Kafka's
// ClientQuotaManager); request time is capped at one window sample
// (Kafka's ClientRequestQuotaManager).
func (m *Manager) Record(c *Client, k Kind, user, clientID string, now time.Time, v float64) time.Duration {
	t := m.table.Load()
	if !t.Has(k) {
		return 0 // the fast path: no quota of this kind anywhere
	}
	b := m.bind(c, t, k, user, clientID, now)
	if b.s == nil {
		return 0
	}
	ns := now.UnixNano()
	b.s.mu.Lock()
	b.s.r.record(ns, v)
	b.s.lastUsed = ns
	perSecond, window := b.s.r.measure(ns)
	b.s.mu.Unlock()
	d := throttleTime(perSecond, b.limit, window)
	if k == Request {
		d = min(d, m.w.Size)
	}
	if d > 0 {
		m.throttled[k].Add(1)
		m.throttleN[k].Add(int64(d))
	}
	return d
}

// MaxInWindow returns how much of kind k the client may use in one
// measurement window before it is throttled: its limit times the shortest
// window (Samples−1 samples). A fetch is capped to it, as Kafka caps
// fetch.max.bytes, so that one response cannot outgrow the quota. ok is
// false when no quota applies.
func (m *Manager) MaxInWindow(c *Client, k Kind, user, clientID string, now time.Time) (maxValue float64, ok bool) {
	t := m.table.Load()
	if !t.Has(k) {
		return 0, false
	}
	b := m.bind(c, t, k, user, clientID, now)
	if b.s == nil {
		return 0, false
	}
	return b.limit * float64(m.w.Samples-1) * m.w.Size.Seconds(), true
}

// Unrecord takes back usage recorded with Record (a fetch that is answered
// empty because it was throttled does not count, as in Kafka).
func (m *Manager) Unrecord(c *Client, k Kind, now time.Time, v float64) {
	c.mu.Lock()
	s := c.bound[k].s
	c.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	s.r.record(now.UnixNano(), -v)
	s.mu.Unlock()
}

// throttleTime is Kafka's QuotaUtils.throttleTime: how long until the rate
// measured over window falls back to the limit, rounded to milliseconds.
func throttleTime(perSecond, limit float64, window time.Duration) time.Duration {
	if perSecond <= limit || limit <= 0 {
		return 0
	}
	ms := math.Round((perSecond - limit) / limit * float64(window.Milliseconds()))
	if ms > math.MaxInt32 {
		ms = math.MaxInt32
	}
	return time.Duration(ms) * time.Millisecond
}

func (m *Manager) bind(c *Client, t *Table, k Kind, user, clientID string, now time.Time) binding {
	gen := m.gen.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.table == t && c.gen == gen && c.user == user && c.clientID == clientID {
		return c.bound[k]
	}
	// Rebind: the strings may point into a request frame; keep copies.
	c.table, c.user, c.clientID = t, strings.Clone(user), strings.Clone(clientID)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now.UnixNano())
	c.gen = m.gen.Load()
	for kind := range numKinds {
		r := t.Resolve(kind, c.user, c.clientID)
		if !r.OK {
			c.bound[kind] = binding{}
			continue
		}
		key := sensorKey{kind, r.Measure}
		s := m.sensors[key]
		if s == nil {
			s = &sensor{r: rate{w: m.w}, lastUsed: now.UnixNano()}
			m.sensors[key] = s
		}
		c.bound[kind] = binding{s: s, limit: r.Limit}
	}
	return c.bound[k]
}

func (m *Manager) sweepLocked(now int64) {
	if now-m.lastSweep < int64(sweepEvery) {
		return
	}
	m.lastSweep = now
	dropped := false
	for k, s := range m.sensors {
		s.mu.Lock()
		idle := now-s.lastUsed > int64(inactiveAfter)
		s.mu.Unlock()
		if idle {
			delete(m.sensors, k)
			dropped = true
		}
	}
	if dropped {
		m.gen.Add(1)
	}
}

// Stats are what the manager handed out, for metrics.
type Stats struct {
	Throttled    int64
	ThrottleTime time.Duration
}

// Stats returns the throttled responses and throttle time of kind k.
func (m *Manager) Stats(k Kind) Stats {
	return Stats{Throttled: m.throttled[k].Load(), ThrottleTime: time.Duration(m.throttleN[k].Load())}
}
