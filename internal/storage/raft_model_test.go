package storage

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// TestRaftStorageMatchesMemoryStorage drives our Log and etcd raft's
// MemoryStorage (the reference implementation of raft.Storage) with the
// same random appends, conflicting overwrites and reopens, and checks that
// every Storage method answers the same.
func TestRaftStorageMatchesMemoryStorage(t *testing.T) {
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 99))
		dir := t.TempDir()
		c := startCommitter(t, "low")
		o := testOptions()
		o.SegmentBytes = 8 << 10
		o.TailCacheBytes = 2 << 10 // small: most reads go to disk
		l := mustOpen(t, dir, c, o)
		model := raft.NewMemoryStorage()
		term := uint64(1)
		for step := range 300 {
			last, _ := model.LastIndex()
			switch r := rng.IntN(10); {
			case r < 7: // append at the end
				n := 1 + rng.IntN(8)
				ents := make([]*pb.Entry, n)
				off := l.EndOffset()
				for i := range ents {
					ents[i] = ent(last+1+uint64(i), term, testPayload(off, uint32(rng.IntN(3)), int64(step), rng.IntN(600)))
					if m, _, _ := testMeta(ents[i].Data); m.Count == 0 {
						ents[i].Data = nil // a no-op entry, as a new leader appends
					} else {
						off += int64(m.Count)
					}
				}
				appendBoth(t, l, model, ents)
			case r < 8 && last > 5: // a new leader overwrites the tail
				term++
				from := last - uint64(rng.IntN(min(int(last)-1, 40)))
				off, err := l.EndOffsetAt(from - 1)
				if err != nil {
					t.Fatal(err)
				}
				ents := []*pb.Entry{ent(from, term, testPayload(off, 1, int64(step), 50))}
				appendBoth(t, l, model, ents)
			case r < 9: // hard state
				hs := hardState(term, 1, min(last, uint64(step)))
				if err := l.AppendSync(context.Background(), nil, hs); err != nil {
					t.Fatal(err)
				}
				_ = model.SetHardState(hs)
			default: // crash-free restart
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = mustOpen(t, dir, c, o)
			}
			compareStorage(t, l, model, rng)
		}
		_ = l.Close()
	}
}

func appendBoth(t *testing.T, l *Log, m *raft.MemoryStorage, ents []*pb.Entry) {
	t.Helper()
	if err := l.AppendSync(context.Background(), ents, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Append(ents); err != nil {
		t.Fatal(err)
	}
}

func compareStorage(t *testing.T, l *Log, m *raft.MemoryStorage, rng *rand.Rand) {
	t.Helper()
	ml, _ := m.LastIndex()
	ll, _ := l.LastIndex()
	if ml != ll {
		t.Fatalf("last index %d, model %d", ll, ml)
	}
	for range 10 {
		i := uint64(rng.IntN(int(ml) + 1))
		mt, merr := m.Term(i)
		lt, lerr := l.Term(i)
		if mt != lt || (merr == nil) != (lerr == nil) {
			t.Fatalf("Term(%d) = %d,%v model %d,%v", i, lt, lerr, mt, merr)
		}
	}
	if ml == 0 {
		return
	}
	lo := 1 + uint64(rng.IntN(int(ml)))
	hi := lo + uint64(rng.IntN(int(ml-lo)+1)) + 1
	max := uint64(rng.IntN(4000))
	le, lerr := l.Entries(lo, hi, max)
	if lerr != nil {
		t.Fatalf("Entries(%d,%d,%d): %v", lo, hi, max, lerr)
	}
	me, _ := m.Entries(lo, hi, 1<<62)
	if len(le) == 0 {
		t.Fatalf("Entries(%d,%d) returned nothing", lo, hi)
	}
	for i, e := range le {
		w := me[i]
		if e.GetIndex() != w.GetIndex() || e.GetTerm() != w.GetTerm() || e.GetType() != w.GetType() || !bytes.Equal(e.Data, w.Data) {
			t.Fatalf("entry %d differs from model", w.GetIndex())
		}
	}
}
