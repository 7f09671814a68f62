package records

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kmsgMessage encodes one legacy message with kmsg (an encoder other than
// ours), CRC included.
func kmsgMessage(magic int8, offset int64, attrs int8, ts int64, key, value []byte) []byte {
	var b []byte
	if magic == 0 {
		m := kmsg.MessageV0{Offset: offset, Magic: 0, Attributes: attrs, Key: key, Value: value}
		b = m.AppendTo(nil)
	} else {
		m := kmsg.MessageV1{Offset: offset, Magic: 1, Attributes: attrs, Timestamp: ts, Key: key, Value: value}
		b = m.AppendTo(nil)
	}
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[12:], crc32.ChecksumIEEE(b[16:]))
	return b
}

// kmsgSet encodes n records as a message set, compressed in one wrapper
// when codec is not none (inner offsets as the clients of each magic write
// them: absolute in v0, relative in v1).
func kmsgSet(t *testing.T, magic, codec int8, n int) []byte {
	t.Helper()
	var set []byte
	for i := range n {
		var key []byte
		if i%2 == 0 {
			key = []byte(fmt.Sprintf("k%d", i))
		}
		set = append(set, kmsgMessage(magic, int64(i), 0, 1_700_000_000_000+int64(i), key, []byte(fmt.Sprintf("value-%d", i)))...)
	}
	if codec == CodecNone {
		return set
	}
	z, err := Compress(codec, set)
	if err != nil {
		t.Fatal(err)
	}
	if codec == CodecLZ4 && magic == 0 {
		z = lz4HeaderChecksum(z, true) // as v0 clients write it
	}
	return kmsgMessage(magic, int64(n-1), codec, 1_700_000_000_000+int64(n-1), nil, z)
}

func TestXXH32KnownValues(t *testing.T) {
	for in, want := range map[string]uint32{"": 0x02CC5D05, "a": 0x550D7456, "abc": 0x32D153FF,
		"Nobody inspects the spammish repetition": 0xE2293B2F} {
		if got := xxh32([]byte(in)); got != want {
			t.Errorf("xxh32(%q) = %08x, want %08x", in, got, want)
		}
	}
}

// TestLegacyProduceConversion: a v0 or v1 message set, plain or in every
// codec v0/v1 can carry, becomes one v2 batch holding the same records in
// order (v0 records without timestamps: -1), whose CRC checks and which
// Each reads back.
func TestLegacyProduceConversion(t *testing.T) {
	for _, magic := range []int8{0, 1} {
		for _, codec := range []int8{CodecNone, CodecGzip, CodecSnappy, CodecLZ4} {
			t.Run(fmt.Sprintf("v%d-codec%d", magic, codec), func(t *testing.T) {
				ms, err := ParseMessageSet(kmsgSet(t, magic, codec, 5))
				if err != nil {
					t.Fatal(err)
				}
				if ms.Magic != magic || ms.Codec != codec || len(ms.Records) != 5 {
					t.Fatalf("parsed magic %d codec %d with %d records", ms.Magic, ms.Codec, len(ms.Records))
				}
				batch, err := FromMessageSet(nil, &ms, ms.Codec)
				if err != nil {
					t.Fatal(err)
				}
				h, err := ReadHeader(batch)
				if err != nil || h.Size() != len(batch) || CheckCRC(batch, &h) != nil {
					t.Fatalf("batch header %+v: %v, crc %v", h, err, CheckCRC(batch, &h))
				}
				if h.Compression() != codec || h.NumRecords != 5 || h.LastOffsetDelta != 4 || h.ProducerID != -1 {
					t.Fatalf("batch header %+v", h)
				}
				var got []Rec
				if err := Each(batch, func(r Rec) bool { got = append(got, r); return true }); err != nil {
					t.Fatal(err)
				}
				for i, r := range got {
					wantTs := int64(-1)
					if magic == 1 {
						wantTs = 1_700_000_000_000 + int64(i)
					}
					var wantKey []byte
					if i%2 == 0 {
						wantKey = []byte(fmt.Sprintf("k%d", i))
					}
					if r.Offset != int64(i) || r.Timestamp != wantTs || !bytes.Equal(r.Key, wantKey) || (wantKey == nil) != (r.Key == nil) ||
						string(r.Value) != fmt.Sprintf("value-%d", i) {
						t.Fatalf("record %d: %+v (key %q)", i, r, r.Key)
					}
				}
				// The v2 batch decodes with kmsg too.
				var kb kmsg.RecordBatch
				if err := kb.ReadFrom(batch); err != nil || kb.NumRecords != 5 {
					t.Fatalf("kmsg: %v %+v", err, kb)
				}
			})
		}
	}
}

func TestLegacyMessageSetRejects(t *testing.T) {
	good := kmsgSet(t, 1, CodecNone, 2)
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 1
	mixed := append(kmsgMessage(0, 0, 0, 0, nil, []byte("a")), kmsgMessage(1, 1, 0, 5, nil, []byte("b"))...)
	inner := kmsgSet(t, 1, CodecGzip, 2)
	zin, _ := Compress(CodecGzip, inner)
	nested := kmsgMessage(1, 0, CodecGzip, 0, nil, zin)
	zstdWrapper := kmsgMessage(1, 0, CodecZstd, 0, nil, []byte("x"))
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"bad crc", badCRC, ErrCorruptBatch},
		{"truncated", good[:len(good)-3], ErrCorruptBatch},
		{"trailing bytes", append(bytes.Clone(good), 1, 2, 3), ErrCorruptBatch},
		{"magic 2 message", func() []byte {
			b := kmsgMessage(1, 0, 0, 0, nil, []byte("a"))
			b[16] = 2
			binary.BigEndian.PutUint32(b[12:], crc32.ChecksumIEEE(b[16:]))
			return b
		}(), ErrMagic},
		{"mixed magics", mixed, ErrCorruptBatch},
		{"nested compression", nested, ErrCorruptBatch},
		{"zstd in v1", zstdWrapper, ErrCodec},
		{"empty", nil, ErrCorruptBatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseMessageSet(c.b); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestLZ4V0HeaderChecksum: v0 LZ4 wrappers carry Kafka's pre-KIP-57 header
// checksum, which a standard decoder refuses; both directions handle it.
func TestLZ4V0HeaderChecksum(t *testing.T) {
	z, err := Compress(CodecLZ4, []byte("hello hello hello"))
	if err != nil {
		t.Fatal(err)
	}
	broken := lz4HeaderChecksum(z, true)
	if bytes.Equal(broken, z) {
		t.Fatal("the old checksum equals the standard one for this frame; pick another input")
	}
	if _, err := Decompress(CodecLZ4, broken); err == nil {
		t.Fatal("a standard LZ4 decoder accepted the v0 header checksum")
	}
	out, err := Decompress(CodecLZ4, lz4HeaderChecksum(broken, false))
	if err != nil || string(out) != "hello hello hello" {
		t.Fatalf("fixed frame: %q %v", out, err)
	}
}

// TestDownConvert: v2 batches (plain and compressed, headers, LogAppendTime,
// a control batch) convert to v0 and v1 message sets that kmsg parses, with
// every record at its absolute offset.
func TestDownConvert(t *testing.T) {
	recs := []Record{{Key: []byte("a"), Value: []byte("1"), Headers: []kmsg.Header{{Key: "h", Value: []byte("v")}}}, {Value: []byte("2")}, {Key: []byte("c"), Value: nil}}
	plain := Build(10, 1000, recs)
	for _, magic := range []int8{0, 1} {
		for _, codec := range []int8{CodecNone, CodecGzip, CodecSnappy, CodecLZ4} {
			t.Run(fmt.Sprintf("v%d-codec%d", magic, codec), func(t *testing.T) {
				b, err := Recompress(plain, codec)
				if err != nil {
					t.Fatal(err)
				}
				second := Build(13, 5000, recs[:1])
				SetLogAppendTime(second, 9999)
				ctrl := Build(14, 6000, []Record{{Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0, 0, 0, 0, 0}}})
				binary.BigEndian.PutUint16(ctrl[offAttributes:], AttrControl|AttrTransactional)
				SetCRC(ctrl)
				in := append(append(bytes.Clone(b), second...), ctrl...)
				out, err := DownConvert(nil, in, magic)
				if err != nil {
					t.Fatal(err)
				}
				type got struct {
					off, ts    int64
					key, value string
					null       bool
				}
				var msgs []got
				var walk func(b []byte, wrapperOff int64, inner bool)
				walk = func(b []byte, wrapperOff int64, inner bool) {
					var rel []int64
					var all []got
					for len(b) > 0 {
						size := int(binary.BigEndian.Uint32(b[8:]))
						m := b[:12+size]
						b = b[12+size:]
						if crc32.ChecksumIEEE(m[16:]) != binary.BigEndian.Uint32(m[12:]) || m[16] != byte(magic) {
							t.Fatalf("message crc or magic wrong: %x", m)
						}
						var off, ts int64
						var attrs int8
						var key, value []byte
						if magic == 0 {
							var km kmsg.MessageV0
							if err := km.ReadFrom(m); err != nil {
								t.Fatal(err)
							}
							off, ts, attrs, key, value = km.Offset, -1, km.Attributes, km.Key, km.Value
						} else {
							var km kmsg.MessageV1
							if err := km.ReadFrom(m); err != nil {
								t.Fatal(err)
							}
							off, ts, attrs, key, value = km.Offset, km.Timestamp, km.Attributes, km.Key, km.Value
						}
						if c := attrs & 7; c != 0 {
							if inner || c != codec {
								t.Fatalf("wrapper codec %d, want %d", c, codec)
							}
							if magic == 0 && c == CodecLZ4 {
								value = lz4HeaderChecksum(value, false)
							}
							set, err := Decompress(c, value)
							if err != nil {
								t.Fatal(err)
							}
							walk(set, off, true)
							continue
						}
						rel = append(rel, off)
						all = append(all, got{off: off, ts: ts, key: string(key), value: string(value), null: value == nil})
					}
					if inner && magic == 1 {
						// Relative inner offsets: absolute = wrapper - last + inner.
						for i := range all {
							all[i].off = wrapperOff - rel[len(rel)-1] + rel[i]
						}
					}
					msgs = append(msgs, all...)
				}
				walk(out, 0, false)
				ts := func(v int64) int64 {
					if magic == 0 {
						return -1
					}
					return v
				}
				want := []got{{10, ts(1000), "a", "1", false}, {11, ts(1001), "", "2", false}, {12, ts(1002), "c", "", true}, {13, ts(9999), "a", "1", false}}
				if fmt.Sprint(msgs) != fmt.Sprint(want) {
					t.Fatalf("converted\n %v\nwant\n %v", msgs, want)
				}
			})
		}
	}
	zs, err := Recompress(plain, CodecZstd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DownConvert(nil, zs, 1); !errors.Is(err, ErrCodec) {
		t.Fatalf("zstd down-conversion: %v, want ErrCodec", err)
	}
}

// TestRecompress: a batch recompressed in every codec keeps its header
// fields and records.
func TestRecompress(t *testing.T) {
	orig := makeBatch(3, 20, 500)
	Patch(orig, 3, 0)
	oh, _ := ReadHeader(orig)
	var want []Rec
	_ = Each(orig, func(r Rec) bool { want = append(want, r); return true })
	for _, codec := range []int8{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd, CodecNone} {
		b, err := Recompress(orig, codec)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ReadHeader(b)
		if err != nil || CheckCRC(b, &h) != nil || h.Compression() != codec {
			t.Fatalf("codec %d: %+v %v", codec, h, err)
		}
		h.Length, h.CRC, h.Attributes = oh.Length, oh.CRC, oh.Attributes
		if h != oh {
			t.Fatalf("codec %d header %+v, want %+v", codec, h, oh)
		}
		var got []Rec
		_ = Each(b, func(r Rec) bool { got = append(got, r); return true })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("codec %d records differ", codec)
		}
	}
}

// FuzzMessageSet: the legacy parser never panics; a set it accepts
// converts into a v2 batch whose CRC checks and whose records (read back by
// Each) are the parsed ones; and that batch down-converts to a set that
// parses again into the same keys and values.
func FuzzMessageSet(f *testing.F) {
	f.Add(kmsgMessage(0, 0, 0, 0, []byte("k"), []byte("v")))
	f.Add(kmsgMessage(1, 3, 0, 1_700_000_000_000, nil, []byte("value")))
	z, _ := Compress(CodecGzip, kmsgMessage(1, 0, 0, 5, []byte("a"), []byte("b")))
	f.Add(kmsgMessage(1, 0, CodecGzip, 5, nil, z))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMessageSet(b)
		if err != nil {
			return
		}
		batch, err := FromMessageSet(nil, &ms, ms.Codec)
		if err != nil {
			t.Fatalf("accepted set does not convert: %v", err)
		}
		h, err := ReadHeader(batch)
		if err != nil || h.Size() != len(batch) || CheckCRC(batch, &h) != nil {
			t.Fatalf("converted batch: %+v %v", h, err)
		}
		i := 0
		if err := Each(batch, func(r Rec) bool {
			w := ms.Records[i]
			if !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) || (r.Key == nil) != (w.Key == nil) || r.Timestamp != w.Timestamp {
				t.Fatalf("record %d: %+v, parsed %+v", i, r, w)
			}
			i++
			return true
		}); err != nil || i != len(ms.Records) {
			t.Fatalf("read %d of %d records: %v", i, len(ms.Records), err)
		}
		down, err := DownConvert(nil, batch, ms.Magic)
		if err != nil {
			t.Fatalf("down-convert: %v", err)
		}
		back, err := ParseMessageSet(down)
		if err != nil || len(back.Records) != len(ms.Records) {
			t.Fatalf("down-converted set: %v", err)
		}
		for i, r := range back.Records {
			if !bytes.Equal(r.Value, ms.Records[i].Value) || !bytes.Equal(r.Key, ms.Records[i].Key) {
				t.Fatalf("record %d changed in the round trip", i)
			}
		}
	})
}

// FuzzDownConvert: down-conversion of arbitrary bytes never panics.
func FuzzDownConvert(f *testing.F) {
	f.Add(makeBatch(0, 3, 1000), int8(0))
	f.Add(makeBatch(7, 2, 1000), int8(1))
	f.Fuzz(func(t *testing.T, b []byte, magic int8) {
		if magic != 0 {
			magic = 1
		}
		_, _ = DownConvert(nil, b, magic)
	})
}
