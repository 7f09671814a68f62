package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// Log implements raft.Storage over its segments.
var _ raft.Storage = (*Log)(nil)

// InitialState returns the persisted hard state and conf state.
func (l *Log) InitialState() (*pb.HardState, *pb.ConfState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := l.cur.hs
	t, v, c := hs.term, hs.vote, hs.commit
	cs := &pb.ConfState{}
	if l.cur.conf != nil {
		cs = pb.EnsureConfState(l.cur.conf)
	}
	return &pb.HardState{Term: &t, Vote: &v, Commit: &c}, cs, nil
}

// Applied returns the applied index persisted with the last hard state.
func (l *Log) Applied() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur.hs.applied
}

// FirstIndex returns the first index that Entries can serve.
func (l *Log) FirstIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[0].baseIndex, nil
}

// LastIndex returns the index of the last entry (submitted, durable or not).
func (l *Log) LastIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur.lastIndex, nil
}

// Term returns the term of entry i, for i in [FirstIndex-1, LastIndex].
func (l *Log) Term(i uint64) (uint64, error) {
	l.mu.Lock()
	first := l.segs[0]
	switch {
	case i+1 == first.baseIndex:
		l.mu.Unlock()
		return first.prevTerm, nil
	case i+1 < first.baseIndex:
		l.mu.Unlock()
		return 0, raft.ErrCompacted
	case i > l.cur.lastIndex:
		l.mu.Unlock()
		return 0, raft.ErrUnavailable
	}
	if t, ok := l.terms.lookup(i, l.cur.lastIndex); ok {
		l.mu.Unlock()
		return t, nil
	}
	seg := l.segmentForIndex(i)
	l.mu.Unlock()
	h, _, err := l.readEntryAt(seg, i, false)
	if err != nil {
		return 0, err
	}
	return h.term, nil
}

// Entries returns entries [lo, hi), at most maxSize bytes but at least one.
func (l *Log) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	l.mu.Lock()
	if lo < l.segs[0].baseIndex {
		l.mu.Unlock()
		return nil, raft.ErrCompacted
	}
	if hi > l.cur.lastIndex+1 {
		last := l.cur.lastIndex
		l.mu.Unlock()
		return nil, fmt.Errorf("entries [%d, %d) beyond last index %d: %w", lo, hi, last, raft.ErrUnavailable)
	}
	if lo >= hi {
		l.mu.Unlock()
		return nil, nil
	}
	if ents, ok := l.cache.get(lo, hi, maxSize); ok {
		l.mu.Unlock()
		return ents, nil
	}
	k := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].baseIndex > lo }) - 1
	segs, ends := l.readableFrom(k)
	l.mu.Unlock()

	var out []*pb.Entry
	var size uint64
	next := lo
	for i, seg := range segs {
		f, err := seg.reader()
		if err != nil {
			return nil, l.readErr(err, lo)
		}
		pos := int64(segmentHeaderSize)
		if i == 0 {
			if pos, err = l.seekIndex(seg, lo); err != nil {
				return nil, l.readErr(err, lo)
			}
		}
		r := frameReader{f: f, pos: pos, end: ends[i], retain: true, corrupt: l.markCorrupt}
		for next < hi {
			h, payload, err := r.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if len(out) > 0 && errors.Is(err, ErrCorrupt) {
					// Entries before the damage are good; raft accepts
					// fewer than asked, and asks again at the damage.
					return out, nil
				}
				return nil, l.readErr(err, lo)
			}
			if !h.kind.isEntry() || h.index < next {
				continue
			}
			if h.index != next {
				return nil, &CorruptionError{Log: l.name, File: f.Name(), Pos: r.pos - h.size(), Reason: fmt.Sprintf("expected entry %d, found %d", next, h.index)}
			}
			e := entryFromFrame(&h, payload)
			size += uint64(len(payload) + entryOverhead)
			if len(out) > 0 && size > maxSize {
				return out, nil
			}
			out = append(out, e)
			next++
		}
		if next >= hi {
			break
		}
	}
	if len(out) == 0 {
		return nil, raft.ErrUnavailable
	}
	return out, nil
}

// readableFrom returns the segments from the k-th on and how far each may
// be read (what was written, for the active one). mu held.
func (l *Log) readableFrom(k int) ([]*segment, []int64) {
	segs := append([]*segment(nil), l.segs[k:]...)
	ends := make([]int64, len(segs))
	for i, s := range segs {
		ends[i] = s.size
		if s.wf != nil {
			ends[i] = s.wf.Written()
		}
	}
	return segs, ends
}

func entryFromFrame(h *frameHeader, payload []byte) *pb.Entry {
	t, idx := h.term, h.index
	typ := pb.EntryNormal
	switch h.kind {
	case kindConfChange:
		typ = pb.EntryConfChange
	case kindConfChangeV2:
		typ = pb.EntryConfChangeV2
	}
	e := &pb.Entry{Term: &t, Index: &idx, Type: &typ}
	if len(payload) > 0 {
		e.Data = payload
	}
	return e
}

// readErr maps errors from reading files that retention may have removed.
func (l *Log) readErr(err error, lo uint64) error {
	if errors.Is(err, os.ErrClosed) || errors.Is(err, os.ErrNotExist) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if lo < l.segs[0].baseIndex {
			return raft.ErrCompacted
		}
	}
	return err
}

// segmentForIndex returns the segment holding Raft index i. mu held.
func (l *Log) segmentForIndex(i uint64) *segment {
	k := sort.Search(len(l.segs), func(j int) bool { return l.segs[j].baseIndex > i }) - 1
	return l.segs[max(k, 0)]
}

// segmentForOffset returns the index in l.segs of the segment holding Kafka
// offset o (the last segment whose base offset is <= o). mu held.
func (l *Log) segmentForOffset(o int64) int {
	k := sort.Search(len(l.segs), func(j int) bool { return l.segs[j].baseOffset > o }) - 1
	// Empty segments share a base offset with their successor; the last
	// one holding o is right, but skip back over ones that end before o.
	return max(k, 0)
}

// seekIndex returns the position to start reading seg at to find Raft index i.
func (l *Log) seekIndex(seg *segment, i uint64) (int64, error) {
	l.mu.Lock()
	n := seg.idx.n
	l.mu.Unlock()
	_, b, err := seg.idx.search(n, i-seg.baseIndex, offsetKeyIndex)
	if err != nil || b == nil {
		return segmentHeaderSize, err
	}
	return int64(getOffsetEntry(b).pos), nil
}

// seekOffset returns the position to start reading seg at to find offset o.
func (l *Log) seekOffset(seg *segment, o int64) (int64, error) {
	l.mu.Lock()
	n := seg.idx.n
	l.mu.Unlock()
	if o < seg.baseOffset {
		return segmentHeaderSize, nil
	}
	_, b, err := seg.idx.search(n, uint64(o-seg.baseOffset), offsetKeyOffset)
	if err != nil || b == nil {
		return segmentHeaderSize, err
	}
	return int64(getOffsetEntry(b).pos), nil
}

// readEntryAt reads the entry frame with Raft index i from seg.
func (l *Log) readEntryAt(seg *segment, i uint64, withPayload bool) (frameHeader, []byte, error) {
	f, err := seg.reader()
	if err != nil {
		return frameHeader{}, nil, l.readErr(err, i)
	}
	pos, err := l.seekIndex(seg, i)
	if err != nil {
		return frameHeader{}, nil, err
	}
	end := seg.size
	if seg.wf != nil {
		end = seg.wf.Written()
	}
	r := frameReader{f: f, pos: pos, end: end, retain: withPayload, corrupt: l.markCorrupt}
	for {
		h, payload, err := r.next()
		if errors.Is(err, io.EOF) {
			return h, nil, fmt.Errorf("entry %d not found in %s: %w", i, f.Name(), raft.ErrUnavailable)
		}
		if err != nil {
			return h, nil, l.readErr(err, i)
		}
		if h.kind.isEntry() && h.index == i {
			return h, payload, nil
		}
		if h.kind.isEntry() && h.index > i {
			return h, nil, fmt.Errorf("entry %d not found in %s: %w", i, f.Name(), raft.ErrUnavailable)
		}
	}
}

// entryPosition returns the file position of entry frame i in seg. mu held
// (used by truncation, with no write pending).
func (l *Log) entryPosition(seg *segment, i uint64) (int64, error) {
	f, err := seg.reader()
	if err != nil {
		return 0, err
	}
	_, b, err := seg.idx.search(seg.idx.n, i-seg.baseIndex, offsetKeyIndex)
	if err != nil {
		return 0, err
	}
	pos := int64(segmentHeaderSize)
	if b != nil {
		pos = int64(getOffsetEntry(b).pos)
	}
	r := frameReader{f: f, pos: pos, end: seg.size}
	for {
		at := r.pos
		h, _, err := r.next()
		if err != nil {
			return 0, fmt.Errorf("find entry %d in %s: %w", i, f.Name(), err)
		}
		if h.kind.isEntry() && h.index == i {
			return at, nil
		}
	}
}

// Snapshot returns the compaction point: the log starts at FirstIndex and
// everything before it was deleted by retention. Its data (SnapshotData)
// says where Kafka offsets continue and where the log starts, plus the
// owner's state (a partition's producers): a follower that receives it
// empties its log and continues from there (InstallSnapshot), as a Kafka
// follower does after the leader's log start moved past it.
func (l *Log) Snapshot() (*pb.Snapshot, error) {
	l.mu.Lock()
	first := l.segs[0]
	idx, term := first.baseIndex-1, first.prevTerm
	cs := pb.EnsureConfState(l.cur.conf)
	if sv := l.saved; sv != nil && sv.index >= idx {
		// A log that keeps snapshots serves its last saved one: the
		// entries after it are all still here.
		l.mu.Unlock()
		d := SnapshotData{LogStart: -1, Extra: sv.data}
		return &pb.Snapshot{Data: EncodeSnapshotData(d), Metadata: &pb.SnapshotMetadata{Index: &sv.index, Term: &sv.term, ConfState: cs}}, nil
	}
	d := SnapshotData{NextOffset: first.baseOffset, LogStart: l.logStartLocked()}
	fn := l.snapData
	l.mu.Unlock()
	if fn != nil {
		extra, err := fn()
		if err != nil {
			return nil, fmt.Errorf("snapshot of %s: %w", l.name, err)
		}
		d.Extra = extra
	}
	return &pb.Snapshot{Data: EncodeSnapshotData(d), Metadata: &pb.SnapshotMetadata{Index: &idx, Term: &term, ConfState: cs}}, nil
}
