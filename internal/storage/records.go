package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// ErrOffsetOutOfRange is returned for Kafka offsets outside
// [LogStartOffset, EndOffset].
var ErrOffsetOutOfRange = errors.New("storage: offset out of range")

// EndOffset returns the Kafka offset after the last entry.
func (l *Log) EndOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur.endOffset
}

// LogStartOffset returns the first Kafka offset that may be read.
func (l *Log) LogStartOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.logStartLocked()
}

// logStartLocked is the Kafka log-start offset: the last one recorded, but
// never before the first segment. mu held.
func (l *Log) logStartLocked() int64 { return max(l.cur.logStart, l.segs[0].baseOffset) }

// DurableIndex returns the last Raft index known to be durable.
func (l *Log) DurableIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable.lastIndex
}

// WaitIdle waits until every submitted write completed (durable or failed).
func (l *Log) WaitIdle() {
	l.mu.Lock()
	l.waitIdle()
	l.mu.Unlock()
}

// EndOffsetAt returns the Kafka end offset after entry i (the high
// watermark when i is the commit index).
func (l *Log) EndOffsetAt(i uint64) (int64, error) {
	l.mu.Lock()
	first := l.segs[0]
	switch {
	case i == l.cur.lastIndex:
		defer l.mu.Unlock()
		return l.cur.endOffset, nil
	case i+1 == first.baseIndex:
		l.mu.Unlock()
		return first.baseOffset, nil
	case i+1 < first.baseIndex:
		l.mu.Unlock()
		return 0, raft.ErrCompacted
	case i > l.cur.lastIndex:
		l.mu.Unlock()
		return 0, raft.ErrUnavailable
	}
	seg := l.segmentForIndex(i)
	l.mu.Unlock()
	h, _, err := l.readEntryAt(seg, i, false)
	if err != nil {
		return 0, err
	}
	return h.endOffset(), nil
}

// Batch is the payload of one entry holding Kafka records.
type Batch struct {
	BaseOffset   int64
	EndOffset    int64 // exclusive
	MaxTimestamp int64
	Data         []byte // the entry's data, exactly as appended
}

// ReadRecords returns, in offset order, the entries holding records from
// the one that contains offset on, ending before limit (exclusive; the high
// watermark) and after maxBytes of data — but always the first entry, so
// that a consumer can make progress past a batch larger than its limit.
func (l *Log) ReadRecords(offset int64, maxBytes int, limit int64) ([]Batch, error) {
	l.mu.Lock()
	if offset < l.logStartLocked() || offset > l.cur.endOffset {
		start, end := l.logStartLocked(), l.cur.endOffset
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, start, end)
	}
	limit = min(limit, l.cur.endOffset)
	if offset >= limit {
		l.mu.Unlock()
		return nil, nil
	}
	k := l.segmentForOffset(offset)
	segs, ends := l.readableFrom(k)
	l.mu.Unlock()

	var out []Batch
	size := 0
	for i, seg := range segs {
		if seg.baseOffset >= limit {
			break
		}
		f, err := seg.reader()
		if err != nil {
			return nil, l.offsetReadErr(err, offset)
		}
		pos := int64(segmentHeaderSize)
		if i == 0 {
			if pos, err = l.seekOffset(seg, offset); err != nil {
				return nil, err
			}
		}
		r := frameReader{f: f, pos: pos, end: ends[i], retain: true, corrupt: l.markCorrupt}
		for {
			h, payload, err := r.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if len(out) > 0 && errors.Is(err, ErrCorrupt) {
					// The batches before the damage are good: serve them,
					// as a reader of a damaged Kafka log gets everything
					// up to the bad batch. The log is already marked
					// damaged (its owner takes it offline); the next read,
					// which starts at the damage, gets the error itself.
					return out, nil
				}
				return nil, l.offsetReadErr(err, offset)
			}
			if !h.kind.isEntry() || h.offsetCount == 0 || h.endOffset() <= offset {
				continue
			}
			if h.endOffset() > limit {
				return out, nil
			}
			if len(out) > 0 && size+len(payload) > maxBytes {
				return out, nil
			}
			out = append(out, Batch{BaseOffset: h.baseOffset, EndOffset: h.endOffset(), MaxTimestamp: h.maxTs, Data: payload})
			size += len(payload)
		}
	}
	return out, nil
}

func (l *Log) offsetReadErr(err error, offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset < l.logStartLocked() {
		return fmt.Errorf("%w: %d deleted while reading", ErrOffsetOutOfRange, offset)
	}
	return err
}

// OffsetForTimestamp returns the first entry holding records whose largest
// timestamp is at least ts, found through the time index (Kafka ListOffsets
// by timestamp; the caller picks the exact record inside the batch). ok is
// false when every record is older.
func (l *Log) OffsetForTimestamp(ts int64) (Batch, bool, error) {
	l.mu.Lock()
	type cand struct {
		seg  *segment
		maxT int64
		n    int
		end  int64
	}
	var cands []cand
	for _, s := range l.segs {
		maxT, end := s.maxTs, s.size
		if s.wf != nil {
			maxT, end = l.cur.maxTs, s.wf.Written()
		}
		if maxT >= ts && (s.endOffset > l.logStartLocked() || s.wf != nil) {
			cands = append(cands, cand{s, maxT, s.tidx.n, end})
		}
	}
	logStart := l.logStartLocked()
	l.mu.Unlock()
	for _, c := range cands {
		pos := int64(segmentHeaderSize)
		if ts > 0 {
			_, b, err := c.seg.tidx.search(c.n, uint64(ts-1), timeKey)
			if err != nil {
				return Batch{}, false, err
			}
			if b != nil {
				rel := getTimeEntry(b).relOffset
				if pos, err = l.seekOffset(c.seg, c.seg.baseOffset+int64(rel)); err != nil {
					return Batch{}, false, err
				}
			}
		}
		f, err := c.seg.reader()
		if err != nil {
			return Batch{}, false, err
		}
		r := frameReader{f: f, pos: pos, end: c.end, retain: true, corrupt: l.markCorrupt}
		for {
			h, payload, err := r.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return Batch{}, false, err
			}
			if h.kind.isEntry() && h.offsetCount > 0 && h.maxTs >= ts && h.endOffset() > logStart {
				return Batch{BaseOffset: h.baseOffset, EndOffset: h.endOffset(), MaxTimestamp: h.maxTs, Data: payload}, true, nil
			}
		}
	}
	return Batch{}, false, nil
}

// AdvanceLogStart moves the Kafka log-start offset to offset (DeleteRecords)
// durably, and deletes sealed segments that lie wholly before it.
func (l *Log) AdvanceLogStart(ctx context.Context, offset int64) error {
	err := l.writeState(ctx, &stateUpdate{logStart: &offset}, func() (bool, error) {
		if offset > l.cur.endOffset {
			return false, fmt.Errorf("%w: log start %d beyond end %d", ErrOffsetOutOfRange, offset, l.cur.endOffset)
		}
		return offset <= l.logStartLocked(), nil
	})
	if err != nil {
		return err
	}
	_, err = l.deleteSegments(func(s *segment, _ int64) bool { return s.endOffset <= offset }, ^uint64(0))
	return err
}

// SetConfState durably records the conf state that applying the conf
// change at index produced.
func (l *Log) SetConfState(ctx context.Context, index uint64, cs *pb.ConfState) error {
	return l.writeState(ctx, &stateUpdate{conf: cs, confIndex: index}, nil)
}

// writeState writes state frames (and a buffered hard state) durably and
// waits for them. check runs with the log locked and may skip the write
// (true) or refuse it (an error).
func (l *Log) writeState(ctx context.Context, upd *stateUpdate, check func() (bool, error)) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	if check != nil {
		if skip, err := check(); skip || err != nil {
			l.mu.Unlock()
			return err
		}
	}
	ch := make(chan error, 1)
	w, err := l.prepare(nil, nil, upd, func(err error) { ch <- err })
	if err != nil || w == nil {
		l.mu.Unlock()
		return err
	}
	l.pending++
	l.submitted++
	l.mu.Unlock()
	if err := l.submit(ctx, w); err != nil {
		return err
	}
	return <-ch
}

// EnforceRetention deletes the oldest sealed segments that are past
// retention.ms (newest record older than the cut-off) or beyond
// retention.bytes, never deleting entries that are not applied yet (Raft
// may still need them).
func (l *Log) EnforceRetention() (int, error) {
	l.mu.Lock()
	maxIndex := l.applied
	now := l.opts.Now().UnixMilli()
	age, limit := l.opts.RetentionAge, l.opts.RetentionBytes
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	l.mu.Unlock()
	return l.deleteSegments(func(s *segment, remaining int64) bool {
		if age >= 0 && s.maxTs >= 0 && s.maxTs < now-age.Milliseconds() {
			return true
		}
		if age >= 0 && s.maxTs < 0 && s.createdMs < now-age.Milliseconds() {
			return true // no records at all: only Raft bookkeeping
		}
		return limit >= 0 && remaining-s.size >= limit
	}, maxIndex)
}

// deleteSegments removes sealed segments from the front while del says so.
func (l *Log) deleteSegments(del func(s *segment, remaining int64) bool, maxIndex uint64) (int, error) {
	l.mu.Lock()
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	n := 0
	for n < len(l.segs)-1 {
		s := l.segs[n]
		if !s.sealed || s.lastIndex > maxIndex || !del(s, total) {
			break
		}
		total -= s.size
		n++
	}
	victims := append([]*segment(nil), l.segs[:n]...)
	if n > 0 {
		l.segs = append(l.segs[:0:0], l.segs[n:]...)
		if l.cur.logStart < l.segs[0].baseOffset {
			l.cur.logStart = l.segs[0].baseOffset
		}
	}
	l.mu.Unlock()
	var err error
	for _, s := range victims {
		l.log.Info("deleting segment", "segment", s.path(segmentExt), "last_index", s.lastIndex, "end_offset", s.endOffset)
		err = errors.Join(err, s.remove())
	}
	if n > 0 {
		err = errors.Join(err, syncDir(l.dir))
	}
	return n, err
}

// Size returns the bytes held by the log's segments.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	return total
}

// Segments returns the number of segments.
func (l *Log) Segments() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.segs)
}

// Checkpoint records the durable tail so that the next recovery starts
// there. The fsyncs happen outside the log's lock; the final rename is done
// under it and skipped if a roll or truncation happened meanwhile, so an
// older checkpoint never replaces a newer one.
func (l *Log) Checkpoint() error {
	if err := l.flushHardState(); err != nil {
		return err
	}
	l.mu.Lock()
	if l.closed || l.failed != nil || l.durable.segBase == l.ckpt.segBase && l.durable.pos == l.ckpt.pos {
		l.mu.Unlock()
		return nil
	}
	st, gen, seg := l.durable, l.gen, l.active()
	l.mu.Unlock()
	if seg.baseIndex != st.segBase {
		return nil
	}
	if err := errors.Join(seg.idx.sync(), seg.tidx.sync()); err != nil {
		return fmt.Errorf("checkpoint %s: %w", l.name, err)
	}
	b, err := encodeCheckpoint(&st)
	if err != nil {
		return err
	}
	const tmp = checkpointFile + ".bg.tmp"
	if err := writeTemp(l.dir, tmp, b); err != nil {
		return fmt.Errorf("checkpoint %s: %w", l.name, err)
	}
	l.mu.Lock()
	if l.gen != gen || l.closed {
		l.mu.Unlock()
		return os.Remove(filepath.Join(l.dir, tmp))
	}
	err = os.Rename(filepath.Join(l.dir, tmp), filepath.Join(l.dir, checkpointFile))
	if err == nil {
		l.ckpt = st
	}
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", l.name, err)
	}
	return syncDir(l.dir)
}

// flushHardState writes a buffered commit-only hard state through the
// committer and waits for it, so that an idle log's commit index reaches
// the disk within one checkpoint interval.
func (l *Log) flushHardState() error {
	return l.writeState(context.Background(), &stateUpdate{}, func() (bool, error) {
		return !l.hsDirty || l.closed || l.failed != nil, nil
	})
}

// checkpointLocked writes a checkpoint of the durable tail. mu held; it
// invalidates background checkpoints in progress.
func (l *Log) checkpointLocked() error {
	l.gen++
	st := l.durable
	if l.active().baseIndex != st.segBase {
		return nil
	}
	if err := errors.Join(l.active().idx.sync(), l.active().tidx.sync()); err != nil {
		return err
	}
	b, err := encodeCheckpoint(&st)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(l.dir, checkpointFile, b); err != nil {
		return fmt.Errorf("checkpoint %s: %w", l.name, err)
	}
	l.ckpt = st
	return nil
}
