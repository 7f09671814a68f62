// Package kafkaopt turns the producer settings people type on a command
// line or in the environment (acks, compression) into franz-go values, the
// same way for every subcommand (bench, gateway, produce).
package kafkaopt

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Acks parses an acks setting: "0", "1", "all" or its alias "-1".
func Acks(s string) (kgo.Acks, error) {
	switch s {
	case "0":
		return kgo.NoAck(), nil
	case "1":
		return kgo.LeaderAck(), nil
	case "all", "-1":
		return kgo.AllISRAcks(), nil
	}
	return kgo.NoAck(), fmt.Errorf("unknown acks %q (0, 1, -1 or all)", s)
}

// IsAll reports whether s means acks=all, which idempotent writes need.
func IsAll(s string) bool { return s == "all" || s == "-1" }

// ProducerAcks returns the options for acks s: below all, idempotent writes
// are turned off, since Kafka accepts them only with acks=all.
func ProducerAcks(s string) ([]kgo.Opt, error) {
	a, err := Acks(s)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.RequiredAcks(a)}
	if !IsAll(s) {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	return opts, nil
}

// Compression parses a codec name: none (or empty), gzip, snappy, lz4 or
// zstd. franz-go's own default is snappy, so "none" must be set explicitly.
func Compression(s string) (kgo.CompressionCodec, error) {
	switch s {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("unknown compression %q (none, gzip, snappy, lz4, zstd)", s)
}
