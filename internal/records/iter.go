package records

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// maxInflated bounds what decompressing one batch may produce, so that a
// hostile batch cannot exhaust memory.
const maxInflated = 256 << 20

// ErrInflateTooLarge is returned for batches that inflate beyond maxInflated.
var ErrInflateTooLarge = errors.New("records: batch inflates beyond 256 MiB")

// Decompress returns the records section of a batch in plain form. Only the
// places that must look inside a batch call it (ListOffsets by timestamp);
// the produce path never does.
func Decompress(codec int8, b []byte) ([]byte, error) {
	var r io.Reader
	switch codec {
	case 0:
		return b, nil
	case 1:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	case 2:
		return unsnappy(b)
	case 3:
		r = lz4.NewReader(bytes.NewReader(b))
	case 4:
		zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderMaxMemory(maxInflated))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorruptBatch, codec)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxInflated+1))
	if err != nil {
		return nil, fmt.Errorf("decompress codec %d: %w", codec, err)
	}
	if len(out) > maxInflated {
		return nil, ErrInflateTooLarge
	}
	return out, nil
}

// xerialHeader starts snappy data framed the way the Java client writes it.
var xerialHeader = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// unsnappy decodes raw snappy blocks and the xerial framing of the Java
// client (header, then blocks each prefixed by a big-endian length).
func unsnappy(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, xerialHeader) {
		n, err := snappy.DecodedLen(b)
		if err != nil || n > maxInflated {
			return nil, fmt.Errorf("snappy: %w", errors.Join(err, ErrInflateTooLarge))
		}
		return snappy.Decode(nil, b)
	}
	if len(b) < 16 {
		return nil, errors.New("snappy: short xerial header")
	}
	b = b[16:]
	var out []byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errors.New("snappy: truncated xerial block length")
		}
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n > len(b) {
			return nil, errors.New("snappy: truncated xerial block")
		}
		dl, err := snappy.DecodedLen(b[:n])
		if err != nil || len(out)+dl > maxInflated {
			return nil, fmt.Errorf("snappy: %w", errors.Join(err, ErrInflateTooLarge))
		}
		blk, err := snappy.Decode(nil, b[:n])
		if err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
		out = append(out, blk...)
		b = b[n:]
	}
	return out, nil
}

// RecordTimes calls fn with the offset and timestamp of each record of the
// batches in b, in order, until fn returns false.
func RecordTimes(b []byte, fn func(offset, ts int64) bool) error {
	for len(b) > 0 {
		h, err := ReadHeader(b)
		if err != nil {
			return err
		}
		if h.Attributes&AttrTimestampType != 0 {
			// LogAppendTime: every record carries the batch's max timestamp.
			for i := int32(0); i < h.NumRecords; i++ {
				if !fn(h.BaseOffset+int64(i), h.MaxTimestamp) {
					return nil
				}
			}
			b = b[h.Size():]
			continue
		}
		body, err := Decompress(h.Compression(), b[HeaderSize:h.Size()])
		if err != nil {
			return err
		}
		for i := int32(0); i < h.NumRecords; i++ {
			// length, attributes, timestampDelta, offsetDelta, ...
			length, n := binary.Varint(body)
			if n <= 0 || length < 0 || int64(len(body)-n) < length {
				return fmt.Errorf("%w: bad record length", ErrCorruptBatch)
			}
			rec := body[n : n+int(length)]
			body = body[n+int(length):]
			if len(rec) < 1 {
				return fmt.Errorf("%w: empty record", ErrCorruptBatch)
			}
			tsDelta, k := binary.Varint(rec[1:])
			if k <= 0 {
				return fmt.Errorf("%w: bad timestamp delta", ErrCorruptBatch)
			}
			offDelta, k2 := binary.Varint(rec[1+k:])
			if k2 <= 0 {
				return fmt.Errorf("%w: bad offset delta", ErrCorruptBatch)
			}
			if !fn(h.BaseOffset+offDelta, h.BaseTimestamp+tsDelta) {
				return nil
			}
		}
		b = b[h.Size():]
	}
	return nil
}

// FirstAtOrAfter returns the offset and timestamp of the first record in
// the batches of b whose timestamp is at least ts, or -1, -1.
func FirstAtOrAfter(b []byte, ts int64) (int64, int64, error) {
	off, at := int64(-1), int64(-1)
	err := RecordTimes(b, func(o, t int64) bool {
		if t >= ts {
			off, at = o, t
			return false
		}
		return true
	})
	return off, at, err
}

// SetLogAppendTime stamps a batch with the broker's time
// (message.timestamp.type=LogAppendTime): the timestamp-type attribute and
// the max timestamp change, so the CRC is computed again. Records are not
// touched.
func SetLogAppendTime(b []byte, ts int64) {
	a := binary.BigEndian.Uint16(b[offAttributes:])
	binary.BigEndian.PutUint16(b[offAttributes:], a|AttrTimestampType)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	SetCRC(b)
}
