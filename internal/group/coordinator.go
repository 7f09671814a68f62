package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/records"
)

// OffsetsTopic is the internal topic that holds committed offsets and
// group state.
const OffsetsTopic = "__consumer_offsets"

// Coordinator runs the group state machine of every __consumer_offsets
// partition this node leads: one shard (goroutine plus Groups) per such
// partition. A group belongs to the partition Kafka would put it in, so
// that in a cluster its coordinator moves with that partition's leadership.
type Coordinator struct {
	o CoordinatorOptions

	mu     sync.Mutex
	shards map[int32]*shard
	nudgec chan struct{}
}

// CoordinatorOptions wire a coordinator to its node.
type CoordinatorOptions struct {
	NodeID   int32
	Config   Config
	Consumer ConsumerConfig
	// Partitions is the partition count of __consumer_offsets (0 while the
	// topic does not exist).
	Partitions func() int32
	// Partition returns the local replica of an offsets partition.
	Partition func(index int32) (*partition.Partition, bool)
	// Topics answers what topics exist.
	Topics Topics
	Logger *slog.Logger
	Now    func() time.Time
	// CompactAfter is how many records the log of an offsets partition may
	// hold beyond twice its live records before the shard rewrites its state
	// and drops the older log (0: 50,000).
	CompactAfter int
}

// NewCoordinator builds a coordinator; Run makes it serve.
func NewCoordinator(o CoordinatorOptions) *Coordinator {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CompactAfter <= 0 {
		o.CompactAfter = 50_000
	}
	return &Coordinator{o: o, shards: map[int32]*shard{}, nudgec: make(chan struct{}, 1)}
}

// Nudge makes Run look at leadership now (after a topic or leader change).
func (c *Coordinator) Nudge() {
	select {
	case c.nudgec <- struct{}{}:
	default:
	}
}

// Run starts and stops shards as this node gains and loses leadership of
// offsets partitions, until ctx ends.
func (c *Coordinator) Run(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c.watch(ctx, &wg)
		select {
		case <-ctx.Done():
			c.mu.Lock()
			for i, sh := range c.shards {
				sh.cancel()
				delete(c.shards, i)
			}
			c.mu.Unlock()
			return nil
		case <-t.C:
		case <-c.nudgec:
		}
	}
}

// watch reconciles shards with leadership.
func (c *Coordinator) watch(ctx context.Context, wg *sync.WaitGroup) {
	n := c.o.Partitions()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, sh := range c.shards {
		p, ok := c.o.Partition(i)
		st := sh.p.Group.Status()
		if i >= n || !ok || p != sh.p || !st.IsLeader || st.Term != sh.term || sh.stopped() {
			sh.cancel()
			delete(c.shards, i)
		}
	}
	for i := range n {
		if _, ok := c.shards[i]; ok {
			continue
		}
		p, ok := c.o.Partition(i)
		if !ok {
			continue
		}
		st := p.Group.Status()
		if !st.IsLeader {
			continue
		}
		sh := c.newShard(ctx, i, p, st.Term)
		c.shards[i] = sh
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.run()
		}()
	}
}

// PartitionFor returns the offsets partition of a group, as Kafka computes
// it (abs of Java's String.hashCode, modulo the partition count), or -1
// while the offsets topic does not exist.
func (c *Coordinator) PartitionFor(group string) int32 {
	n := c.o.Partitions()
	if n <= 0 {
		return -1
	}
	return PartitionFor(group, n)
}

// PartitionFor maps a group to one of n offsets partitions like Kafka.
func PartitionFor(group string, n int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(group)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % n
}

// ErrNotCoordinator and ErrLoading are what a request for a group gets
// when this node does not lead its offsets partition, or is still reading
// that partition back.
var (
	ErrNotCoordinator = kerr.NotCoordinator
	ErrLoading        = kerr.CoordinatorLoadInProgress
)

// Call runs fn on the shard that owns group and waits for the reply fn
// gives (fn must call reply exactly once, now or later). The error is a
// Kafka error: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, or
// REQUEST_TIMED_OUT when ctx ends first.
func Call[T any](ctx context.Context, c *Coordinator, group string, fn func(s *Groups, now time.Time, reply func(T))) (T, *kerr.Error) {
	return Send(ctx, c, group, fn)(ctx)
}

// Send hands fn to the shard that owns group now, so that requests of one
// connection reach the state machine in order, and returns a function that
// waits for fn's reply.
func Send[T any](ctx context.Context, c *Coordinator, group string, fn func(s *Groups, now time.Time, reply func(T))) func(context.Context) (T, *kerr.Error) {
	var zero T
	sh, e := c.shardFor(group)
	if e == nil {
		ch := make(chan T, 1)
		op := func() {
			fn(sh.groups, sh.now(), func(v T) {
				select {
				case ch <- v:
				default: // a second reply is a bug in fn; the first one counts
				}
			})
		}
		if e = sh.post(ctx, op); e == nil {
			return func(ctx context.Context) (T, *kerr.Error) {
				select {
				case v := <-ch:
					return v, nil
				case <-sh.done:
					return zero, ErrNotCoordinator
				case <-ctx.Done():
					return zero, kerrTimeout
				}
			}
		}
	}
	return func(context.Context) (T, *kerr.Error) { return zero, e }
}

var kerrTimeout = kerr.RequestTimedOut

// shardFor finds the ready shard of a group.
func (c *Coordinator) shardFor(group string) (*shard, *kerr.Error) {
	i := c.PartitionFor(group)
	if i < 0 {
		return nil, kerr.CoordinatorNotAvailable
	}
	c.mu.Lock()
	sh, ok := c.shards[i]
	c.mu.Unlock()
	switch {
	case !ok || sh.stopped():
		return nil, ErrNotCoordinator
	case !sh.ready.Load():
		return nil, ErrLoading
	}
	return sh, nil
}

// Each runs fn on every ready shard, one after the other, and reports
// whether some shard was still loading (ListGroups answers
// COORDINATOR_LOAD_IN_PROGRESS then).
func (c *Coordinator) Each(ctx context.Context, fn func(s *Groups, now time.Time)) (loading bool, err error) {
	c.mu.Lock()
	shards := make([]*shard, 0, len(c.shards))
	for _, sh := range c.shards {
		shards = append(shards, sh)
	}
	c.mu.Unlock()
	for _, sh := range shards {
		if !sh.ready.Load() {
			loading = true
			continue
		}
		done := make(chan struct{})
		if e := sh.post(ctx, func() { fn(sh.groups, sh.now()); close(done) }); e != nil {
			if errors.Is(e, ErrNotCoordinator) {
				continue
			}
			return loading, e
		}
		select {
		case <-done:
		case <-sh.done:
		case <-ctx.Done():
			return loading, kerrTimeout
		}
	}
	return loading, nil
}

// Coordinates reports whether this node serves group now.
func (c *Coordinator) Coordinates(group string) bool {
	_, e := c.shardFor(group)
	return e == nil || errors.Is(e, ErrLoading)
}

// shard is one offsets partition's coordinator: its goroutine owns groups.
type shard struct {
	c     *Coordinator
	index int32
	p     *partition.Partition
	term  uint64
	ctx   context.Context
	// cancel stops the shard; done closes when its goroutine has ended.
	cancel context.CancelFunc
	done   chan struct{}
	ready  atomic.Bool

	groups      *Groups
	ops         chan func()
	completions chan func()
	log         *slog.Logger

	// The store pipeline: proposals are made in order on the shard
	// goroutine; their outcomes are awaited in the same order by the
	// completer goroutine and handed back through completions.
	qmu      sync.Mutex
	queue    []pendingStore
	queued   chan struct{}
	inflight int

	// logRecords counts the records in the partition's log (since its log
	// start); live is how many LiveRecords would write. Compaction rewrites
	// the live records when the log holds many more.
	logRecords int
	nextCheck  int
	compacting bool
	// bg tracks the shard's helper goroutines.
	bg sync.WaitGroup
}

type pendingStore struct {
	waits []func(context.Context) partition.ProduceResult
	then  func(base int64, err error)
}

func (c *Coordinator) newShard(ctx context.Context, index int32, p *partition.Partition, term uint64) *shard {
	sctx, cancel := context.WithCancel(ctx)
	sh := &shard{c: c, index: index, p: p, term: term, ctx: sctx, cancel: cancel, done: make(chan struct{}),
		ops: make(chan func(), 256), completions: make(chan func(), 256), queued: make(chan struct{}, 1),
		log: c.o.Logger.With("offsets_partition", index)}
	sh.groups = NewGroups(c.o.Config, c.o.Consumer, sh.store, newMemberID)
	return sh
}

func (sh *shard) now() time.Time { return sh.c.o.Now() }

func (sh *shard) stopped() bool {
	select {
	case <-sh.done:
		return true
	default:
		return false
	}
}

// post hands op to the shard goroutine.
func (sh *shard) post(ctx context.Context, op func()) *kerr.Error {
	select {
	case sh.ops <- op:
		return nil
	case <-sh.done:
		return ErrNotCoordinator
	case <-ctx.Done():
		return kerrTimeout
	}
}

// newMemberID is Kafka's form: client id, a dash, a random UUID.
func newMemberID(clientID string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s-%s", clientID, h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// tickEvery bounds how late a deadline (session, rebalance) is noticed.
const tickEvery = 50 * time.Millisecond

// expireEvery is offsets.retention.check.interval.ms.
const expireEvery = 10 * time.Minute

func (sh *shard) run() {
	defer close(sh.done)
	defer sh.bg.Wait()
	defer sh.cancel()
	sh.bg.Go(sh.completer)
	start := time.Now()
	if err := sh.load(); err != nil {
		if sh.ctx.Err() == nil {
			sh.log.Error("loading groups failed; this node will not coordinate them until leadership changes", "err", err)
		}
		return
	}
	sh.ready.Store(true)
	level := slog.LevelDebug // fifty empty partitions need not say so fifty times
	if len(sh.groups.groups) > 0 {
		level = slog.LevelInfo
	}
	sh.log.Log(sh.ctx, level, "coordinating groups", "groups", len(sh.groups.groups), "records", sh.logRecords, "took", time.Since(start).Round(time.Millisecond))
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	lastExpire := sh.now()
	for {
		ops := sh.ops
		if sh.compacting {
			ops = nil // let the stores in flight finish first
		}
		select {
		case <-sh.ctx.Done():
			return
		case <-sh.p.Group.Stopped():
			return
		case op := <-ops:
			op()
		case f := <-sh.completions:
			f()
		case <-tick.C:
			now := sh.now()
			sh.groups.Tick(now)
			if now.Sub(lastExpire) >= expireEvery {
				lastExpire = now
				sh.groups.ExpireOffsets(now)
			}
		}
		sh.maybeCompact()
	}
}

// load reads the partition back into the state machine, once this leader
// has committed everything its log holds.
func (sh *shard) load() error {
	p := sh.p
	p.Log.WaitIdle()
	end := p.Log.EndOffset()
	for {
		ch := p.Group.HighWatermarkChanged()
		if p.Group.HighWatermark() >= end {
			break
		}
		select {
		case <-ch:
		case <-sh.ctx.Done():
			return sh.ctx.Err()
		case <-p.Group.Stopped():
			return errors.New("partition stopped")
		}
	}
	now := sh.now()
	for off := p.Log.LogStartOffset(); off < end; {
		rr, err := p.Read(off, 1<<20, true)
		if err != nil {
			return fmt.Errorf("read offset %d: %w", off, err)
		}
		if len(rr.Records) == 0 {
			return fmt.Errorf("read offset %d: nothing below the high watermark %d", off, rr.HighWatermark)
		}
		next := off
		err = records.Each(rr.Records, func(r records.Rec) bool {
			next = r.Offset + 1
			if r.Offset < off || r.Key == nil {
				return true
			}
			sh.logRecords++
			if lerr := sh.groups.Load(r.Key, r.Value, now); lerr != nil && !errors.Is(lerr, errUnknownRecord) {
				sh.log.Warn("skipping a record of __consumer_offsets that cannot be read", "offset", r.Offset, "err", lerr)
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("records at %d: %w", off, err)
		}
		if next <= off {
			return fmt.Errorf("no progress reading at offset %d", off)
		}
		off = next
	}
	return nil
}

// maxBatchBytes bounds one record batch written to an offsets partition
// (under the topic's max.message.bytes).
const maxBatchBytes = 512 << 10

// store is the state machine's persistence: the records become record
// batches of the offsets partition, appended with acks=all; then runs on
// the shard goroutine once all are committed or one failed.
func (sh *shard) store(recs []Record, then func(error)) {
	sh.storeAt(recs, func(_ int64, err error) { then(err) })
}

func (sh *shard) storeAt(recs []Record, then func(base int64, err error)) {
	ts := sh.now().UnixMilli()
	var ps pendingStore
	ps.then = then
	for len(recs) > 0 {
		n, size := 0, 0
		var chunk []records.Record
		for n < len(recs) && (n == 0 || size+len(recs[n].Key)+len(recs[n].Value)+32 <= maxBatchBytes) {
			size += len(recs[n].Key) + len(recs[n].Value) + 32
			chunk = append(chunk, records.Record{Key: recs[n].Key, Value: recs[n].Value})
			n++
		}
		recs = recs[n:]
		batch := records.Build(0, ts, chunk)
		entry := make([]byte, 1, 1+len(batch))
		entry = append(entry, batch...)
		ps.waits = append(ps.waits, sh.p.Produce(sh.ctx, entry, -1))
		sh.logRecords += n
	}
	sh.inflight++
	sh.qmu.Lock()
	sh.queue = append(sh.queue, ps)
	sh.qmu.Unlock()
	select {
	case sh.queued <- struct{}{}:
	default:
	}
}

// completer waits for stores in the order they were made and hands their
// outcomes to the shard goroutine in that order, so that later commits of
// the same partition land in memory after earlier ones.
func (sh *shard) completer() {
	for {
		sh.qmu.Lock()
		var ps *pendingStore
		if len(sh.queue) > 0 {
			ps = &sh.queue[0]
			sh.queue = sh.queue[1:]
		}
		sh.qmu.Unlock()
		if ps == nil {
			select {
			case <-sh.queued:
				continue
			case <-sh.ctx.Done():
				return
			}
		}
		base, err := int64(-1), error(nil)
		for i, w := range ps.waits {
			r := w(sh.ctx)
			if r.Err != nil && err == nil {
				err = fmt.Errorf("store in %s-%d: %w", OffsetsTopic, sh.index, r.Err)
			}
			if i == 0 {
				base = r.BaseOffset
			}
		}
		then := ps.then
		select {
		case sh.completions <- func() { sh.inflight--; then(base, err) }:
		case <-sh.ctx.Done():
			return
		}
	}
}

// maybeCompact rewrites the live state when the log has grown well past
// it, then drops the log before the rewrite: Kafka compacts
// __consumer_offsets; Chronik's coordinator rewrites it. New requests wait
// while the stores in flight finish, so the rewrite covers them.
func (sh *shard) maybeCompact() {
	if sh.compacting {
		if sh.inflight > 0 {
			return
		}
	} else {
		if sh.logRecords < max(sh.c.o.CompactAfter, sh.nextCheck) {
			return
		}
		live := sh.groups.LiveRecords()
		if sh.logRecords < 2*len(live)+sh.c.o.CompactAfter {
			sh.nextCheck = sh.logRecords + sh.c.o.CompactAfter/4
			return
		}
		sh.compacting = true
		if sh.inflight > 0 {
			return
		}
	}
	live := sh.groups.LiveRecords()
	before := sh.logRecords
	sh.logRecords, sh.nextCheck = 0, 0
	if len(live) == 0 {
		sh.compacting = false
		sh.dropBefore(sh.p.Log.EndOffset(), before, 0)
		return
	}
	sh.storeAt(live, func(base int64, err error) {
		if err != nil {
			sh.log.Warn("rewriting group state failed; the older log stays", "err", err)
			sh.logRecords = before + len(live)
			return
		}
		sh.dropBefore(base, before, len(live))
	})
	// New requests may go on: they land after the rewrite.
	sh.compacting = false
}

// dropBefore advances the partition's log start to off in the background.
func (sh *shard) dropBefore(off int64, was, live int) {
	sh.bg.Go(func() {
		ctx, cancel := context.WithTimeout(sh.ctx, time.Minute)
		defer cancel()
		if _, err := sh.p.DeleteRecords(ctx, off); err != nil {
			sh.log.Warn("dropping the log before the rewritten group state", "offset", off, "err", err)
			return
		}
		sh.log.Info("compacted group state", "records_before", was, "live_records", live, "log_start", off)
	})
}

// PartitionLag is how far a group's committed offset is behind the end of
// a partition.
type PartitionLag struct {
	Group     string
	Topic     string
	Partition int32
	Committed int64
	End       int64
	Lag       int64
}

// Lag reports the lag of every group this node coordinates, for each
// partition it has committed. end returns a partition's high watermark
// (false when this node does not know it: the partition is elsewhere).
func (c *Coordinator) Lag(ctx context.Context, end func(topic string, partition int32) (int64, bool)) ([]PartitionLag, error) {
	var out []PartitionLag
	_, err := c.Each(ctx, func(s *Groups, _ time.Time) {
		for _, g := range s.All() {
			if g.State == Dead {
				continue
			}
			for _, tp := range SortedTPs(g.Offsets) {
				e, ok := end(tp.Topic, tp.Partition)
				if !ok {
					continue
				}
				o := g.Offsets[tp].Offset
				out = append(out, PartitionLag{Group: g.ID, Topic: tp.Topic, Partition: tp.Partition, Committed: o, End: e, Lag: max(e-o, 0)})
			}
		}
	})
	return out, err
}
