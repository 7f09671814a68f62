package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/wal"
)

func TestSnapshotDataRoundTrip(t *testing.T) {
	d := SnapshotData{NextOffset: 1234, LogStart: 1300, Extra: []byte("producers")}
	b := EncodeSnapshotData(d)
	got, err := DecodeSnapshotData(b)
	if err != nil || got.NextOffset != d.NextOffset || got.LogStart != d.LogStart || string(got.Extra) != "producers" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, err := DecodeSnapshotData(c); err == nil {
			t.Fatalf("a flipped byte at %d went unnoticed", i)
		}
	}
}

// checkInstalled asserts what a log that installed a snapshot at index 500
// (term 7, Kafka offsets continuing at 9000, log start 9100) reports.
func checkInstalled(t *testing.T, l *Log) {
	t.Helper()
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	term, err := l.Term(500)
	if first != 501 || last != 500 || err != nil || term != 7 {
		t.Fatalf("after install: first %d last %d term(500) %d (%v); want 501, 500, 7", first, last, term, err)
	}
	if l.EndOffset() != 9000 || l.LogStartOffset() != 9100 || l.Applied() != 500 {
		t.Fatalf("after install: end offset %d, log start %d, applied %d; want 9000, 9100, 500", l.EndOffset(), l.LogStartOffset(), l.Applied())
	}
	hs, cs, _ := l.InitialState()
	if hs.GetTerm() != 7 || hs.GetCommit() != 500 || len(cs.GetVoters()) != 3 {
		t.Fatalf("after install: hard state %v, conf state %v", hs, cs)
	}
	snap, err := l.Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() != 500 || snap.GetMetadata().GetTerm() != 7 {
		t.Fatalf("snapshot after install: %v, %v", snap.GetMetadata(), err)
	}
	if d, err := DecodeSnapshotData(snap.GetData()); err != nil || d.NextOffset != 9000 || d.LogStart != 9100 {
		t.Fatalf("snapshot data after install: %+v, %v", d, err)
	}
}

func TestInstallSnapshotReplacesTheLogAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "low")
	l := mustOpen(t, dir, c, testOptions())
	appendRecords(t, l, 3, 200, 5, 1000, 600) // several segments
	if l.Segments() < 2 {
		t.Fatalf("%d segments; the test wants several", l.Segments())
	}
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	if err := l.InstallSnapshot(500, 7, cs, SnapshotData{NextOffset: 9000, LogStart: 9100}); err != nil {
		t.Fatal(err)
	}
	checkInstalled(t, l)
	if l.Segments() != 1 {
		t.Fatalf("%d segments after install, want 1", l.Segments())
	}
	// Appends continue after the snapshot, with Kafka offsets from 9000.
	ents := appendRecords(t, l, 7, 3, 5, 2000, 10)
	if ents[0].GetIndex() != 501 || l.EndOffset() != 9015 {
		t.Fatalf("appended at %d, end offset %d", ents[0].GetIndex(), l.EndOffset())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, c, testOptions())
	defer l.Close()
	if last, _ := l.LastIndex(); last != 503 || l.EndOffset() != 9015 || l.LogStartOffset() != 9100 {
		t.Fatalf("after restart: last %d, end %d, start %d", last, l.EndOffset(), l.LogStartOffset())
	}
	got := mustEntries(t, l, 501, 504)
	for i, e := range got {
		if string(e.Data) != string(ents[i].Data) {
			t.Fatalf("entry %d differs after restart", e.GetIndex())
		}
	}
}

// A crash after the marker was written and before the new segment exists
// (or with old segments still there) is finished by the next open.
func TestInterruptedInstallIsFinishedAtOpen(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "low")
	l := mustOpen(t, dir, c, testOptions())
	appendRecords(t, l, 3, 200, 5, 1000, 600)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	m := &installMarker{index: 500, term: 7, nextOffset: 9000, logStart: 9100,
		hs: hardStateFrame{term: 7, vote: 2, commit: 500, applied: 500}, conf: &pb.ConfState{Voters: []uint64{1, 2, 3}}}
	b, err := encodeInstall(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(dir, installFile, b); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, c, testOptions())
	defer l.Close()
	checkInstalled(t, l)
	if _, err := os.Stat(filepath.Join(dir, installFile)); !os.IsNotExist(err) {
		t.Fatalf("the marker is still there: %v", err)
	}
	// A damaged marker is reported, not guessed at.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b[12] ^= 1
	if err := WriteFileAtomic(dir, installFile, b); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, c, testOptions()); err == nil {
		t.Fatal("a damaged install marker was accepted")
	}
}

func TestSavedSnapshotServedCompactedAndReloaded(t *testing.T) {
	dir := t.TempDir()
	c := startCommitter(t, "low")
	o := testOptions()
	o.Meta, o.Snapshots = nil, true
	l := mustOpen(t, dir, c, o)
	appendRecords(t, l, 2, 300, 1, 1000, 600)
	last, _ := l.LastIndex()
	l.SetApplied(last - 10)
	if err := l.SaveSnapshot(last, []byte("too new")); !errors.Is(err, ErrNotApplied) {
		t.Fatalf("saving a snapshot of an unapplied index: %v", err)
	}
	at := last - 20
	if err := l.SaveSnapshot(at, []byte("state")); err != nil {
		t.Fatal(err)
	}
	segs := l.Segments()
	n, err := l.CompactTo(last)
	if err != nil || n == 0 || l.Segments() != segs-n {
		t.Fatalf("compaction deleted %d of %d segments: %v", n, segs, err)
	}
	first, _ := l.FirstIndex()
	if first-1 > at {
		t.Fatalf("compaction went past the snapshot: log starts at %d, snapshot at %d", first, at)
	}
	snap, err := l.Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() != at || snap.GetMetadata().GetTerm() != 2 {
		t.Fatalf("Snapshot serves %v (%v), want the saved one at %d", snap.GetMetadata(), err, at)
	}
	if d, err := DecodeSnapshotData(snap.GetData()); err != nil || string(d.Extra) != "state" {
		t.Fatalf("snapshot data %+v, %v", d, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, c, o)
	if idx, data, ok := l.Saved(); !ok || idx != at || string(data) != "state" {
		t.Fatalf("after reopen: saved %d %q %v", idx, data, ok)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A saved snapshot older than the log's start cannot be trusted.
	b, _ := os.ReadFile(filepath.Join(dir, savedFile))
	binary.LittleEndian.PutUint64(b[8:], 1)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	if err := os.WriteFile(filepath.Join(dir, savedFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, c, o); err == nil {
		t.Fatal("a saved snapshot before the log start with entries missing in between was accepted")
	}
}

// An append with nothing to write (Raft attaches acknowledgements of
// entries from earlier appends to it) completes only after every earlier
// write is durable — and fails if one of them does.
func TestEmptyAppendWaitsForEarlierWrites(t *testing.T) {
	p, err := wal.ProfileByName("low")
	if err != nil {
		t.Fatal(err)
	}
	c, err := wal.New(p)
	if err != nil {
		t.Fatal(err)
	}
	// The committer is not running yet: a submitted write stays queued.
	l := mustOpen(t, t.TempDir(), c, testOptions())
	order := make(chan string, 2)
	if err := l.Append(context.Background(), []*pb.Entry{ent(1, 1, testPayload(0, 1, 1, 10))}, nil, func(err error) {
		order <- fmt.Sprintf("write %v", err)
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), nil, nil, func(err error) { order <- fmt.Sprintf("empty %v", err) }); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-order:
		t.Fatalf("%q completed while the earlier write was still queued", got)
	case <-time.After(100 * time.Millisecond):
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = c.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	if a, b := <-order, <-order; a != "write <nil>" || b != "empty <nil>" {
		t.Fatalf("completion order %q then %q", a, b)
	}
	// With nothing pending, an empty append completes at once.
	done := make(chan error, 1)
	if err := l.Append(context.Background(), nil, nil, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
