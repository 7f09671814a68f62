package records

import (
	"fmt"
	"testing"
)

// The cost of legacy message sets, beside the v2 path they are measured
// against: the v2 produce path only reads the header and checks the CRC
// (BenchmarkProduceV2Validate); a v0/v1 set is parsed, CRC-checked per
// message and rebuilt as a v2 batch (BenchmarkProduceLegacyConvert); the v2
// fetch path copies stored bytes (BenchmarkFetchV2Copy), an old fetcher
// gets them converted down (BenchmarkFetchDownConvert). docs/PERFORMANCE.md
// quotes their ratios from one run.

// benchRecords is 100 records of 100-byte values with 10-byte keys.
func benchRecords() []Record {
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = Record{Key: []byte(fmt.Sprintf("key-%06d", i)), Value: make([]byte, 100)}
		for j := range recs[i].Value {
			recs[i].Value[j] = byte('a' + (i+j)%26)
		}
	}
	return recs
}

var benchCodecs = []struct {
	name  string
	codec int8
}{{"none", CodecNone}, {"gzip", CodecGzip}, {"snappy", CodecSnappy}, {"lz4", CodecLZ4}}

func BenchmarkProduceV2Validate(b *testing.B) {
	for _, c := range benchCodecs {
		batch, _ := Recompress(Build(0, 1_700_000_000_000, benchRecords()), c.codec)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				h, err := ReadHeader(batch)
				if err != nil || CheckCRC(batch, &h) != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkProduceLegacyConvert(b *testing.B) {
	for _, magic := range []int8{0, 1} {
		for _, c := range benchCodecs {
			var set []byte
			for i, r := range benchRecords() {
				set = appendMessage(set, int64(i), magic, 0, 1_700_000_000_000, r.Key, r.Value)
			}
			if c.codec != CodecNone {
				z, _ := Compress(c.codec, set)
				if c.codec == CodecLZ4 && magic == 0 {
					z = lz4HeaderChecksum(z, true)
				}
				set = appendMessage(nil, 99, magic, c.codec, 1_700_000_000_000, nil, z)
			}
			b.Run(fmt.Sprintf("v%d/%s", magic, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(set)))
				for b.Loop() {
					ms, err := ParseMessageSet(set)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := FromMessageSet(make([]byte, 1, len(set)+64), &ms, ms.Codec); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkFetchV2Copy(b *testing.B) {
	for _, c := range benchCodecs {
		batch, _ := Recompress(Build(0, 1_700_000_000_000, benchRecords()), c.codec)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				out := make([]byte, 0, len(batch))
				_ = append(out, batch...)
			}
		})
	}
}

func BenchmarkFetchDownConvert(b *testing.B) {
	for _, magic := range []int8{0, 1} {
		for _, c := range benchCodecs {
			batch, _ := Recompress(Build(0, 1_700_000_000_000, benchRecords()), c.codec)
			b.Run(fmt.Sprintf("v%d/%s", magic, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(batch)))
				for b.Loop() {
					if _, err := DownConvert(nil, batch, magic); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkRecompress(b *testing.B) {
	batch := Build(0, 1_700_000_000_000, benchRecords())
	for _, c := range benchCodecs[1:] {
		b.Run("none-to-"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				if _, err := Recompress(batch, c.codec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
