package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "low")
	l := mustOpen(t, dir, c, testOptions())
	written := appendRecords(t, l, 1, 500, 3, 1000, 300)
	if got := l.EndOffset(); got != 1500 {
		t.Fatalf("end offset %d, want 1500", got)
	}
	if l.Segments() < 3 {
		t.Fatalf("want several segments with 64 KiB segments, got %d", l.Segments())
	}
	check := func(l *Log) {
		t.Helper()
		first, _ := l.FirstIndex()
		last, _ := l.LastIndex()
		if first != 1 || last != 500 {
			t.Fatalf("first/last = %d/%d, want 1/500", first, last)
		}
		got := mustEntries(t, l, 1, 501)
		for i, e := range got {
			w := written[i]
			if e.GetIndex() != w.GetIndex() || e.GetTerm() != w.GetTerm() || !bytes.Equal(e.Data, w.Data) {
				t.Fatalf("entry %d differs after read", w.GetIndex())
			}
		}
		for _, i := range []uint64{0, 1, 77, 250, 500} {
			term, err := l.Term(i)
			want := uint64(1)
			if i == 0 {
				want = 0
			}
			if err != nil || term != want {
				t.Fatalf("Term(%d) = %d, %v", i, term, err)
			}
		}
		if _, err := l.Term(501); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("Term(501) err = %v, want ErrUnavailable", err)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := mustOpen(t, dir, c, testOptions())
	defer l2.Close()
	check(l2)
	// The tail cache is empty after a reopen, so these reads hit the disk.
	if l2.EndOffset() != 1500 {
		t.Fatalf("end offset after reopen %d", l2.EndOffset())
	}
}

func TestReadRecordsAndTimestamps(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "low")
	l := mustOpen(t, dir, c, testOptions())
	defer l.Close()
	appendRecords(t, l, 1, 400, 5, 10_000, 200) // offsets 0..1999, entry i has ts 10000+i
	for _, o := range []int64{0, 4, 5, 999, 1000, 1999} {
		bs, err := l.ReadRecords(o, 1, 2000)
		if err != nil || len(bs) != 1 {
			t.Fatalf("ReadRecords(%d): %v, %d batches", o, err, len(bs))
		}
		if bs[0].BaseOffset > o || bs[0].EndOffset <= o {
			t.Fatalf("ReadRecords(%d) returned batch [%d,%d)", o, bs[0].BaseOffset, bs[0].EndOffset)
		}
		m, _, _ := testMeta(bs[0].Data)
		if m.BaseOffset != bs[0].BaseOffset {
			t.Fatalf("payload base %d, header base %d", m.BaseOffset, bs[0].BaseOffset)
		}
	}
	// Limit (high watermark) and max bytes.
	bs, err := l.ReadRecords(100, 1<<20, 130)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 6 || bs[len(bs)-1].EndOffset != 130 {
		t.Fatalf("limit 130: %d batches ending %d", len(bs), bs[len(bs)-1].EndOffset)
	}
	if _, err := l.ReadRecords(2001, 100, 3000); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("beyond end: %v", err)
	}
	for _, ts := range []int64{0, 10_000, 10_123, 10_399} {
		b, ok, err := l.OffsetForTimestamp(ts)
		want := max(ts-10_000, 0) * 5
		if err != nil || !ok || b.BaseOffset != want {
			t.Fatalf("OffsetForTimestamp(%d) = %d %v %v, want %d", ts, b.BaseOffset, ok, err, want)
		}
	}
	if _, ok, err := l.OffsetForTimestamp(10_400); ok || err != nil {
		t.Fatalf("timestamp after all records: ok=%v err=%v", ok, err)
	}
}

func TestTruncateOnConflict(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "low")
	l := mustOpen(t, dir, c, testOptions())
	appendRecords(t, l, 1, 300, 1, 0, 300)
	// A new leader in term 2 overwrites from index 120 on.
	var ents []*pb.Entry
	for i := range 10 {
		idx := uint64(120 + i)
		ents = append(ents, ent(idx, 2, testPayload(int64(idx-1), 1, 5, 100)))
	}
	if err := l.AppendSync(context.Background(), ents, hardState(2, 2, 100)); err != nil {
		t.Fatal(err)
	}
	check := func(l *Log) {
		t.Helper()
		last, _ := l.LastIndex()
		if last != 129 || l.EndOffset() != 129 {
			t.Fatalf("after truncation last=%d end=%d", last, l.EndOffset())
		}
		for i, want := range map[uint64]uint64{119: 1, 120: 2, 129: 2} {
			if term, err := l.Term(i); err != nil || term != want {
				t.Fatalf("Term(%d) = %d %v, want %d", i, term, err, want)
			}
		}
		es := mustEntries(t, l, 100, 130)
		if len(es) != 30 || es[29].GetTerm() != 2 {
			t.Fatalf("entries after truncation: %d", len(es))
		}
		hs, _, _ := l.InitialState()
		if hs.GetTerm() != 2 || hs.GetVote() != 2 || hs.GetCommit() != 100 {
			t.Fatalf("hard state %v", hs)
		}
	}
	check(l)
	_ = l.Close()
	l = mustOpen(t, dir, c, testOptions())
	defer l.Close()
	check(l)
}

func TestHardStateAndConfStateSurviveRolls(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "low")
	l := mustOpen(t, dir, c, testOptions())
	appendRecords(t, l, 3, 10, 1, 0, 10)
	if err := l.AppendSync(context.Background(), nil, hardState(3, 1, 10)); err != nil {
		t.Fatal(err)
	}
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	if err := l.SetConfState(context.Background(), 5, cs); err != nil {
		t.Fatal(err)
	}
	// Many rolls later, the state frames are only in old segments... and
	// re-emitted at the start of each new one.
	appendRecords(t, l, 3, 600, 1, 0, 300)
	_ = l.Close()
	// Without a checkpoint, recovery scans only the last segment.
	if err := os.Remove(filepath.Join(dir, checkpointFile)); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, c, testOptions())
	defer l.Close()
	hs, gotCS, _ := l.InitialState()
	if hs.GetTerm() != 3 || hs.GetVote() != 1 || hs.GetCommit() != 10 {
		t.Fatalf("hard state %v", hs)
	}
	if len(gotCS.GetVoters()) != 3 {
		t.Fatalf("conf state %v", gotCS)
	}
}

func TestRetentionAndLogStart(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "low")
	o := testOptions()
	o.RetentionBytes = 200 << 10
	l := mustOpen(t, dir, c, o)
	defer l.Close()
	appendRecords(t, l, 1, 2000, 1, 0, 300) // ~700 KiB
	before := l.Size()
	if n, _ := l.EnforceRetention(); n != 0 {
		t.Fatalf("retention deleted %d segments of entries never applied", n)
	}
	l.SetApplied(2000)
	n, err := l.EnforceRetention()
	if err != nil || n == 0 {
		t.Fatalf("retention deleted %d segments: %v", n, err)
	}
	if l.Size() >= before || l.Size() < 200<<10 {
		t.Fatalf("size %d after retention (was %d, limit %d)", l.Size(), before, 200<<10)
	}
	first, _ := l.FirstIndex()
	if _, err := l.Entries(first-1, first, 100); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("entries below first: %v", err)
	}
	snap, _ := l.Snapshot()
	if snap.GetMetadata().GetIndex() != first-1 || snap.GetMetadata().GetTerm() != 1 {
		t.Fatalf("snapshot %v, first %d", snap.GetMetadata(), first)
	}
	ls := l.LogStartOffset()
	if ls != int64(first-1) {
		t.Fatalf("log start %d, first index %d", ls, first)
	}
	// DeleteRecords inside a segment.
	if err := l.AdvanceLogStart(context.Background(), ls+37); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadRecords(ls+36, 100, 2000); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below log start: %v", err)
	}
	_ = l.Close()
	l2 := mustOpen(t, dir, c, o)
	defer l2.Close()
	if got := l2.LogStartOffset(); got != ls+37 {
		t.Fatalf("log start after reopen %d, want %d", got, ls+37)
	}
}

// Index entries of the active segment collect in memory and reach the file
// in batches. Lookups must see them before they are written, and a crash
// (the files as a kill -9 leaves them: written, not flushed from memory)
// must lose nothing: recovery rebuilds the missing entries from the segment.
func TestIndexTailLookupsAndCrashImage(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "low")
	o := testOptions()
	o.SegmentBytes = 64 << 20 // one segment: every index entry is the active one's
	l := mustOpen(t, dir, c, o)
	defer l.Close()
	appendRecords(t, l, 1, 120, 5, 10_000, 200) // offsets 0..599, entry i has ts 10000+i

	seg := l.active()
	fileEntries := func(ext string) int {
		fi, err := os.Stat(seg.path(ext))
		if err != nil {
			t.Fatal(err)
		}
		return int(fi.Size() / indexEntrySize)
	}
	l.mu.Lock()
	inMemory := seg.idx.n
	l.mu.Unlock()
	if inMemory < 20 || fileEntries(indexExt) >= inMemory {
		t.Fatalf("want index entries held back from the file: %d entries, %d in the file", inMemory, fileEntries(indexExt))
	}
	lookups := func(l *Log) {
		t.Helper()
		for _, off := range []int64{0, 4, 5, 123, 299, 300, 598, 599} {
			bs, err := l.ReadRecords(off, 1, 600)
			if err != nil || len(bs) != 1 || bs[0].BaseOffset > off || bs[0].EndOffset <= off {
				t.Fatalf("ReadRecords(%d): %v %+v", off, err, bs)
			}
		}
		for _, ts := range []int64{10_000, 10_050, 10_119} {
			b, ok, err := l.OffsetForTimestamp(ts)
			if want := (ts - 10_000) * 5; err != nil || !ok || b.BaseOffset != want {
				t.Fatalf("OffsetForTimestamp(%d) = %d %v %v, want %d", ts, b.BaseOffset, ok, err, want)
			}
		}
	}
	lookups(l)

	// The crash image: copy the directory as it is on disk now.
	crash := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crash, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l2 := mustOpen(t, crash, c, o)
	defer l2.Close()
	if l2.EndOffset() != 600 {
		t.Fatalf("end offset after the crash %d, want 600", l2.EndOffset())
	}
	lookups(l2)

	// Enough entries to fill the tail reach the file without a sync.
	before := fileEntries(indexExt)
	appendRecords(t, l, 1, 1500, 5, 10_120, 200)
	if fileEntries(indexExt) < before+indexTailBytes/indexEntrySize {
		t.Fatalf("index file grew from %d to %d entries after 1500 more appends", before, fileEntries(indexExt))
	}
	lookups(l)
}
