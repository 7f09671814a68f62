// Package records reads and patches Kafka record batches (magic 2) in the
// wire form producers send and consumers receive. The broker stores batches
// byte for byte; this package validates their frame and CRC-32C and patches
// only baseOffset and partitionLeaderEpoch, which the CRC does not cover.
// It must never re-encode or decompress a batch on the produce path.
package records

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Field offsets of a v2 record batch header (Kafka's DefaultRecordBatch).
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
	// HeaderSize is the size of the fixed batch header.
	HeaderSize = 61
	// lengthOverhead is the bytes not counted by batchLength.
	lengthOverhead = 12
)

// Attribute bits.
const (
	AttrCompressionMask = 0x07
	AttrTimestampType   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
)

// Errors of batch validation.
var (
	ErrCorruptBatch = errors.New("records: corrupt record batch")
	ErrMagic        = errors.New("records: unsupported message format (magic)")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded fixed header of a v2 batch.
type Header struct {
	BaseOffset      int64
	Length          int32 // batchLength: bytes after the length field
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Size is the batch's total size on the wire.
func (h *Header) Size() int { return int(h.Length) + lengthOverhead }

// LastOffset is the offset of the batch's last record.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// IsControl reports a transaction marker batch.
func (h *Header) IsControl() bool { return h.Attributes&AttrControl != 0 }

// IsTransactional reports a batch written in a transaction.
func (h *Header) IsTransactional() bool { return h.Attributes&AttrTransactional != 0 }

// Compression returns the codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
func (h *Header) Compression() int8 { return int8(h.Attributes & AttrCompressionMask) }

// ReadHeader decodes the header at the start of b without checking the CRC.
// b must hold at least the whole batch the header announces.
func ReadHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: %d bytes, header needs %d", ErrCorruptBatch, len(b), HeaderSize)
	}
	be := binary.BigEndian
	h.BaseOffset = int64(be.Uint64(b[offBaseOffset:]))
	h.Length = int32(be.Uint32(b[offBatchLength:]))
	h.LeaderEpoch = int32(be.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	if h.Magic != 2 {
		return h, fmt.Errorf("%w %d", ErrMagic, h.Magic)
	}
	if int(h.Length) < HeaderSize-lengthOverhead || h.Size() > len(b) {
		return h, fmt.Errorf("%w: batch length %d with %d bytes available", ErrCorruptBatch, h.Length, len(b))
	}
	h.CRC = be.Uint32(b[offCRC:])
	h.Attributes = int16(be.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(be.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(be.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(be.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(be.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(be.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(be.Uint32(b[offBaseSequence:]))
	h.NumRecords = int32(be.Uint32(b[offRecordCount:]))
	if h.LastOffsetDelta < 0 || h.NumRecords < 0 {
		return h, fmt.Errorf("%w: negative record count or offset delta", ErrCorruptBatch)
	}
	return h, nil
}

// CheckCRC verifies the CRC-32C of a whole batch (bytes 21 to the end).
func CheckCRC(b []byte, h *Header) error {
	if got := crc32.Checksum(b[offAttributes:h.Size()], castagnoli); got != h.CRC {
		return fmt.Errorf("%w: crc 0x%08x, computed 0x%08x", ErrCorruptBatch, h.CRC, got)
	}
	return nil
}

// SetCRC computes and stores the CRC of a whole batch (for tests and for
// batches the broker writes itself, such as transaction markers).
func SetCRC(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}

// Patch sets baseOffset and partitionLeaderEpoch, the two fields outside
// the CRC that the leader owns.
func Patch(b []byte, baseOffset int64, leaderEpoch int32) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(baseOffset))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(leaderEpoch))
}

// Entry payloads of data partitions: a kind byte, then record batches.
const (
	// EntryBatches marks an entry holding record batches.
	EntryBatches byte = 0x00
)

// EntryMeta returns the offsets held by a data-partition entry: from the
// first batch's base offset to the last batch's last offset, and the
// largest max timestamp. ok is false for entries holding no batches.
func EntryMeta(data []byte) (base int64, count uint32, maxTs int64, ok bool, err error) {
	if len(data) == 0 || data[0] != EntryBatches {
		return 0, 0, -1, false, nil
	}
	b := data[1:]
	maxTs = -1
	first := true
	var end int64
	for len(b) > 0 {
		h, err := ReadHeader(b)
		if err != nil {
			return 0, 0, -1, false, err
		}
		if first {
			base, first = h.BaseOffset, false
		} else if h.BaseOffset != end {
			return 0, 0, -1, false, fmt.Errorf("%w: batch at offset %d does not follow %d", ErrCorruptBatch, h.BaseOffset, end)
		}
		end = h.LastOffset() + 1
		maxTs = max(maxTs, h.MaxTimestamp)
		b = b[h.Size():]
	}
	if first {
		return 0, 0, -1, false, nil
	}
	return base, uint32(end - base), maxTs, true, nil
}
