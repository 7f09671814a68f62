package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/chronik-go/chronik/internal/wal"
)

// stateFrames encodes the hard-state, conf-state and log-start frames that
// open a segment (and follow a truncation), advancing st over them.
func stateFrames(st *tailState, segBaseOffset int64, interval int64) ([]byte, error) {
	var out []byte
	var idx, tidx []byte
	add := func(h frameHeader, payload []byte) error {
		b := make([]byte, frameHeaderSize+len(payload))
		copy(b[frameHeaderSize:], payload)
		putFrameHeader(b, &h, payload)
		if err := advance(st, &h, payload, st.pos, segBaseOffset, interval, &idx, &tidx); err != nil {
			return err
		}
		out = append(out, b...)
		return nil
	}
	p := make([]byte, hardStatePayload)
	putHardStatePayload(p, st.hs)
	if err := add(frameHeader{kind: kindHardState, term: st.hs.term, index: st.lastIndex, baseOffset: st.endOffset, maxTs: -1}, p); err != nil {
		return nil, err
	}
	if st.conf != nil {
		cb, err := proto.Marshal(st.conf)
		if err != nil {
			return nil, err
		}
		if err := add(frameHeader{kind: kindConfState, term: st.lastTerm, index: st.confIndex, baseOffset: st.endOffset, maxTs: -1}, cb); err != nil {
			return nil, err
		}
	}
	if st.logStart >= 0 {
		lb := make([]byte, logStartPayload)
		putUint64LE(lb, uint64(st.logStart))
		if err := add(frameHeader{kind: kindLogStart, term: st.lastTerm, index: st.lastIndex, baseOffset: st.endOffset, maxTs: -1}, lb); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func putUint64LE(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// createSegment creates a segment whose first entry will be st.lastIndex+1,
// writes its header and state frames durably, and returns it with st moved
// to its end. The directory entry is fsynced too.
func (l *Log) createSegment(st *tailState) (*segment, error) {
	h := segmentHeader{baseIndex: st.lastIndex + 1, baseOffset: st.endOffset, prevTerm: st.lastTerm, createdMs: l.opts.Now().UnixMilli()}
	seg := &segment{segmentHeader: h, stem: segmentStem(l.dir, h.baseIndex), lastIndex: h.baseIndex - 1, endOffset: h.baseOffset, maxTs: -1}
	st.segBase, st.pos, st.idxEntries, st.tidxEntries = h.baseIndex, segmentHeaderSize, 0, 0
	st.maxTs, st.maxTsRel, st.sinceIndex, st.timeIndexLast = -1, 0, 0, -1
	frames, err := stateFrames(st, h.baseOffset, l.opts.IndexIntervalBytes)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(seg.path(segmentExt), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	buf := append(encodeSegmentHeader(h), frames...)
	if _, err := f.Write(buf); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("write segment header %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("fsync segment %s: %w", f.Name(), err)
	}
	seg.idx = &indexFile{path: seg.path(indexExt)}
	seg.tidx = &indexFile{path: seg.path(timeIndexExt)}
	if err := errors.Join(seg.idx.truncate(0), seg.tidx.truncate(0)); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := syncDir(l.dir); err != nil {
		_ = f.Close()
		return nil, err
	}
	seg.size = st.pos
	seg.wf = wal.NewFile(f, st.pos)
	return seg, nil
}

// rollLocked seals the active segment and starts a new one. mu held, no
// write pending.
func (l *Log) rollLocked() error {
	old := l.active()
	st := l.cur
	end := frameHeader{kind: kindSegmentEnd, term: st.lastTerm, index: st.lastIndex, baseOffset: st.endOffset, maxTs: st.maxTs}
	b := make([]byte, frameHeaderSize)
	putFrameHeader(b, &end, nil)
	f := old.wf.OS()
	if _, err := f.WriteAt(b, st.pos); err != nil {
		return fmt.Errorf("seal %s: %w", f.Name(), err)
	}
	if st.maxTs >= 0 && st.maxTs > st.timeIndexLast {
		var e [indexEntrySize]byte
		putTimeEntry(e[:], timeEntry{ts: st.maxTs, relOffset: st.maxTsRel})
		if err := old.tidx.appendRaw(e[:]); err != nil {
			return err
		}
	}
	if err := errors.Join(f.Sync(), old.idx.sync(), old.tidx.sync()); err != nil {
		return fmt.Errorf("seal %s: %w", f.Name(), err)
	}
	old.size = st.pos + frameHeaderSize
	old.sealed = true
	old.lastIndex, old.endOffset, old.maxTs = st.lastIndex, st.endOffset, st.maxTs
	next, err := l.createSegment(&st)
	if err != nil {
		return err
	}
	old.rf, old.wf = f, nil
	l.segs = append(l.segs, next)
	l.cur, l.durable = st, st
	l.hsDirty = false
	if l.opts.OnRoll != nil {
		l.opts.OnRoll()
	}
	return nil
}

// truncateLocked removes entries from index first on. mu held, no write
// pending. The new tail is made durable, with fresh state frames and a
// checkpoint, before it returns, so that a crash never resurrects the
// removed entries or loses the hard state written after them.
func (l *Log) truncateLocked(first uint64) error {
	k := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].baseIndex > first }) - 1
	if k < 0 {
		return fmt.Errorf("truncate at %d: below the first segment", first)
	}
	seg := l.segs[k]
	pos, err := l.entryPosition(seg, first)
	if err != nil {
		return fmt.Errorf("truncate at %d: %w", first, err)
	}
	for _, s := range l.segs[k+1:] {
		if err := s.remove(); err != nil {
			return fmt.Errorf("truncate: remove segment: %w", err)
		}
	}
	l.segs = l.segs[:k+1]
	if seg.wf == nil {
		f, err := os.OpenFile(seg.path(segmentExt), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("truncate: reopen %s: %w", seg.path(segmentExt), err)
		}
		seg.mu.Lock()
		if seg.rf != nil {
			_ = seg.rf.Close()
			seg.rf = nil
		}
		seg.mu.Unlock()
		seg.wf = wal.NewFile(f, pos)
		seg.sealed = false
	}
	f := seg.wf.OS()
	if err := f.Truncate(pos); err != nil {
		return fmt.Errorf("truncate %s: %w", f.Name(), err)
	}
	// Rebuild the state and indexes of the remaining prefix.
	st, err := l.scanSegment(seg, nil, pos, true)
	if err != nil {
		return fmt.Errorf("truncate: rescan: %w", err)
	}
	st.hs, st.conf, st.confIndex, st.logStart = l.cur.hs, l.cur.conf, l.cur.confIndex, l.cur.logStart
	frames, err := stateFrames(&st, seg.baseOffset, l.opts.IndexIntervalBytes)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(frames, pos); err != nil {
		return fmt.Errorf("truncate: write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("truncate: fsync: %w", err)
	}
	seg.wf.Reset(st.pos)
	seg.size = st.pos
	seg.lastIndex, seg.endOffset, seg.maxTs = st.lastIndex, st.endOffset, st.maxTs
	if err := syncDir(l.dir); err != nil {
		return err
	}
	l.cur, l.durable = st, st
	l.hsDirty = false
	l.terms.truncate(first)
	l.cache.truncate(first)
	return l.checkpointLocked()
}

// scanSegment reads seg's frames from its start (or from st's position)
// up to end, validating them, and returns the state after them. With
// rebuild, the index files are rewritten from the scan.
func (l *Log) scanSegment(seg *segment, from *tailState, end int64, rebuild bool) (tailState, error) {
	var st tailState
	if from != nil {
		st = *from
	} else {
		st = tailState{segBase: seg.baseIndex, pos: segmentHeaderSize, lastIndex: seg.baseIndex - 1, lastTerm: seg.prevTerm,
			endOffset: seg.baseOffset, maxTs: -1, timeIndexLast: -1, logStart: -1}
	}
	f, err := seg.reader()
	if err != nil {
		return st, err
	}
	r := frameReader{f: f, pos: st.pos, end: end}
	var idx, tidx []byte
	for {
		h, payload, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, &CorruptionError{Log: l.name, File: f.Name(), Pos: r.pos, Reason: err.Error()}
		}
		if err := advance(&st, &h, payload, r.pos-h.size(), seg.baseOffset, l.opts.IndexIntervalBytes, &idx, &tidx); err != nil {
			return st, &CorruptionError{Log: l.name, File: f.Name(), Pos: r.pos - h.size(), Reason: err.Error()}
		}
	}
	if rebuild {
		base := 0
		if from != nil {
			base = from.idxEntries
		}
		if err := seg.idx.truncate(base); err != nil {
			return st, err
		}
		if err := seg.idx.appendRaw(idx); err != nil {
			return st, err
		}
		tbase := 0
		if from != nil {
			tbase = from.tidxEntries
		}
		if err := seg.tidx.truncate(tbase); err != nil {
			return st, err
		}
		if err := seg.tidx.appendRaw(tidx); err != nil {
			return st, err
		}
	}
	return st, nil
}
