package kafkaopt

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestAcks(t *testing.T) {
	for in, want := range map[string]kgo.Acks{"0": kgo.NoAck(), "1": kgo.LeaderAck(), "all": kgo.AllISRAcks(), "-1": kgo.AllISRAcks()} {
		got, err := Acks(in)
		if err != nil || got != want {
			t.Errorf("Acks(%q) = %v, %v; want %v", in, got, err, want)
		}
		opts, err := ProducerAcks(in)
		// acks below all also turns idempotent writes off: one more option.
		if wantN := map[bool]int{true: 1, false: 2}[IsAll(in)]; err != nil || len(opts) != wantN {
			t.Errorf("ProducerAcks(%q): %d options, %v; want %d", in, len(opts), err, wantN)
		}
	}
	for _, in := range []string{"", "2", "ALL", "leader"} {
		if _, err := Acks(in); err == nil {
			t.Errorf("Acks(%q) accepted", in)
		}
		if _, err := ProducerAcks(in); err == nil {
			t.Errorf("ProducerAcks(%q) accepted", in)
		}
	}
}

func TestCompression(t *testing.T) {
	for in, want := range map[string]kgo.CompressionCodec{"": kgo.NoCompression(), "none": kgo.NoCompression(),
		"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()} {
		got, err := Compression(in)
		if err != nil || got != want {
			t.Errorf("Compression(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := Compression("brotli"); err == nil {
		t.Error("Compression(brotli) accepted")
	}
}
