package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
)

// frameCovering returns the base offset and file position of the entry
// frame that holds byte at of a segment file, read before the damage.
func frameCovering(t *testing.T, path string, at int64) (base int64, pos int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	r := frameReader{f: f, pos: segmentHeaderSize, end: fi.Size()}
	for {
		start := r.pos
		h, _, err := r.next()
		if err != nil {
			t.Fatalf("no frame covers byte %d of %s: %v", at, path, err)
		}
		if at >= start && at < r.pos {
			if !h.kind.isEntry() || h.offsetCount == 0 {
				t.Fatalf("byte %d falls in a frame without records; pick another", at)
			}
			return h.baseOffset, start
		}
	}
}

// TestDamageReadsServeValidPrefix: eight bytes flipped in the middle of a
// segment that recovery does not re-read (a sealed one, or the active one
// before its checkpoint). A consumer reading from the start in fetch-sized
// steps gets every batch before the damaged one, then the typed corruption
// error at the damage (never an empty answer that would make it wait), and
// the owner is told once.
func TestDamageReadsServeValidPrefix(t *testing.T) {
	cases := []struct {
		name   string
		victim func(segs []string) string
	}{
		{"sealed segment", func(segs []string) string { return segs[1] }},
		{"active segment before the checkpoint", func(segs []string) string { return segs[len(segs)-1] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := buildLog(t, dir)
			victim := tc.victim(segmentFiles(t, dir))
			fi, _ := os.Stat(victim)
			at := fi.Size() / 2
			damagedBase, damagedPos := frameCovering(t, victim, at)
			flip8(t, victim, at)

			var notified atomic.Int32
			o := testOptions()
			o.OnDamage = func(err error) {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("OnDamage(%v), want a corruption error", err)
				}
				notified.Add(1)
			}
			l, err := Open(dir, startCommitter(t, "low"), o)
			if err != nil {
				t.Fatalf("open must not scan checkpointed data, got %v", err)
			}
			defer l.Close()
			end := l.EndOffset()

			off := int64(0)
			var readErr error
			for off < end {
				bs, err := l.ReadRecords(off, 16<<10, end)
				if err != nil {
					readErr = err
					break
				}
				if len(bs) == 0 {
					t.Fatalf("empty read at %d below the end %d: a consumer would wait for ever", off, end)
				}
				for _, b := range bs {
					if b.BaseOffset != off {
						t.Fatalf("batch at %d, want %d", b.BaseOffset, off)
					}
					if i := off / 2; !bytes.Equal(b.Data, want[i].Data) {
						t.Fatalf("batch at %d differs from what was written", off)
					}
					off = b.EndOffset
				}
			}
			if off != damagedBase {
				t.Fatalf("valid prefix ends at %d, want %d (every batch before the damaged one)", off, damagedBase)
			}
			var ce *CorruptionError
			if !errors.As(readErr, &ce) || !errors.Is(readErr, ErrCorrupt) {
				t.Fatalf("read at the damage: %v, want a *CorruptionError", readErr)
			}
			if ce.File != victim || ce.Pos != damagedPos {
				t.Fatalf("corruption reported at %s:%d, want %s:%d", ce.File, ce.Pos, victim, damagedPos)
			}
			// A read across the damage in one go returns the same prefix.
			bs, err := l.ReadRecords(0, 1<<30, end)
			if err != nil || len(bs) == 0 || bs[len(bs)-1].EndOffset != damagedBase {
				t.Fatalf("one read across the damage: %d batches, %v", len(bs), err)
			}
			if !errors.Is(l.Damaged(), ErrCorrupt) {
				t.Fatalf("Damaged() = %v", l.Damaged())
			}
			if n := notified.Load(); n != 1 {
				t.Fatalf("OnDamage called %d times, want once", n)
			}
		})
	}
}

// TestScrubFindsDamage: a scrub of sealed segments finds damage nobody has
// read, reports it as a read does, and reads only what it was paced for.
func TestScrubFindsDamage(t *testing.T) {
	cases := []struct {
		name    string
		damage  bool
		segment int // index of the sealed segment damaged
	}{
		{"clean log", false, 0},
		{"first sealed segment", true, 0},
		{"later sealed segment", true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			buildLog(t, dir)
			segs := segmentFiles(t, dir)
			var victim string
			if tc.damage {
				victim = segs[tc.segment]
				fi, _ := os.Stat(victim)
				flip8(t, victim, fi.Size()/2)
			}
			var notified atomic.Int32
			o := testOptions()
			o.OnDamage = func(error) { notified.Add(1) }
			l, err := Open(dir, startCommitter(t, "low"), o)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var paced int64
			res, err := l.Scrub(context.Background(), func(_ context.Context, n int) error {
				paced += int64(n)
				return nil
			})
			if !tc.damage {
				var sealed int64
				for _, s := range segs[:len(segs)-1] {
					fi, _ := os.Stat(s)
					sealed += fi.Size()
				}
				if err != nil || res.Bytes != sealed || res.Segments != len(segs)-1 || paced != sealed {
					t.Fatalf("clean scrub: %+v paced %d err %v; want %d bytes in %d segments", res, paced, err, sealed, len(segs)-1)
				}
				if l.Damaged() != nil || notified.Load() != 0 {
					t.Fatalf("clean scrub reported damage: %v", l.Damaged())
				}
				return
			}
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.File != victim {
				t.Fatalf("scrub: %v, want a corruption error in %s", err, victim)
			}
			if res.Segments != tc.segment {
				t.Fatalf("scrub checked %d whole segments before the damage, want %d", res.Segments, tc.segment)
			}
			if !errors.Is(l.Damaged(), ErrCorrupt) || notified.Load() != 1 {
				t.Fatalf("Damaged() = %v, notified %d", l.Damaged(), notified.Load())
			}
			// A later pass does not read again: the log is already damaged.
			if _, err := l.Scrub(context.Background(), func(context.Context, int) error { return nil }); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("second scrub: %v", err)
			}
		})
	}
}

// TestScrubStopsWhenPaceFails: the pacer's error (a cancelled context)
// ends the pass without any report.
func TestScrubStopsWhenPaceFails(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir)
	l := mustOpen(t, dir, startCommitter(t, "low"), testOptions())
	defer l.Close()
	_, err := l.Scrub(context.Background(), func(context.Context, int) error { return io.ErrClosedPipe })
	if !errors.Is(err, io.ErrClosedPipe) || l.Damaged() != nil {
		t.Fatalf("scrub: %v, damaged %v", err, l.Damaged())
	}
}

// flip8 inverts eight bytes starting at at, as the user's report did.
func flip8(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}
