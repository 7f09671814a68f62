//go:build seeds

package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzSeeds regenerates the committed seed corpora from real logs.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "none")
	l := mustOpen(t, dir, c, testOptions())
	appendRecords(t, l, 2, 400, 3, 1000, 120)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	seg, _ := os.ReadFile(segs[0])
	writeSeed(t, "FuzzSegmentHeader", "real", seg[:segmentHeaderSize])
	// Frames as they appear on disk, one per seed.
	r := frameReader{f: mustOpenFile(t, segs[0]), pos: segmentHeaderSize, end: int64(len(seg))}
	for i := 0; i < 6; i++ {
		at := r.pos
		h, _, err := r.next()
		if err != nil {
			break
		}
		writeSeed(t, "FuzzFrame", fmt.Sprintf("real-%d", i), seg[at:at+h.size()])
	}
	writeSeed(t, "FuzzRecoverSegment", "real-tail", seg[segmentHeaderSize:min(len(seg), segmentHeaderSize+4096)])
	idx, _ := os.ReadFile(segs[0][:len(segs[0])-len(segmentExt)] + indexExt)
	writeSeedArgs(t, "FuzzIndexEntries", "real", fmt.Sprintf("[]byte(%q)\nuint64(7)", idx))
	ck, _ := os.ReadFile(filepath.Join(dir, checkpointFile))
	writeSeed(t, "FuzzCheckpoint", "real", ck)
}

func mustOpenFile(t *testing.T, path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func writeSeed(t *testing.T, target, name string, b []byte) {
	writeSeedArgs(t, target, name, fmt.Sprintf("[]byte(%q)", b))
}

func writeSeedArgs(t *testing.T, target, name, args string) {
	t.Helper()
	d := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, name), []byte("go test fuzz v1\n"+args+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
