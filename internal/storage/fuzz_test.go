package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

// Seed corpora live in testdata/fuzz/<Target>/ and were written from real
// logs by TestWriteFuzzSeeds (go test -tags seeds -run TestWriteFuzzSeeds).

// FuzzFrame: any bytes either fail to decode or decode to a frame that
// re-encodes to exactly the same bytes.
func FuzzFrame(f *testing.F) {
	f.Add(validFrame(kindEntry, []byte("hello")))
	f.Add(validFrame(kindHardState, make([]byte, hardStatePayload)))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := decodeFrame(b)
		if err != nil {
			return
		}
		if int(h.size()) > len(b) {
			t.Fatalf("frame of %d bytes decoded from %d", h.size(), len(b))
		}
		re := make([]byte, frameHeaderSize)
		h2 := h
		putFrameHeader(re, &h2, payload)
		re = append(re, payload...)
		if !bytes.Equal(re, b[:h.size()]) {
			t.Fatalf("re-encoded frame differs")
		}
	})
}

func validFrame(k frameKind, payload []byte) []byte {
	h := frameHeader{kind: k, term: 3, index: 9, baseOffset: 100, maxTs: -1}
	if k.isEntry() {
		h.offsetCount = 2
	}
	b := make([]byte, frameHeaderSize)
	putFrameHeader(b, &h, payload)
	return append(b, payload...)
}

// FuzzSegmentHeader: decode(b) re-encodes to b's first 64 bytes.
func FuzzSegmentHeader(f *testing.F) {
	f.Add(encodeSegmentHeader(segmentHeader{baseIndex: 1, baseOffset: 0, prevTerm: 0, createdMs: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeSegmentHeader(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeSegmentHeader(h), b[:segmentHeaderSize]) {
			t.Fatalf("re-encoded header differs")
		}
	})
}

// FuzzIndexEntries: index entries are fixed-width; every 12 bytes decode
// and re-encode exactly, and search never reads past the entries.
func FuzzIndexEntries(f *testing.F) {
	f.Add(make([]byte, 36), uint64(5))
	f.Fuzz(func(t *testing.T, b []byte, target uint64) {
		b = b[:len(b)/indexEntrySize*indexEntrySize]
		var re []byte
		for i := 0; i < len(b); i += indexEntrySize {
			var o, tt [indexEntrySize]byte
			putOffsetEntry(o[:], getOffsetEntry(b[i:]))
			putTimeEntry(tt[:], getTimeEntry(b[i:]))
			if !bytes.Equal(o[:], b[i:i+indexEntrySize]) || !bytes.Equal(tt[:], b[i:i+indexEntrySize]) {
				t.Fatalf("entry %d does not round-trip", i/indexEntrySize)
			}
			re = append(re, o[:]...)
		}
		path := filepath.Join(t.TempDir(), "x.index")
		if err := os.WriteFile(path, re, 0o644); err != nil {
			t.Fatal(err)
		}
		x := &indexFile{path: path}
		defer x.close()
		n := len(re) / indexEntrySize
		x.setTrusted(n)
		if _, _, err := x.search(n, target, offsetKeyIndex); err != nil {
			t.Fatalf("search: %v", err)
		}
	})
}

// FuzzCheckpoint: decode(b) encodes to something that decodes to the same.
func FuzzCheckpoint(f *testing.F) {
	b, _ := encodeCheckpoint(&tailState{segBase: 1, pos: 64, lastIndex: 0, endOffset: 0, maxTs: -1, timeIndexLast: -1, logStart: -1})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeCheckpoint(b)
		if err != nil {
			return
		}
		re, err := encodeCheckpoint(st)
		if err != nil {
			t.Fatal(err)
		}
		st2, err := decodeCheckpoint(re)
		if err != nil {
			t.Fatalf("re-encoded checkpoint does not decode: %v", err)
		}
		if !proto.Equal(st.conf, st2.conf) {
			t.Fatalf("conf state changed")
		}
		st.conf, st2.conf = nil, nil
		if *st != *st2 {
			t.Fatalf("checkpoint changed: %+v vs %+v", st, st2)
		}
	})
}

// FuzzRecoverSegment writes arbitrary bytes after a valid segment header and
// opens the log: recovery must never panic, must either repair the tail or
// report corruption, and a repaired log must read back whole entries.
func FuzzRecoverSegment(f *testing.F) {
	f.Add(append(validFrame(kindHardState, make([]byte, hardStatePayload)), validFrame(kindEntry, []byte("payload"))...))
	f.Add(bytes.Repeat([]byte{0xC5}, 200))
	c := startCommitter(f, "none")
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		seg := append(encodeSegmentHeader(segmentHeader{baseIndex: 1, createdMs: 1}), tail...)
		if err := os.WriteFile(filepath.Join(dir, segmentName(1)+segmentExt), seg, 0o644); err != nil {
			t.Fatal(err)
		}
		o := Options{Logger: quietLogger(), RetentionAge: -1}
		l, err := Open(dir, c, o)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("recovery failed with a non-corruption error: %v", err)
			}
			return
		}
		defer l.Close()
		last, _ := l.LastIndex()
		for i := uint64(1); i <= last; {
			es, err := l.Entries(i, last+1, 1<<20)
			if err != nil {
				t.Fatalf("entries after recovery: %v", err)
			}
			i += uint64(len(es))
		}
	})
}
