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

// Rec is one record read back from a batch. Key and Value are nil for
// null; they alias the batch (or its decompressed body).
type Rec struct {
	Offset, Timestamp int64
	Key, Value        []byte
}

// Each calls fn with each record of the batches in b, in order, until fn
// returns false. Control batches are included (their records are what the
// caller must skip, if it wants to).
func Each(b []byte, fn func(Rec) bool) error {
	for len(b) > 0 {
		h, err := ReadHeader(b)
		if err != nil {
			return err
		}
		if len(b) < h.Size() {
			return fmt.Errorf("%w: truncated batch", ErrCorruptBatch)
		}
		body, err := Decompress(h.Compression(), b[HeaderSize:h.Size()])
		if err != nil {
			return err
		}
		for i := int32(0); i < h.NumRecords; i++ {
			// length, attributes, timestampDelta, offsetDelta, key, value, headers
			length, n := binary.Varint(body)
			if n <= 0 || length < 0 || int64(len(body)-n) < length {
				return fmt.Errorf("%w: bad record length", ErrCorruptBatch)
			}
			rec := body[n : n+int(length)]
			body = body[n+int(length):]
			r, err := parseRecord(rec, &h)
			if err != nil {
				return err
			}
			if !fn(r) {
				return nil
			}
		}
		b = b[h.Size():]
	}
	return nil
}

// parseRecord reads one record's fields after its length.
func parseRecord(rec []byte, h *Header) (Rec, error) {
	bad := func(what string) (Rec, error) { return Rec{}, fmt.Errorf("%w: bad record %s", ErrCorruptBatch, what) }
	if len(rec) < 1 {
		return bad("attributes")
	}
	p := rec[1:]
	next := func() (int64, bool) {
		v, k := binary.Varint(p)
		if k <= 0 {
			return 0, false
		}
		p = p[k:]
		return v, true
	}
	bytesField := func() ([]byte, bool) {
		l, ok := next()
		switch {
		case !ok || l < -1 || l > int64(len(p)):
			return nil, false
		case l == -1:
			return nil, true
		}
		v := p[:l:l]
		p = p[l:]
		return v, true
	}
	tsDelta, ok1 := next()
	offDelta, ok2 := next()
	if !ok1 || !ok2 {
		return bad("deltas")
	}
	r := Rec{Offset: h.BaseOffset + offDelta, Timestamp: h.BaseTimestamp + tsDelta}
	if h.Attributes&AttrTimestampType != 0 {
		r.Timestamp = h.MaxTimestamp // LogAppendTime
	}
	var ok bool
	if r.Key, ok = bytesField(); !ok {
		return bad("key")
	}
	if r.Value, ok = bytesField(); !ok {
		return bad("value")
	}
	return r, nil
}

// RecordTimes calls fn with the offset and timestamp of each record of the
// batches in b, in order, until fn returns false.
func RecordTimes(b []byte, fn func(offset, ts int64) bool) error {
	return Each(b, func(r Rec) bool { return fn(r.Offset, r.Timestamp) })
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
