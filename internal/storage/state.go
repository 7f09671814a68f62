package storage

import (
	"fmt"
	"sort"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// advance applies frame h, found at position pos of the segment that st
// describes, to st, and appends index entries to idx and tidx when due. It
// is the one place that defines how frames change a log's state, shared by
// appends, recovery scans and index rebuilds. It rejects frames that break
// the log's invariants (consecutive indexes, non-decreasing terms,
// contiguous offsets).
func advance(st *tailState, h *frameHeader, payload []byte, pos int64, segBaseOffset int64, interval int64, idx, tidx *[]byte) error {
	if pos != st.pos {
		return fmt.Errorf("frame at %d, expected %d", pos, st.pos)
	}
	switch {
	case h.kind.isEntry():
		if h.index != st.lastIndex+1 {
			return fmt.Errorf("entry index %d does not follow %d", h.index, st.lastIndex)
		}
		if h.term < st.lastTerm {
			return fmt.Errorf("entry %d term %d below previous term %d", h.index, h.term, st.lastTerm)
		}
		if h.baseOffset != st.endOffset {
			return fmt.Errorf("entry %d base offset %d does not continue end offset %d", h.index, h.baseOffset, st.endOffset)
		}
		rel := h.baseOffset - segBaseOffset
		if rel < 0 || rel+int64(h.offsetCount) > 1<<32-1 || h.index-st.segBase > 1<<32-1 || pos > maxSegmentBytes {
			return fmt.Errorf("entry %d does not fit the segment's 32-bit relative fields", h.index)
		}
		if h.maxTs > st.maxTs {
			st.maxTs, st.maxTsRel = h.maxTs, uint32(rel)
		}
		if st.sinceIndex >= interval {
			var e [indexEntrySize]byte
			putOffsetEntry(e[:], offsetEntry{relIndex: uint32(h.index - st.segBase), relOffset: uint32(rel), pos: uint32(pos)})
			*idx = append(*idx, e[:]...)
			st.idxEntries++
			if st.maxTs >= 0 && st.maxTs > st.timeIndexLast {
				putTimeEntry(e[:], timeEntry{ts: st.maxTs, relOffset: st.maxTsRel})
				*tidx = append(*tidx, e[:]...)
				st.tidxEntries++
				st.timeIndexLast = st.maxTs
			}
			st.sinceIndex = 0
		}
		st.lastIndex, st.lastTerm, st.endOffset = h.index, h.term, h.endOffset()
	case h.kind == kindHardState:
		st.hs = parseHardStatePayload(h.term, payload)
	case h.kind == kindConfState:
		cs := &pb.ConfState{}
		if err := proto.Unmarshal(payload, cs); err != nil {
			return fmt.Errorf("conf state frame: %w", err)
		}
		st.conf, st.confIndex = cs, h.index
	case h.kind == kindLogStart:
		st.logStart = int64(leUint64(payload))
	case h.kind == kindSegmentEnd:
		// Only meaningful to the caller (the segment is sealed).
	}
	st.sinceIndex += h.size()
	st.pos += h.size()
	return nil
}

// termRuns records where terms start in the recent part of the log so that
// Term is answered without I/O. Runs are few (one per election); beyond
// maxTermRuns the oldest are forgotten and answered from disk.
type termRuns struct {
	runs []termRun
}

type termRun struct{ start, term uint64 }

const maxTermRuns = 1024

func (t *termRuns) add(index, term uint64) {
	if n := len(t.runs); n > 0 && t.runs[n-1].term == term {
		return
	}
	t.runs = append(t.runs, termRun{index, term})
	if len(t.runs) > maxTermRuns {
		t.runs = append(t.runs[:0:0], t.runs[len(t.runs)/2:]...)
	}
}

// truncate forgets everything from index on.
func (t *termRuns) truncate(index uint64) {
	i := sort.Search(len(t.runs), func(i int) bool { return t.runs[i].start >= index })
	t.runs = t.runs[:i]
}

// lookup returns the term of index i if the runs cover it; last is the
// log's last index (runs are open-ended).
func (t *termRuns) lookup(i, last uint64) (uint64, bool) {
	if len(t.runs) == 0 || i < t.runs[0].start || i > last {
		return 0, false
	}
	j := sort.Search(len(t.runs), func(j int) bool { return t.runs[j].start > i }) - 1
	return t.runs[j].term, true
}

// tailCache keeps the most recent entries in memory so that raft's reads
// of just-appended entries (to apply them, or to send them to followers)
// do not touch the disk. Entries not yet applied stay until they are
// (raft reads every committed entry once to apply it), up to hardMax;
// applied ones are kept within max bytes.
type tailCache struct {
	ents    []*pb.Entry
	bytes   int
	max     int
	applied uint64
}

const (
	entryOverhead = 64
	// unappliedCacheMax bounds what unapplied entries may pin; beyond it
	// raft reads them back from the page cache. Produce backpressure keeps
	// a leader far below it.
	unappliedCacheMax = 64 << 20
)

func (c *tailCache) append(e *pb.Entry) {
	if n := len(c.ents); n > 0 && c.ents[n-1].GetIndex()+1 != e.GetIndex() {
		c.reset()
	}
	c.ents = append(c.ents, e)
	c.bytes += len(e.Data) + entryOverhead
	c.evict()
}

// setApplied lets entries up to i be evicted.
func (c *tailCache) setApplied(i uint64) {
	c.applied = max(c.applied, i)
	c.evict()
}

func (c *tailCache) evict() {
	drop := 0
	for drop < len(c.ents) && c.bytes > c.max {
		if c.ents[drop].GetIndex() > c.applied && c.bytes <= unappliedCacheMax {
			break
		}
		c.bytes -= len(c.ents[drop].Data) + entryOverhead
		drop++
	}
	if drop > 0 {
		clear(c.ents[:drop])
		c.ents = c.ents[drop:]
		if cap(c.ents) > 4*len(c.ents)+64 {
			c.ents = append([]*pb.Entry(nil), c.ents...)
		}
	}
}

func (c *tailCache) reset() { clear(c.ents); c.ents, c.bytes = nil, 0 }

// truncate drops entries from index on.
func (c *tailCache) truncate(index uint64) {
	for n := len(c.ents); n > 0 && c.ents[n-1].GetIndex() >= index; n-- {
		c.bytes -= len(c.ents[n-1].Data) + entryOverhead
		c.ents[n-1] = nil
		c.ents = c.ents[:n-1]
	}
}

// get returns entries [lo, hi) limited by maxSize (at least one) if the
// cache holds lo.
func (c *tailCache) get(lo, hi, maxSize uint64) ([]*pb.Entry, bool) {
	if len(c.ents) == 0 || lo < c.ents[0].GetIndex() || lo > c.ents[len(c.ents)-1].GetIndex() {
		return nil, false
	}
	first := c.ents[0].GetIndex()
	end := min(hi, c.ents[len(c.ents)-1].GetIndex()+1)
	var out []*pb.Entry
	var size uint64
	for i := lo; i < end; i++ {
		e := c.ents[i-first]
		size += uint64(len(e.Data) + entryOverhead)
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
	}
	return out, true
}

func leUint64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
