package storage

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// segmentFiles returns the log's segment paths in order.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// buildLog writes a log with several segments and closes it.
func buildLog(t *testing.T, dir string) []*pb.Entry {
	t.Helper()
	c := startCommitter(t, "low")
	l := mustOpen(t, dir, c, testOptions())
	ents := appendRecords(t, l, 1, 600, 2, 100, 250)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return ents
}

// checkPrefix asserts that the log holds exactly a prefix of want, each
// entry intact.
func checkPrefix(t *testing.T, l *Log, want []*pb.Entry) uint64 {
	t.Helper()
	last, _ := l.LastIndex()
	if last > uint64(len(want)) {
		t.Fatalf("log has %d entries, more than written (%d)", last, len(want))
	}
	if last == 0 {
		return 0
	}
	got := mustEntries(t, l, 1, last+1)
	for i, e := range got {
		if !bytes.Equal(e.Data, want[i].Data) || e.GetTerm() != want[i].GetTerm() {
			t.Fatalf("entry %d differs from what was written", i+1)
		}
	}
	if l.EndOffset() != int64(last)*2 {
		t.Fatalf("end offset %d for %d entries", l.EndOffset(), last)
	}
	return last
}

// TestTornTailTruncatedAtEveryKindOfPosition cuts the last segment at random
// byte positions: recovery must keep exactly the complete frames before the
// cut and never return a partial entry.
func TestTornTailTruncatedAtRandomPositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 40 {
		dir := t.TempDir()
		want := buildLog(t, dir)
		segs := segmentFiles(t, dir)
		lastSeg := segs[len(segs)-1]
		fi, _ := os.Stat(lastSeg)
		cut := segmentHeaderSize + rng.Int64N(fi.Size()-segmentHeaderSize)
		if err := os.Truncate(lastSeg, cut); err != nil {
			t.Fatal(err)
		}
		keepCheckpoint := trial%4 == 0
		if !keepCheckpoint { // a crash before any checkpoint covered the tail
			_ = os.Remove(filepath.Join(dir, checkpointFile))
		}
		c := startCommitter(t, "low")
		o := testOptions()
		l, err := Open(dir, c, o)
		if keepCheckpoint {
			// The clean close checkpointed the whole segment: a cut removes
			// durable data, which must be reported, never silently accepted.
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trial %d cut %d below the checkpoint: %v, want ErrCorrupt", trial, cut, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("trial %d cut %d: %v", trial, cut, err)
		}
		last := checkPrefix(t, l, want)
		// The log accepts appends after repair.
		appendRecords(t, l, 1, 3, 2, 0, 10)
		_ = l.Close()
		l = mustOpen(t, dir, c, o)
		if got, _ := l.LastIndex(); got != last+3 {
			t.Fatalf("trial %d: after repair and append, last %d want %d", trial, got, last+3)
		}
		_ = l.Close()
	}
}

func TestCorruptionCases(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		corrupt bool // Open must fail with ErrCorrupt; otherwise it must recover everything
	}{
		{"flip a bit in the middle of the last segment, no checkpoint", func(t *testing.T, dir string) {
			segs := segmentFiles(t, dir)
			flipBit(t, segs[len(segs)-1], 0.4)
			_ = os.Remove(filepath.Join(dir, checkpointFile))
		}, true},
		{"flip a bit in a sealed segment's header", func(t *testing.T, dir string) {
			flipByte(t, segmentFiles(t, dir)[0], 20)
		}, true},
		{"flip a bit in a sealed segment's end frame", func(t *testing.T, dir string) {
			f := segmentFiles(t, dir)[1]
			fi, _ := os.Stat(f)
			flipByte(t, f, fi.Size()-10)
		}, true},
		{"delete a middle segment", func(t *testing.T, dir string) {
			segs := segmentFiles(t, dir)
			if err := os.Remove(segs[len(segs)/2]); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"delete an index file", func(t *testing.T, dir string) {
			segs := segmentFiles(t, dir)
			_ = os.Remove(segs[1][:len(segs[1])-len(segmentExt)] + indexExt)
		}, false},
		{"delete every index file and the checkpoint", func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "*index"))
			for _, f := range m {
				_ = os.Remove(f)
			}
			_ = os.Remove(filepath.Join(dir, checkpointFile))
		}, false},
		{"truncate a time index to a partial entry", func(t *testing.T, dir string) {
			segs := segmentFiles(t, dir)
			ti := segs[0][:len(segs[0])-len(segmentExt)] + timeIndexExt
			fi, _ := os.Stat(ti)
			_ = os.Truncate(ti, fi.Size()-5)
		}, false},
		{"garbage checkpoint", func(t *testing.T, dir string) {
			_ = os.WriteFile(filepath.Join(dir, checkpointFile), []byte("not a checkpoint at all, not even close"), 0o644)
		}, false},
		{"zeros appended to the last segment (torn extension)", func(t *testing.T, dir string) {
			segs := segmentFiles(t, dir)
			f, _ := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
			_, _ = f.Write(make([]byte, 5000))
			_ = f.Close()
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := buildLog(t, dir)
			tc.damage(t, dir)
			c := startCommitter(t, "low")
			l, err := Open(dir, c, testOptions())
			if tc.corrupt {
				var ce *CorruptionError
				if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("want a corruption error, got %v", err)
				}
				if ce.Log == "" || ce.File == "" || ce.Reason == "" {
					t.Fatalf("corruption error does not say where: %+v", ce)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer l.Close()
			if last := checkPrefix(t, l, want); last != uint64(len(want)) {
				t.Fatalf("lost entries: have %d of %d", last, len(want))
			}
			for _, ts := range []int64{100, 350, 699} {
				b, ok, err := l.OffsetForTimestamp(ts)
				if err != nil || !ok || b.BaseOffset != (ts-100)*2 {
					t.Fatalf("timestamp %d -> %d %v %v", ts, b.BaseOffset, ok, err)
				}
			}
		})
	}
}

// TestCorruptionFoundByReads: damage in data that recovery does not re-read
// (sealed segments, the checkpointed part of the last one) is found by the
// CRC check of the read that reaches it, reported as a typed error and
// remembered so that the log can be taken offline.
func TestCorruptionFoundByReads(t *testing.T) {
	for _, which := range []string{"sealed", "last"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			buildLog(t, dir)
			segs := segmentFiles(t, dir)
			victim := segs[0]
			if which == "last" {
				victim = segs[len(segs)-1]
			}
			flipBit(t, victim, 0.5)
			c := startCommitter(t, "low")
			l, err := Open(dir, c, testOptions())
			if err != nil {
				t.Fatalf("open must not scan checkpointed data, got %v", err)
			}
			defer l.Close()
			last, _ := l.LastIndex()
			var readErr error
			for lo := uint64(1); lo <= last && readErr == nil; {
				es, err := l.Entries(lo, last+1, 1<<20)
				readErr = err
				lo += uint64(len(es))
			}
			if !errors.Is(readErr, ErrCorrupt) {
				t.Fatalf("reading across the damage: %v, want ErrCorrupt", readErr)
			}
			if !errors.Is(l.Damaged(), ErrCorrupt) {
				t.Fatalf("Damaged() = %v", l.Damaged())
			}
		})
	}
}

func flipBit(t *testing.T, path string, frac float64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, path, int64(float64(fi.Size())*frac))
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}
