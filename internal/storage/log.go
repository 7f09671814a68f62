// Package storage owns the on-disk log of one Raft group (a Kafka partition
// or the metadata group): segment files of CRC-framed Raft entries and state
// frames, their offset and time indexes, recovery, retention, and the
// raft.Storage view of it all. Formats: docs/format/*.md.
//
// Durability is delegated to internal/wal: storage frames and positions the
// bytes, the committer writes and fsyncs them. Storage never acknowledges an
// append before the committer reports it durable, never reads past what was
// written, and never guesses: damage it cannot prove to be a torn write is
// reported as corruption and the log is taken offline.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/chronik-go/chronik/internal/wal"
)

// ErrCorrupt is matched (errors.Is) by every *CorruptionError.
var ErrCorrupt = errors.New("storage: corrupt log")

// ErrFailed is matched by errors returned after a write or sync failed: the
// log must be closed and opened again (which repairs it) before more use.
var ErrFailed = errors.New("storage: log failed")

// ErrClosed is returned by a closed log.
var ErrClosed = errors.New("storage: log closed")

// CorruptionError says which bytes of which log are damaged.
type CorruptionError struct {
	Log    string
	File   string
	Pos    int64
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("storage: log %s is corrupt: %s at byte %d: %s", e.Log, e.File, e.Pos, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

// EntryMeta is what a log needs to know about the Kafka records in an entry.
type EntryMeta struct {
	BaseOffset   int64
	Count        uint32
	MaxTimestamp int64
}

// MetaFunc derives the Kafka offsets held by the data of an EntryNormal
// entry. ok is false for entries that hold no records.
type MetaFunc func(data []byte) (m EntryMeta, ok bool, err error)

// Options configure a Log. Zero values take the documented defaults.
type Options struct {
	// SegmentBytes rolls the active segment once it holds this much
	// (Kafka segment.bytes, default 1 GiB, at most 2 GiB−1).
	SegmentBytes int64
	// SegmentAge rolls a non-empty active segment older than this
	// (Kafka segment.ms, default 7 days).
	SegmentAge time.Duration
	// IndexIntervalBytes is the sparse-index spacing (default 4096).
	IndexIntervalBytes int64
	// RetentionAge deletes sealed segments whose newest record is older
	// (Kafka retention.ms; default 7 days; negative: keep forever).
	RetentionAge time.Duration
	// RetentionBytes deletes the oldest sealed segments while the log is
	// larger (Kafka retention.bytes; default -1: no limit).
	RetentionBytes int64
	// TailCacheBytes bounds the memory of recently appended entries kept
	// for raft (default 1 MiB).
	TailCacheBytes int
	// Meta derives Kafka offsets from entry data; nil means entries hold
	// none (the metadata group).
	Meta MetaFunc
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives recovery and repair messages (default slog.Default).
	Logger *slog.Logger
	// OnRoll, when set, is called after each segment roll (for metrics;
	// under the log's lock: it must not block or call back into the log).
	OnRoll func()
	// OnDamage, when set, is called once, with the *CorruptionError, the
	// first time a read or a scrub finds damaged bytes, so that the owner
	// can take the log offline at once instead of waiting for its next
	// restart. It is called without the log's lock held and must not
	// block (a context's cancel is the intended use).
	OnDamage func(error)
	// Snapshots says the owner keeps its state in memory and saves
	// snapshots of it in the log (SaveSnapshot, the metadata log): Snapshot
	// then serves the last saved one, InstallSnapshot keeps the one it
	// installs, and CompactTo may delete what a saved snapshot covers.
	Snapshots bool
}

const (
	defaultSegmentBytes  = 1 << 30
	defaultSegmentAge    = 7 * 24 * time.Hour
	defaultIndexInterval = 4096
	defaultTailCache     = 1 << 20
)

func (o *Options) setDefaults() {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = defaultSegmentBytes
	}
	if o.SegmentAge == 0 {
		o.SegmentAge = defaultSegmentAge
	}
	if o.IndexIntervalBytes == 0 {
		o.IndexIntervalBytes = defaultIndexInterval
	}
	if o.RetentionAge == 0 {
		o.RetentionAge = 7 * 24 * time.Hour
	}
	if o.RetentionBytes == 0 {
		o.RetentionBytes = -1
	}
	if o.TailCacheBytes == 0 {
		o.TailCacheBytes = defaultTailCache
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate checks option ranges.
func (o *Options) Validate() error {
	switch {
	case o.SegmentBytes < 4096 || o.SegmentBytes > maxSegmentBytes:
		return fmt.Errorf("segment bytes %d out of range [4096, %d]", o.SegmentBytes, int64(maxSegmentBytes))
	case o.SegmentAge < time.Millisecond:
		return fmt.Errorf("segment age %s too small", o.SegmentAge)
	case o.IndexIntervalBytes < 1:
		return fmt.Errorf("index interval %d must be positive", o.IndexIntervalBytes)
	case o.TailCacheBytes < 0:
		return errors.New("tail cache bytes must not be negative")
	}
	return nil
}

// Log is the durable log of one Raft group. Appends come from one driver
// goroutine (or several writers, serialised); reads may come from any
// goroutine. Lock order: appendMu, then mu; the committer's queue is entered
// holding appendMu only, so readers are never blocked by backpressure.
type Log struct {
	name string
	dir  string
	opts Options
	c    *wal.Committer
	log  *slog.Logger

	appendMu sync.Mutex

	mu      sync.Mutex
	idle    *sync.Cond // signalled when pending drops to zero
	segs    []*segment // ascending; the last is active
	cur     tailState  // state at the end of the submitted bytes
	durable tailState  // state at the end of the durable bytes
	terms   termRuns
	cache   tailCache
	applied uint64
	pending int
	// submitted and completed count the writes handed to the committer
	// and finished (a log's writes finish in the order submitted);
	// barriers are the done callbacks of appends that had nothing to
	// write, each waiting for every write submitted before it.
	submitted, completed uint64
	barriers             []barrier
	failed               error
	closed               bool
	// damaged is the first corruption found by a read after open.
	damaged error
	// hsDirty says cur.hs holds a commit index not yet written in a frame.
	hsDirty bool
	// ckpt is the last checkpoint written (pos 0: none); gen counts rolls,
	// truncations and synchronous checkpoints, to invalidate background ones.
	ckpt tailState
	gen  uint64
	// snapData supplies the owner's data for Snapshot (SetSnapshotData).
	snapData func() ([]byte, error)
	// saved is the last saved snapshot (Options.Snapshots).
	saved *savedSnapshot
}

// Reconfigure changes the options that may change while the log is open:
// segment size and age, index interval, retention. Others are ignored.
func (l *Log) Reconfigure(o Options) error {
	next := l.opts
	if o.SegmentBytes != 0 {
		next.SegmentBytes = o.SegmentBytes
	}
	if o.SegmentAge != 0 {
		next.SegmentAge = o.SegmentAge
	}
	if o.IndexIntervalBytes != 0 {
		next.IndexIntervalBytes = o.IndexIntervalBytes
	}
	if o.RetentionAge != 0 {
		next.RetentionAge = o.RetentionAge
	}
	if o.RetentionBytes != 0 {
		next.RetentionBytes = o.RetentionBytes
	}
	if err := next.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	l.opts = next
	l.mu.Unlock()
	return nil
}

// Name returns the log's name (its directory name).
func (l *Log) Name() string { return l.name }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// usable reports why the log cannot be used, if it cannot. mu held.
func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return l.failed
	}
	return nil
}

// failLocked puts the log in the failed state. mu held.
func (l *Log) failLocked(err error) {
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %s: %w", ErrFailed, l.name, err)
		l.log.Error("log failed; it will be reopened to repair", "log", l.name, "err", err)
	}
}

// markCorrupt records corruption found by a read: the bytes were written
// and made durable earlier, so a bad frame there is damage, not a torn write.
func (l *Log) markCorrupt(file string, pos int64, err error) error {
	ce := &CorruptionError{Log: l.name, File: file, Pos: pos, Reason: err.Error()}
	l.mu.Lock()
	first := l.damaged == nil
	if first {
		l.damaged = ce
		l.log.Error("corruption found while reading; the log must be taken offline", "file", file, "pos", pos, "err", err)
	}
	notify := l.opts.OnDamage
	l.mu.Unlock()
	if first && notify != nil {
		notify(ce)
	}
	return ce
}

// Damaged returns the corruption a read found, if any. Callers take the
// log offline when it is non-nil.
func (l *Log) Damaged() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.damaged
}

// waitIdle waits until no write is pending. mu held.
func (l *Log) waitIdle() {
	for l.pending > 0 {
		l.idle.Wait()
	}
}

// Append writes entries and, if it changed, the hard state, and calls done
// once they are durable (or with the error that prevented it). Entries
// that overlap the log's tail replace it (Raft conflict resolution). It
// blocks while the committer's queue is full. If Append returns an error,
// done is not called.
func (l *Log) Append(ctx context.Context, ents []*pb.Entry, hs *pb.HardState, done func(error)) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	w, err := l.prepare(ents, hs, nil, done)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	if w == nil {
		// Nothing to write, but Raft may have attached acknowledgements of
		// entries from earlier appends that are still being written: done
		// must not run before they are durable (a follower would count
		// toward a commit with entries it may never have).
		if l.completed == l.submitted {
			l.mu.Unlock()
			done(nil)
			return nil
		}
		l.barriers = append(l.barriers, barrier{at: l.submitted, done: done})
		l.mu.Unlock()
		return nil
	}
	l.pending++
	l.submitted++
	l.mu.Unlock()
	return l.submit(ctx, w)
}

// barrier is an append with nothing to write, waiting for the writes
// submitted before it (the first at writes).
type barrier struct {
	at   uint64
	done func(error)
}

// releaseBarriersLocked takes the barriers whose writes all finished, or
// every barrier once the log failed; the caller runs them without mu.
func (l *Log) releaseBarriersLocked() (ready []barrier, err error) {
	if l.failed != nil {
		ready, l.barriers = l.barriers, nil
		return ready, l.failed
	}
	n := 0
	for n < len(l.barriers) && l.barriers[n].at <= l.completed {
		n++
	}
	ready = slices.Clone(l.barriers[:n])
	l.barriers = append(l.barriers[:0], l.barriers[n:]...)
	return ready, nil
}

// submit hands a prepared write to the committer. appendMu held, mu not.
// If it cannot be submitted the log's state is ahead of its file: the log
// fails and must be reopened.
func (l *Log) submit(ctx context.Context, w *wal.Write) error {
	if err := l.c.Submit(ctx, w); err != nil {
		l.mu.Lock()
		l.pending--
		l.failLocked(fmt.Errorf("submit: %w", err))
		if l.pending == 0 {
			l.idle.Broadcast()
		}
		ready, ferr := l.releaseBarriersLocked()
		l.mu.Unlock()
		for _, b := range ready {
			b.done(ferr)
		}
		return err
	}
	return nil
}

// AppendSync is Append that waits for durability.
func (l *Log) AppendSync(ctx context.Context, ents []*pb.Entry, hs *pb.HardState) error {
	ch := make(chan error, 1)
	if err := l.Append(ctx, ents, hs, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

// SetApplied records the highest applied index; it is persisted with the
// next hard state so that a restart re-applies only what may be missing.
func (l *Log) SetApplied(i uint64) {
	l.mu.Lock()
	l.applied = max(l.applied, i)
	l.cache.setApplied(l.applied)
	l.mu.Unlock()
}

// stateUpdate carries state frames to write after the entries of an append.
type stateUpdate struct {
	logStart  *int64
	conf      *pb.ConfState
	confIndex uint64
}

// prepare encodes a write. mu held; it may wait (releasing mu) for pending
// writes before a truncation or a roll.
func (l *Log) prepare(ents []*pb.Entry, hs *pb.HardState, upd *stateUpdate, done func(error)) (*wal.Write, error) {
	if err := l.usable(); err != nil {
		return nil, err
	}
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		switch {
		case first <= l.cur.lastIndex:
			if first < l.segs[0].baseIndex {
				return nil, fmt.Errorf("append at %d below first index %d", first, l.segs[0].baseIndex)
			}
			l.waitIdle()
			if err := l.truncateLocked(first); err != nil {
				l.failLocked(err)
				return nil, l.failed
			}
		case first != l.cur.lastIndex+1:
			return nil, fmt.Errorf("append at %d leaves a gap after %d", first, l.cur.lastIndex)
		}
		if l.needRoll() {
			l.waitIdle()
			if err := l.rollLocked(); err != nil {
				l.failLocked(err)
				return nil, l.failed
			}
		}
	}
	hsf := l.cur.hs
	if hs != nil {
		hsf = hardStateFrame{term: hs.GetTerm(), vote: hs.GetVote(), commit: hs.GetCommit(), applied: min(l.applied, hs.GetCommit())}
	}
	changed := hs != nil && (hsf.term != l.cur.hs.term || hsf.vote != l.cur.hs.vote || hsf.commit != l.cur.hs.commit)
	if changed && len(ents) == 0 && upd == nil && hsf.term == l.cur.hs.term && hsf.vote == l.cur.hs.vote {
		// Only the commit index moved (raft's MustSync is false): keep it in
		// memory and write it with the next append, a roll, a checkpoint or
		// close. A commit index that is older after a crash is safe; Raft
		// learns it again.
		l.cur.hs = hsf
		l.hsDirty = true
		return nil, nil
	}
	writeHS := changed || l.hsDirty && (len(ents) > 0 || upd != nil)
	if len(ents) == 0 && !writeHS && upd == nil {
		return nil, nil
	}

	seg := l.active()
	st := l.cur
	start := st.pos
	nframes := len(ents)
	if writeHS {
		nframes++
	}
	if upd != nil {
		nframes += 2
	}
	arena := make([]byte, nframes*frameHeaderSize)
	bufs := make([][]byte, 0, 2*nframes)
	var idx, tidx []byte
	add := func(h *frameHeader, payload []byte) error {
		hb := arena[:frameHeaderSize:frameHeaderSize]
		arena = arena[frameHeaderSize:]
		putFrameHeader(hb, h, payload)
		if err := advance(&st, h, payload, st.pos, seg.baseOffset, l.opts.IndexIntervalBytes, &idx, &tidx); err != nil {
			return err
		}
		bufs = append(bufs, hb)
		if len(payload) > 0 {
			bufs = append(bufs, payload)
		}
		return nil
	}
	for _, e := range ents {
		h, err := l.entryHeader(e, st.endOffset)
		if err != nil {
			return nil, err
		}
		if err := add(&h, e.Data); err != nil {
			return nil, fmt.Errorf("append to %s: %w", l.name, err)
		}
	}
	if writeHS {
		l.hsDirty = false
		p := make([]byte, hardStatePayload)
		putHardStatePayload(p, hsf)
		h := frameHeader{kind: kindHardState, term: hsf.term, index: st.lastIndex, baseOffset: st.endOffset, maxTs: -1}
		if err := add(&h, p); err != nil {
			return nil, err
		}
	}
	if upd != nil && upd.conf != nil {
		cb, err := proto.Marshal(upd.conf)
		if err != nil {
			return nil, err
		}
		h := frameHeader{kind: kindConfState, term: st.lastTerm, index: upd.confIndex, baseOffset: st.endOffset, maxTs: -1}
		if err := add(&h, cb); err != nil {
			return nil, err
		}
	}
	if upd != nil && upd.logStart != nil {
		lb := make([]byte, logStartPayload)
		putUint64LE(lb, uint64(*upd.logStart))
		h := frameHeader{kind: kindLogStart, term: st.lastTerm, index: st.lastIndex, baseOffset: st.endOffset, maxTs: -1}
		if err := add(&h, lb); err != nil {
			return nil, err
		}
	}
	if err := seg.idx.appendRaw(idx); err != nil {
		l.failLocked(err)
		return nil, l.failed
	}
	if err := seg.tidx.appendRaw(tidx); err != nil {
		l.failLocked(err)
		return nil, l.failed
	}
	for _, e := range ents {
		l.terms.add(e.GetIndex(), e.GetTerm())
		l.cache.append(e)
	}
	l.cur = st
	seg.size = st.pos
	return &wal.Write{
		File: seg.wf,
		Off:  start,
		Bufs: bufs,
		Size: int(st.pos - start),
		Done: func(err error) { l.complete(st, err, done) },
	}, nil
}

// entryHeader builds the frame header of a Raft entry.
func (l *Log) entryHeader(e *pb.Entry, endOffset int64) (frameHeader, error) {
	h := frameHeader{term: e.GetTerm(), index: e.GetIndex(), baseOffset: endOffset, maxTs: -1}
	switch e.GetType() {
	case pb.EntryNormal:
		h.kind = kindEntry
		if l.opts.Meta != nil && len(e.Data) > 0 {
			m, ok, err := l.opts.Meta(e.Data)
			if err != nil {
				return h, fmt.Errorf("entry %d: %w", e.GetIndex(), err)
			}
			if ok {
				h.baseOffset, h.offsetCount, h.maxTs = m.BaseOffset, m.Count, m.MaxTimestamp
			}
		}
	case pb.EntryConfChange:
		h.kind = kindConfChange
	case pb.EntryConfChangeV2:
		h.kind = kindConfChangeV2
	default:
		return h, fmt.Errorf("entry %d: unknown type %v", e.GetIndex(), e.GetType())
	}
	return h, nil
}

// complete runs on a committer goroutine when a write finished.
func (l *Log) complete(st tailState, err error, done func(error)) {
	l.mu.Lock()
	l.pending--
	l.completed++
	if err != nil {
		l.failLocked(err)
	} else if l.failed == nil {
		l.durable = st
	}
	if l.pending == 0 {
		l.idle.Broadcast()
	}
	ready, berr := l.releaseBarriersLocked()
	l.mu.Unlock()
	done(err)
	for _, b := range ready {
		b.done(berr)
	}
}

// flushHardStateLocked writes a buffered commit-only hard state directly
// and durably. mu held, no write pending.
func (l *Log) flushHardStateLocked() error {
	if !l.hsDirty {
		return nil
	}
	st := l.cur
	p := make([]byte, hardStatePayload)
	putHardStatePayload(p, st.hs)
	h := frameHeader{kind: kindHardState, term: st.hs.term, index: st.lastIndex, baseOffset: st.endOffset, maxTs: -1}
	b := make([]byte, frameHeaderSize, frameHeaderSize+hardStatePayload)
	putFrameHeader(b, &h, p)
	b = append(b, p...)
	seg := l.active()
	var idx, tidx []byte
	if err := advance(&st, &h, p, st.pos, seg.baseOffset, l.opts.IndexIntervalBytes, &idx, &tidx); err != nil {
		return err
	}
	f := seg.wf.OS()
	if _, err := f.WriteAt(b, l.cur.pos); err != nil {
		return fmt.Errorf("write hard state: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync hard state: %w", err)
	}
	seg.wf.Reset(st.pos)
	seg.size = st.pos
	l.cur, l.durable = st, st
	l.hsDirty = false
	return nil
}

// needRoll reports whether the next append must start a new segment. mu held.
func (l *Log) needRoll() bool {
	seg := l.active()
	if l.cur.lastIndex < seg.baseIndex { // no entry yet
		return false
	}
	if l.cur.pos >= l.opts.SegmentBytes {
		return true
	}
	return l.opts.Now().UnixMilli()-seg.createdMs >= l.opts.SegmentAge.Milliseconds()
}

// Close waits for pending writes, checkpoints and releases files.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.waitIdle()
	var err error
	if l.failed == nil {
		err = errors.Join(l.flushHardStateLocked(), l.checkpointLocked())
	}
	l.closed = true
	for _, s := range l.segs {
		err = errors.Join(err, s.close())
	}
	return err
}
