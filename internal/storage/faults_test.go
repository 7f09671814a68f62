package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/testfs"
)

// appendUntilError appends entries until one fails and returns the entries
// acknowledged before and the error.
func appendUntilError(t *testing.T, l *Log, size int) ([]*pb.Entry, error) {
	t.Helper()
	var acked []*pb.Entry
	for range 100_000 {
		last, _ := l.LastIndex()
		e := ent(last+1, 1, testPayload(l.EndOffset(), 1, 1, size))
		if err := l.AppendSync(context.Background(), []*pb.Entry{e}, nil); err != nil {
			return acked, err
		}
		acked = append(acked, e)
	}
	t.Fatal("no error after 100000 appends")
	return nil, nil
}

func TestFaultDiskFull(t *testing.T) {
	mnt := testfs.SmallExt4(t, 24)
	// Fill most of the disk with a file we can delete later.
	filler := filepath.Join(mnt, "filler")
	testfs.Fill(t, filler, 14<<20)

	dir := filepath.Join(mnt, "log")
	c := startCommitter(t, "low")
	o := testOptions()
	o.SegmentBytes = 1 << 20
	l := mustOpen(t, dir, c, o)
	acked, err := appendUntilError(t, l, 8000)
	if len(acked) == 0 {
		t.Fatalf("first append failed: %v", err)
	}
	if !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error must say what and where: %v", err)
	}
	if err := l.AppendSync(context.Background(), []*pb.Entry{ent(uint64(len(acked)+1), 1, testPayload(l.EndOffset(), 1, 1, 10))}, nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after the failure: %v, want ErrFailed", err)
	}
	_ = l.Close()

	// The condition goes away; the log reopens, repaired, with every
	// acknowledged entry, and takes appends again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, c, o)
	defer l.Close()
	if last := checkAcked(t, l, acked); last < uint64(len(acked)) {
		t.Fatalf("lost acknowledged entries: have %d, acknowledged %d", last, len(acked))
	}
	appendRecords(t, l, 1, 20, 1, 0, 8000)
}

func TestFaultImmutableSegment(t *testing.T) {
	mnt := testfs.SmallExt4(t, 16)
	dir := filepath.Join(mnt, "log")
	c := startCommitter(t, "low")
	l := mustOpen(t, dir, c, testOptions())
	acked := appendRecords(t, l, 1, 50, 1, 0, 100)
	segs := segmentFiles(t, dir)
	active := segs[len(segs)-1]
	testfs.Chattr(t, "+i", active)
	_, err := appendUntilError(t, l, 100)
	if !strings.Contains(err.Error(), "operation not permitted") || !strings.Contains(err.Error(), active) {
		t.Fatalf("error must say what and where: %v", err)
	}
	_ = l.Close()
	// Opening it while it is still immutable fails and names the file.
	if _, err := Open(dir, c, testOptions()); err == nil || !strings.Contains(err.Error(), filepath.Base(active)) {
		t.Fatalf("open of an immutable segment: %v", err)
	}
	testfs.Chattr(t, "-i", active)
	l = mustOpen(t, dir, c, testOptions())
	defer l.Close()
	if last := checkAcked(t, l, acked); last != uint64(len(acked)) {
		t.Fatalf("have %d entries, acknowledged %d", last, len(acked))
	}
	appendRecords(t, l, 1, 5, 1, 0, 100)
}

func TestFaultMissingSegmentRestored(t *testing.T) {
	dir := t.TempDir()
	want := buildLog(t, dir)
	segs := segmentFiles(t, dir)
	victim := segs[len(segs)/2]
	saved, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	c := startCommitter(t, "low")
	_, err = Open(dir, c, testOptions())
	var ce *CorruptionError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "missing segment") {
		t.Fatalf("open with a missing segment: %v", err)
	}
	// Nothing was changed by the failed open: putting the file back heals it.
	if err := os.WriteFile(victim, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, dir, c, testOptions())
	defer l.Close()
	if last := checkPrefix(t, l, want); last != uint64(len(want)) {
		t.Fatalf("have %d of %d entries", last, len(want))
	}
}

// checkAcked verifies that the log starts with exactly the acked entries.
func checkAcked(t *testing.T, l *Log, acked []*pb.Entry) uint64 {
	t.Helper()
	last, _ := l.LastIndex()
	n := min(last, uint64(len(acked)))
	if n == 0 {
		return last
	}
	got := mustEntries(t, l, 1, n+1)
	for i, e := range got {
		if string(e.Data) != string(acked[i].Data) {
			t.Fatalf("entry %d differs", i+1)
		}
	}
	return last
}
