package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/storage"
	"github.com/chronik-go/chronik/internal/wal"
)

// writeLog writes a real log (internal/storage, fsynced through a real
// committer) of entries 1..len(data), all of term 1, committed up to commit.
func writeLog(t *testing.T, dir string, data []string, commit uint64) {
	t.Helper()
	p, err := wal.ProfileByName("low")
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
	defer func() { cancel(); <-done }()
	l, err := storage.Open(dir, c, storage.Options{Meta: entryMeta, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var ents []*pb.Entry
	for i, d := range data {
		idx, term, typ := uint64(i+1), uint64(1), pb.EntryNormal
		ents = append(ents, &pb.Entry{Index: &idx, Term: &term, Type: &typ, Data: []byte(d)})
	}
	term, vote := uint64(1), uint64(1)
	if err := l.AppendSync(context.Background(), ents, &pb.HardState{Term: &term, Vote: &vote, Commit: &commit}); err != nil {
		t.Fatal(err)
	}
}

// TestCompareReplicas: W8 on real logs written by internal/storage.
// Data starts with 'x' so that no entry claims to hold record batches.
func TestCompareReplicas(t *testing.T) {
	same := []string{"x1", "x2", "x3", "x4", "x5"}
	tests := []struct {
		name     string
		third    []string
		commit3  uint64
		typ      Type
		compared int64
		detail   string
	}{
		{name: "identical", third: same, commit3: 5, typ: OK, compared: 5},
		{name: "committed entry differs", third: []string{"x1", "x2", "y3", "x4", "x5"}, commit3: 5, typ: Fail, compared: 2,
			detail: "differ at committed raft index 3"},
		// Node 3 does not know index 5 committed: its different entry
		// there is an uncommitted tail Raft will overwrite.
		{name: "committed entries lost", third: []string{"x1", "x2", "x3"}, commit3: 5, typ: Fail, compared: 0,
			detail: "node 3's log ends at raft index 3, below the commit index 5"},
		{name: "uncommitted tail differs", third: []string{"x1", "x2", "x3", "x4", "y5"}, commit3: 4, typ: OK, compared: 5},
		{name: "lagging replica", third: same[:2], commit3: 2, typ: OK, compared: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dirs := map[int]string{}
			for n := 1; n <= 3; n++ {
				dirs[n] = filepath.Join(root, "node", string(rune('0'+n)))
				data, commit := same, uint64(5)
				if n == 3 {
					data, commit = tc.third, tc.commit3
				}
				writeLog(t, filepath.Join(dirs[n], "logs", "t-0"), data, commit)
			}
			// A log held by one node only is not compared.
			writeLog(t, filepath.Join(dirs[1], "logs", "solo-0"), same, 5)
			evs, err := CompareReplicas(context.Background(), dirs)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 2 {
				t.Fatalf("events %+v, want an invocation and a completion for t-0", evs)
			}
			e := evs[1]
			if e.Type != tc.typ || e.Topic != "t" || e.Partition != 0 || e.Offset == nil || *e.Offset != tc.compared || !strings.Contains(e.Error, tc.detail) {
				t.Fatalf("got %s offset=%v error=%q; want %s, %d compared, %q", e.Type, *e.Offset, e.Error, tc.typ, tc.compared, tc.detail)
			}
			// The checker turns a failed comparison into an anomaly.
			res := Check(evs, Options{})
			if want := tc.typ == Fail; res.Summary.Anomalies[DivergentReplicas] == 0 != !want {
				t.Fatalf("checker: %s", res.Text(0))
			}
		})
	}
	t.Run("damaged replica is not compared", func(t *testing.T) {
		root := t.TempDir()
		dirs := map[int]string{}
		var data []string
		for i := range 200 {
			data = append(data, fmt.Sprintf("x-a payload long enough to spread over the segment %03d", i))
		}
		for n := 1; n <= 3; n++ {
			dirs[n] = filepath.Join(root, fmt.Sprint(n))
			writeLog(t, filepath.Join(dirs[n], "logs", "t-0"), data, 200)
		}
		if _, err := flipSegment(filepath.Join(dirs[3], "logs", "t-0"), 5); err != nil {
			t.Fatal(err)
		}
		evs, err := CompareReplicas(context.Background(), dirs)
		if err != nil {
			t.Fatal(err)
		}
		if e := evs[1]; e.Type != Info || !strings.Contains(e.Error, "node 3") {
			t.Fatalf("got %s %q; want info naming node 3's damage", e.Type, e.Error)
		}
	})
	if _, err := CompareReplicas(context.Background(), map[int]string{1: filepath.Join(t.TempDir(), "missing")}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing data directory: %v", err)
	}
}
