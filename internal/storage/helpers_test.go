package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/wal"
)

// testPayload builds entry data in a test format that testMeta understands:
// base offset, count, max timestamp, then filler.
func testPayload(base int64, count uint32, ts int64, filler int) []byte {
	b := make([]byte, 20+filler)
	binary.BigEndian.PutUint64(b[0:], uint64(base))
	binary.BigEndian.PutUint32(b[8:], count)
	binary.BigEndian.PutUint64(b[12:], uint64(ts))
	for i := 20; i < len(b); i++ {
		b[i] = byte(i + int(base))
	}
	return b
}

func testMeta(data []byte) (EntryMeta, bool, error) {
	if len(data) < 20 {
		return EntryMeta{}, false, errors.New("short test payload")
	}
	return EntryMeta{
		BaseOffset:   int64(binary.BigEndian.Uint64(data[0:])),
		Count:        binary.BigEndian.Uint32(data[8:]),
		MaxTimestamp: int64(binary.BigEndian.Uint64(data[12:])),
	}, true, nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startCommitter runs a committer for the test's lifetime.
func startCommitter(t testing.TB, profile string) *wal.Committer {
	t.Helper()
	p, err := wal.ProfileByName(profile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := wal.New(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func testOptions() Options {
	return Options{Meta: testMeta, Logger: quietLogger(), SegmentBytes: 64 << 10, IndexIntervalBytes: 512, RetentionAge: -1}
}

func mustOpen(t testing.TB, dir string, c *wal.Committer, o Options) *Log {
	t.Helper()
	l, err := Open(dir, c, o)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return l
}

// ent builds a normal entry.
func ent(index, term uint64, data []byte) *pb.Entry {
	typ := pb.EntryNormal
	return &pb.Entry{Index: &index, Term: &term, Type: &typ, Data: data}
}

func hardState(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: &term, Vote: &vote, Commit: &commit}
}

// appendRecords appends n entries at the log's end, each holding count
// offsets, with timestamps ts0, ts0+1, ... and returns them.
func appendRecords(t testing.TB, l *Log, term uint64, n int, count uint32, ts0 int64, filler int) []*pb.Entry {
	t.Helper()
	last, _ := l.LastIndex()
	off := l.EndOffset()
	var ents []*pb.Entry
	for i := range n {
		ents = append(ents, ent(last+1+uint64(i), term, testPayload(off, count, ts0+int64(i), filler)))
		off += int64(count)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < len(ents); i += 10 {
		if err := l.AppendSync(ctx, ents[i:min(i+10, len(ents))], nil); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	return ents
}

func mustEntries(t testing.TB, l *Log, lo, hi uint64) []*pb.Entry {
	t.Helper()
	var out []*pb.Entry
	for lo < hi {
		es, err := l.Entries(lo, hi, 1<<62)
		if err != nil {
			t.Fatalf("entries [%d,%d): %v", lo, hi, err)
		}
		out = append(out, es...)
		lo += uint64(len(es))
	}
	return out
}
