package records

import (
	"bytes"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// makeBatch builds a valid v2 batch with n records of a few bytes each.
func makeBatch(base int64, n int, ts int64) []byte {
	var recs []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: int32(i), TimestampDelta: int32(i), Key: []byte("k"), Value: []byte("value")}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{
		FirstOffset: base, Magic: 2, LastOffsetDelta: int32(n - 1), FirstTimestamp: ts, MaxTimestamp: ts + int64(n-1),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(n), Records: recs,
	}
	out := b.AppendTo(nil)
	// batchLength counts everything after itself.
	putBE32(out[offBatchLength:], uint32(len(out)-lengthOverhead))
	SetCRC(out)
	return out
}

func putBE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func TestHeaderPatchAndMeta(t *testing.T) {
	b := makeBatch(0, 3, 1000)
	h, err := ReadHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckCRC(b, &h); err != nil {
		t.Fatal(err)
	}
	Patch(b, 42, 7)
	h, _ = ReadHeader(b)
	if h.BaseOffset != 42 || h.LeaderEpoch != 7 || h.LastOffset() != 44 || h.MaxTimestamp != 1002 {
		t.Fatalf("after patch: %+v", h)
	}
	if err := CheckCRC(b, &h); err != nil {
		t.Fatalf("patching offset and epoch must not break the CRC: %v", err)
	}
	b2 := makeBatch(45, 2, 5000)
	data := append(append([]byte{EntryBatches}, b...), b2...)
	base, count, maxTs, ok, err := EntryMeta(data)
	if err != nil || !ok || base != 42 || count != 5 || maxTs != 5001 {
		t.Fatalf("EntryMeta = %d %d %d %v %v", base, count, maxTs, ok, err)
	}
	b[30] ^= 1
	if err := CheckCRC(b, &h); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("flipped byte: %v", err)
	}
}

// FuzzRecordBatch: the header reader never panics, never claims more bytes
// than it was given, and a batch whose CRC checks round-trips through
// kmsg's independent decoder and encoder byte for byte.
func FuzzRecordBatch(f *testing.F) {
	f.Add(makeBatch(0, 1, 1))
	f.Add(makeBatch(100, 5, 1_700_000_000_000))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, _, _ = EntryMeta(append([]byte{EntryBatches}, b...))
		h, err := ReadHeader(b)
		if err != nil {
			return
		}
		if h.Size() > len(b) {
			t.Fatalf("header claims %d bytes of %d", h.Size(), len(b))
		}
		if CheckCRC(b, &h) != nil {
			return
		}
		var kb kmsg.RecordBatch
		if err := kb.ReadFrom(b[:h.Size()]); err != nil {
			return
		}
		if re := kb.AppendTo(nil); !bytes.Equal(re, b[:h.Size()]) {
			t.Fatalf("kmsg round trip differs")
		}
	})
}
