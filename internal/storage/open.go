package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/chronik-go/chronik/internal/wal"
)

// Open opens (creating if needed) the log in dir and recovers it: sealed
// segments are checked with two small reads each, the last segment is
// scanned from its checkpoint, a torn tail is truncated, and corruption is
// returned as a *CorruptionError without modifying anything.
func Open(dir string, c *wal.Committer, opts Options) (*Log, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	l := &Log{name: filepath.Base(dir), dir: dir, opts: opts, c: c, log: opts.Logger.With("log", filepath.Base(dir))}
	l.idle = sync.NewCond(&l.mu)
	l.cache.max = opts.TailCacheBytes
	err := l.recover()
	if err == nil && opts.Snapshots {
		err = l.loadSaved()
	}
	if err != nil {
		for _, s := range l.segs {
			_ = s.close()
		}
		return nil, err
	}
	return l, nil
}

func (l *Log) corrupt(file string, pos int64, format string, args ...any) error {
	return &CorruptionError{Log: l.name, File: file, Pos: pos, Reason: fmt.Sprintf(format, args...)}
}

func (l *Log) recover() error {
	if done, err := l.resumeInstall(); done || err != nil {
		return err
	}
	names, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("read log directory: %w", err)
	}
	var bases []uint64
	have := map[string]bool{}
	for _, e := range names {
		have[e.Name()] = true
		if b, ok := parseSegmentName(e.Name()); ok {
			bases = append(bases, b)
		}
	}
	slices.Sort(bases)
	// Leftovers of interrupted work: temp files and indexes whose segment
	// is gone (retention deletes the segment first).
	for _, e := range names {
		n := e.Name()
		stem := strings.TrimSuffix(strings.TrimSuffix(n, indexExt), timeIndexExt)
		orphan := stem != n && !have[stem+segmentExt]
		if strings.HasSuffix(n, ".tmp") || orphan {
			if err := os.Remove(filepath.Join(l.dir, n)); err != nil {
				return fmt.Errorf("remove leftover %s: %w", n, err)
			}
		}
	}
	if len(bases) == 0 {
		st := tailState{logStart: -1, maxTs: -1, timeIndexLast: -1}
		seg, err := l.createSegment(&st)
		if err != nil {
			return err
		}
		l.segs = []*segment{seg}
		l.cur, l.durable = st, st
		return nil
	}
	for i, b := range bases[:len(bases)-1] {
		seg, err := l.openSealed(b)
		if err != nil {
			return err
		}
		if i > 0 {
			prev := l.segs[i-1]
			if seg.baseIndex != prev.lastIndex+1 || seg.baseOffset != prev.endOffset {
				return l.corrupt(seg.path(segmentExt), 0, "segment starts at index %d offset %d but the previous one ends at index %d offset %d (missing segment?)",
					seg.baseIndex, seg.baseOffset, prev.lastIndex, prev.endOffset)
			}
		}
		l.segs = append(l.segs, seg)
	}
	return l.recoverActive(bases[len(bases)-1])
}

// openSealed checks a sealed segment by its header and segment-end frame and
// makes sure its indexes are usable.
func (l *Log) openSealed(base uint64) (*segment, error) {
	stem := segmentStem(l.dir, base)
	path := stem + segmentExt
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	hb := make([]byte, segmentHeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read segment header %s: %w", path, err)
	}
	h, err := decodeSegmentHeader(hb)
	if err != nil {
		return nil, l.corrupt(path, 0, "%v", err)
	}
	if h.baseIndex != base {
		return nil, l.corrupt(path, 0, "header says base index %d, file name %d", h.baseIndex, base)
	}
	if size < segmentHeaderSize+frameHeaderSize {
		return nil, l.corrupt(path, size, "sealed segment has no segment-end frame")
	}
	fb := make([]byte, frameHeaderSize)
	if _, err := f.ReadAt(fb, size-frameHeaderSize); err != nil {
		return nil, fmt.Errorf("read segment end %s: %w", path, err)
	}
	fh, _, err := decodeFrame(fb)
	if err != nil || fh.kind != kindSegmentEnd {
		return nil, l.corrupt(path, size-frameHeaderSize, "sealed segment does not end with a valid segment-end frame")
	}
	if fh.index+1 < h.baseIndex || fh.baseOffset < h.baseOffset {
		return nil, l.corrupt(path, size-frameHeaderSize, "segment-end frame before the segment's base")
	}
	seg := &segment{segmentHeader: h, stem: stem, lastIndex: fh.index, endOffset: fh.baseOffset, maxTs: fh.maxTs, size: size, sealed: true}
	seg.idx = &indexFile{path: stem + indexExt}
	seg.tidx = &indexFile{path: stem + timeIndexExt}
	ok, n, tn := l.checkSealedIndexes(seg)
	if !ok {
		l.log.Warn("rebuilding indexes of sealed segment", "segment", path)
		st, err := l.scanSegment(seg, nil, size, true)
		if err != nil {
			return nil, err
		}
		if st.lastIndex != seg.lastIndex || st.endOffset != seg.endOffset {
			return nil, l.corrupt(path, size, "segment content ends at index %d, its segment-end frame says %d", st.lastIndex, seg.lastIndex)
		}
		if st.maxTs >= 0 && st.maxTs > st.timeIndexLast {
			var e [indexEntrySize]byte
			putTimeEntry(e[:], timeEntry{ts: st.maxTs, relOffset: st.maxTsRel})
			if err := seg.tidx.appendRaw(e[:]); err != nil {
				return nil, err
			}
		}
		if err := errors.Join(seg.idx.sync(), seg.tidx.sync()); err != nil {
			return nil, err
		}
	} else {
		seg.idx.setTrusted(n)
		seg.tidx.setTrusted(tn)
	}
	_ = seg.idx.close()
	_ = seg.tidx.close()
	seg.mu.Lock()
	if seg.rf != nil {
		_ = seg.rf.Close()
		seg.rf = nil
	}
	seg.mu.Unlock()
	return seg, nil
}

// checkSealedIndexes reports whether both index files of a sealed segment
// exist, are whole entries and point inside the segment.
func (l *Log) checkSealedIndexes(seg *segment) (bool, int, int) {
	ib, err := readIndexFile(seg.path(indexExt))
	if err != nil {
		return false, 0, 0
	}
	tb, err := readIndexFile(seg.path(timeIndexExt))
	if err != nil {
		return false, 0, 0
	}
	n, tn := len(ib)/indexEntrySize, len(tb)/indexEntrySize
	if n > 0 {
		e := getOffsetEntry(ib[len(ib)-indexEntrySize:])
		if int64(e.pos) >= seg.size-frameHeaderSize || uint64(e.relIndex) > seg.lastIndex-seg.baseIndex {
			return false, 0, 0
		}
	}
	if tn > 0 {
		e := getTimeEntry(tb[len(tb)-indexEntrySize:])
		if e.ts != seg.maxTs {
			return false, 0, 0
		}
	}
	return true, n, tn
}

// recoverActive recovers the last segment.
func (l *Log) recoverActive(base uint64) error {
	stem := segmentStem(l.dir, base)
	path := stem + segmentExt
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	size := fi.Size()
	hb := make([]byte, segmentHeaderSize)
	n, _ := f.ReadAt(hb, 0)
	h, herr := decodeSegmentHeader(hb[:n])
	if herr == nil && h.baseIndex != base {
		herr = fmt.Errorf("header says base index %d", h.baseIndex)
	}
	if herr != nil {
		// A segment whose creation was interrupted holds nothing acknowledged:
		// nothing is appended before its header and state are durable. If
		// any valid frame follows the header, it was real: corruption.
		_, found, ferr := findValidFrame(f, min(segmentHeaderSize, size), size)
		_ = f.Close()
		if ferr != nil {
			return ferr
		}
		if found {
			return l.corrupt(path, 0, "%v", herr)
		}
		l.log.Warn("removing segment whose creation was interrupted", "segment", path, "bytes", size)
		for _, ext := range []string{segmentExt, indexExt, timeIndexExt} {
			if err := os.Remove(stem + ext); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if len(l.segs) == 0 {
			return l.recover()
		}
		// The previous segment is sealed: recover its state and roll.
		prev := l.segs[len(l.segs)-1]
		l.segs = l.segs[:len(l.segs)-1]
		_ = prev.close()
		return l.recoverSealedTail(prev)
	}
	seg := &segment{segmentHeader: h, stem: stem, maxTs: -1}
	seg.idx = &indexFile{path: stem + indexExt}
	seg.tidx = &indexFile{path: stem + timeIndexExt}
	seg.wf = wal.NewFile(f, size)
	if len(l.segs) > 0 {
		prev := l.segs[len(l.segs)-1]
		if h.baseIndex != prev.lastIndex+1 || h.baseOffset != prev.endOffset {
			_ = f.Close()
			return l.corrupt(path, 0, "segment starts at index %d offset %d but the previous one ends at index %d offset %d (missing segment?)",
				h.baseIndex, h.baseOffset, prev.lastIndex, prev.endOffset)
		}
	}
	l.segs = append(l.segs, seg)
	return l.scanActive(seg, size)
}

// recoverSealedTail makes a sealed last segment the base of a new active
// one (the roll that sealed it did not finish).
func (l *Log) recoverSealedTail(prev *segment) error {
	f, err := os.OpenFile(prev.path(segmentExt), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	prev.wf = wal.NewFile(f, prev.size)
	prev.sealed = false
	l.segs = append(l.segs, prev)
	return l.scanActive(prev, prev.size)
}

// scanActive scans the last segment from its checkpoint to the end,
// repairing a torn tail, and sets the log's state.
func (l *Log) scanActive(seg *segment, size int64) error {
	f := seg.wf.OS()
	from, err := l.loadCheckpoint(seg, size)
	if err != nil {
		return err
	}
	start := tailState{segBase: seg.baseIndex, pos: segmentHeaderSize, lastIndex: seg.baseIndex - 1, lastTerm: seg.prevTerm,
		endOffset: seg.baseOffset, maxTs: -1, timeIndexLast: -1, logStart: -1}
	if from != nil {
		start = *from
	}
	if err := seg.idx.truncate(start.idxEntries); err != nil {
		return err
	}
	if err := seg.tidx.truncate(start.tidxEntries); err != nil {
		return err
	}
	l.terms.add(start.lastIndex, start.lastTerm)
	st := start
	r := frameReader{f: f, pos: st.pos, end: size}
	var idx, tidx []byte
	sealed := false
	for {
		pos := r.pos
		h, payload, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && sealed {
			return l.corrupt(f.Name(), pos, "frame after the segment-end frame")
		}
		if err == nil {
			if aerr := advance(&st, &h, payload, pos, seg.baseOffset, l.opts.IndexIntervalBytes, &idx, &tidx); aerr != nil {
				return l.corrupt(f.Name(), pos, "%v", aerr)
			}
			if h.kind.isEntry() {
				l.terms.add(h.index, h.term)
			}
			sealed = h.kind == kindSegmentEnd
			continue
		}
		if !isFrameError(err) {
			return err
		}
		at, found, ferr := findValidFrame(f, pos+1, size)
		if ferr != nil {
			return ferr
		}
		if found {
			return l.corrupt(f.Name(), pos, "%v; a valid frame follows at byte %d, so this is not a torn write", err, at)
		}
		l.log.Warn("truncating torn tail", "segment", f.Name(), "pos", pos, "bytes", size-pos, "reason", err.Error())
		if err := f.Truncate(pos); err != nil {
			return fmt.Errorf("truncate torn tail of %s: %w", f.Name(), err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", f.Name(), err)
		}
		size = pos
		break
	}
	if err := seg.idx.appendRaw(idx); err != nil {
		return err
	}
	if err := seg.tidx.appendRaw(tidx); err != nil {
		return err
	}
	seg.wf.Reset(size)
	if sealed {
		// Drop the segment-end frame: the roll is redone below.
		st.pos -= frameHeaderSize
		if err := f.Truncate(st.pos); err != nil {
			return err
		}
		seg.wf.Reset(st.pos)
	}
	seg.size = st.pos
	seg.lastIndex, seg.endOffset, seg.maxTs = st.lastIndex, st.endOffset, st.maxTs
	l.cur, l.durable = st, st
	l.applied = st.hs.applied
	if l.cur.logStart < l.segs[0].baseOffset {
		l.cur.logStart = l.segs[0].baseOffset
	}
	if sealed {
		if err := l.rollLocked(); err != nil {
			return err
		}
	}
	return l.checkpointLocked()
}

// loadCheckpoint returns the checkpointed state of seg if the checkpoint is
// usable, or nil. A checkpoint vouching for more bytes than the segment
// holds means durable data was lost: that is corruption, not a torn write.
func (l *Log) loadCheckpoint(seg *segment, size int64) (*tailState, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		l.log.Warn("ignoring unreadable checkpoint", "err", err)
		return nil, nil
	}
	t, err := decodeCheckpoint(b)
	if err != nil {
		l.log.Warn("ignoring damaged checkpoint", "err", err)
		return nil, nil
	}
	if t.segBase != seg.baseIndex {
		return nil, nil // written before a roll
	}
	if t.pos > size {
		return nil, l.corrupt(seg.path(segmentExt), size, "segment is %d bytes but %d bytes were durable at the last checkpoint", size, t.pos)
	}
	ib, ierr := os.Stat(seg.path(indexExt))
	tb, terr := os.Stat(seg.path(timeIndexExt))
	if ierr != nil || terr != nil || ib.Size() < int64(t.idxEntries)*indexEntrySize || tb.Size() < int64(t.tidxEntries)*indexEntrySize {
		l.log.Warn("checkpoint refers to index entries that are missing; scanning the whole segment")
		return nil, nil
	}
	return t, nil
}
