package records

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// makeBatch builds a valid v2 batch with n records.
func makeBatch(base int64, n int, ts int64) []byte {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Key: []byte("k"), Value: []byte(fmt.Sprintf("value-%d", i))}
	}
	return Build(base, ts, recs)
}

func TestBuildDecodesWithKmsg(t *testing.T) {
	b := makeBatch(5, 4, 1000)
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if int(kb.Length) != len(b)-12 || kb.NumRecords != 4 || kb.LastOffsetDelta != 3 {
		t.Fatalf("batch fields %+v", kb)
	}
	rest := kb.Records
	for i := range 4 {
		var r kmsg.Record
		if err := r.ReadFrom(rest); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if string(r.Value) != fmt.Sprintf("value-%d", i) || r.OffsetDelta != int32(i) {
			t.Fatalf("record %d: %+v", i, r)
		}
		rest = rest[len(r.AppendTo(nil)):]
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes after the records", len(rest))
	}
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
		// Each must never panic, and must agree with kmsg on what it reads.
		var got []Rec
		if Each(b[:h.Size()], func(r Rec) bool { got = append(got, r); return true }) == nil && kb.Attributes&7 == 0 {
			rest := kb.Records
			for i := range got {
				var kr kmsg.Record
				if err := kr.ReadFrom(rest); err != nil {
					t.Fatalf("Each read record %d that kmsg cannot: %v", i, err)
				}
				if !bytes.Equal(kr.Key, got[i].Key) || !bytes.Equal(kr.Value, got[i].Value) || (kr.Key == nil) != (got[i].Key == nil) {
					t.Fatalf("record %d: Each %q/%q, kmsg %q/%q", i, got[i].Key, got[i].Value, kr.Key, kr.Value)
				}
				rest = rest[len(kr.AppendTo(nil)):]
			}
		}
	})
}

func TestEachReadsKeysValuesAndNulls(t *testing.T) {
	b := Build(40, 1000, []Record{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b")}, {Value: []byte("3")}})
	b = append(b, Build(43, 2000, []Record{{Key: []byte("d"), Value: []byte{}}})...)
	var got []string
	err := Each(b, func(r Rec) bool {
		got = append(got, fmt.Sprintf("%d@%d %v:%q %v:%q", r.Offset, r.Timestamp, r.Key == nil, r.Key, r.Value == nil, r.Value))
		return true
	})
	want := []string{`40@1000 false:"a" false:"1"`, `41@1001 false:"b" true:""`, `42@1002 true:"" false:"3"`, `43@2000 false:"d" false:""`}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Each: %v %q, want %q", err, got, want)
	}
	if err := Each(b[:len(b)-3], func(Rec) bool { return true }); err == nil {
		t.Fatalf("truncated batches: %v", err)
	}
}
