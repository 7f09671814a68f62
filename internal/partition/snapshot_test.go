package partition

import (
	"bytes"
	"testing"

	"github.com/chronik-go/chronik/internal/records"
)

func sampleProducers() *Producers {
	p := newProducers()
	for id := int64(1); id <= 3; id++ {
		for seq := int32(0); seq < 7; seq += 2 {
			h := records.Header{ProducerID: id, ProducerEpoch: int16(id), BaseSequence: seq, LastOffsetDelta: 1, MaxTimestamp: 1000 + int64(seq)}
			p.Update(&h, int64(seq)*10+id)
		}
	}
	return p
}

func TestSnapshotRoundTripAndChecks(t *testing.T) {
	p := sampleProducers()
	b := encodeSnapshot(42, p)
	end, q, err := decodeSnapshot(b)
	if err != nil || end != 42 || !bytes.Equal(encodeSnapshot(end, q), b) {
		t.Fatalf("round trip: %v end %d", err, end)
	}
	// A batch the snapshot remembers is still a duplicate after decoding.
	h := records.Header{ProducerID: 2, ProducerEpoch: 2, BaseSequence: 6, LastOffsetDelta: 1}
	if c := q.Check(&h); !c.dup || c.dupBase != 62 {
		t.Fatalf("decoded state lost a batch: %+v", c)
	}
	b[30] ^= 1
	if _, _, err := decodeSnapshot(b); err == nil {
		t.Fatal("a flipped byte was not detected")
	}
}

// FuzzProducerSnapshot: the snapshot decoder never panics, and whatever it
// accepts encodes back to the same bytes.
func FuzzProducerSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(42, sampleProducers()))
	f.Add(encodeSnapshot(0, newProducers()))
	f.Fuzz(func(t *testing.T, b []byte) {
		end, p, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeSnapshot(end, p), b) {
			t.Fatalf("accepted snapshot does not re-encode to itself")
		}
	})
}
