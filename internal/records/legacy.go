package records

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Legacy message sets: Kafka's message formats v0 (magic 0) and v1 (magic
// 1, KIP-32 timestamps), which producers older than Kafka 0.11 send in
// Produce v0–v2 and fetchers older than Fetch v4 expect back. The broker
// stores only v2 batches: a message set is converted into one v2 batch on
// produce, as Kafka's log validator does, and v2 batches are converted down
// for old fetchers, as Kafka's down-conversion does. The layout is in
// docs/format/legacy-message-sets.md.

// Field offsets of a legacy message (both magics).
const (
	msgOffSize  = 8
	msgOffCRC   = 12
	msgOffMagic = 16
	msgOffAttrs = 17
	// msgV0Min is the smallest message_size of a v0 message (crc, magic,
	// attributes, key and value lengths); v1 adds an 8-byte timestamp.
	msgV0Min = 4 + 1 + 1 + 4 + 4
	// logOverhead is offset and message_size.
	logOverhead = 12
)

// LegacyRecord is one record of a legacy message set.
type LegacyRecord struct {
	// Offset is as sent: absolute in a v0 set and an uncompressed v1 set,
	// relative to the wrapper in a compressed v1 set. Producers' offsets
	// are ignored (the leader assigns them).
	Offset int64
	// Timestamp is -1 (Kafka's NO_TIMESTAMP) in magic 0.
	Timestamp  int64
	Key, Value []byte
}

// MessageSet is a parsed legacy message set.
type MessageSet struct {
	Magic int8
	// Codec is the codec of the compressed wrappers (0: none). A set whose
	// wrappers use different codecs takes the first one, as Kafka's
	// validator takes one source codec per request.
	Codec   int8
	Records []LegacyRecord
}

// Magic returns the magic byte of the first batch or message in b (byte 16
// in every format), or -1 when b is too short to say.
func Magic(b []byte) int8 {
	if len(b) <= msgOffMagic {
		return -1
	}
	return int8(b[msgOffMagic])
}

// ParseMessageSet parses a whole legacy message set as a producer sends it:
// every message's CRC is checked, compressed wrappers are opened (LZ4 with
// either header checksum), and every message must have the same magic (0
// or 1), with no compression inside a wrapper and nothing left over.
func ParseMessageSet(b []byte) (MessageSet, error) {
	ms := MessageSet{Magic: -1}
	err := parseMessages(b, &ms, false)
	if err == nil && len(ms.Records) == 0 {
		err = fmt.Errorf("%w: empty message set", ErrCorruptBatch)
	}
	return ms, err
}

func parseMessages(b []byte, ms *MessageSet, inner bool) error {
	be := binary.BigEndian
	for len(b) > 0 {
		if len(b) < logOverhead {
			return fmt.Errorf("%w: %d trailing bytes in message set", ErrCorruptBatch, len(b))
		}
		size := int(int32(be.Uint32(b[msgOffSize:])))
		if size < msgV0Min || size > len(b)-logOverhead {
			return fmt.Errorf("%w: message size %d with %d bytes left", ErrCorruptBatch, size, len(b)-logOverhead)
		}
		m := b[:logOverhead+size]
		b = b[logOverhead+size:]
		if got := crc32.ChecksumIEEE(m[msgOffMagic:]); got != be.Uint32(m[msgOffCRC:]) {
			return fmt.Errorf("%w: message crc 0x%08x, computed 0x%08x", ErrCorruptBatch, be.Uint32(m[msgOffCRC:]), got)
		}
		magic := int8(m[msgOffMagic])
		switch {
		case magic != 0 && magic != 1:
			return fmt.Errorf("%w %d in a legacy message set", ErrMagic, magic)
		case ms.Magic >= 0 && magic != ms.Magic:
			return fmt.Errorf("%w: magic %d and %d in one message set", ErrCorruptBatch, ms.Magic, magic)
		}
		ms.Magic = magic
		attrs := int8(m[msgOffAttrs])
		p := m[msgOffAttrs+1:]
		r := LegacyRecord{Offset: int64(be.Uint64(m)), Timestamp: -1}
		if magic == 1 {
			if len(p) < 8+8 {
				return fmt.Errorf("%w: v1 message of %d bytes", ErrCorruptBatch, size)
			}
			r.Timestamp = int64(be.Uint64(p))
			p = p[8:]
		}
		var ok bool
		if r.Key, p, ok = legacyBytes(p); !ok {
			return fmt.Errorf("%w: bad message key", ErrCorruptBatch)
		}
		if r.Value, p, ok = legacyBytes(p); !ok || len(p) != 0 {
			return fmt.Errorf("%w: bad message value", ErrCorruptBatch)
		}
		codec := attrs & AttrCompressionMask
		if codec == CodecNone {
			ms.Records = append(ms.Records, r)
			continue
		}
		if inner {
			return fmt.Errorf("%w: compressed message inside a compressed message", ErrCorruptBatch)
		}
		if codec > CodecLZ4 {
			return fmt.Errorf("%w %d in message format v%d", ErrCodec, codec, magic)
		}
		if ms.Codec == CodecNone {
			ms.Codec = codec
		}
		plain, err := DecompressLegacy(magic, codec, r.Value)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptBatch, err)
		}
		start := len(ms.Records)
		if err := parseMessages(plain, ms, true); err != nil {
			return err
		}
		if magic == 1 && attrs&AttrTimestampType != 0 {
			// A wrapper stamped with LogAppendTime gives its time to all.
			for i := start; i < len(ms.Records); i++ {
				ms.Records[i].Timestamp = r.Timestamp
			}
		}
	}
	return nil
}

// DecompressLegacy opens the value of a compressed legacy wrapper message:
// Decompress, except that LZ4 in magic 0 carries Kafka's pre-KIP-57 frame
// header checksum, which is fixed up first.
func DecompressLegacy(magic, codec int8, value []byte) ([]byte, error) {
	if codec == CodecLZ4 && magic == 0 {
		value = lz4HeaderChecksum(value, false)
	}
	return Decompress(codec, value)
}

// legacyBytes reads an int32-length byte field (-1: null).
func legacyBytes(p []byte) (v, rest []byte, ok bool) {
	if len(p) < 4 {
		return nil, nil, false
	}
	n := int32(binary.BigEndian.Uint32(p))
	p = p[4:]
	switch {
	case n == -1:
		return nil, p, true
	case n < 0 || int(n) > len(p):
		return nil, nil, false
	}
	return p[:n:n], p[n:], true
}

// FromMessageSet converts a parsed message set into one v2 batch, as
// Kafka's log validator does for a topic on message format v2: records
// keep their order, keys, values and timestamps (-1 for magic 0), offsets
// become 0..n-1 for the leader to patch, the batch has no producer id, and
// it is compressed with codec (the set's own, or the topic's
// compression.type). dst gets the batch appended; callers pass one spare
// byte for the log entry kind.
func FromMessageSet(dst []byte, ms *MessageSet, codec int8) ([]byte, error) {
	return appendBatch(dst, ms.Records, codec, false, -1, -1, -1)
}

// appendBatch appends a v2 batch holding recs with offset deltas 0..n-1.
func appendBatch(dst []byte, recs []LegacyRecord, codec int8, logAppend bool, pid int64, epoch int16, seq int32) ([]byte, error) {
	if len(recs) == 0 {
		return dst, fmt.Errorf("%w: no records", ErrCorruptBatch)
	}
	base, maxTs := recs[0].Timestamp, int64(-1)
	var body []byte
	for i, r := range recs {
		maxTs = max(maxTs, r.Timestamp)
		body = appendRecordV2(body, int64(i), r.Timestamp-base, r.Key, r.Value)
	}
	body, err := Compress(codec, body)
	if err != nil {
		return dst, err
	}
	be := binary.BigEndian
	start := len(dst)
	attrs := uint16(codec)
	if logAppend {
		attrs |= AttrTimestampType
	}
	dst = be.AppendUint64(dst, 0)                                           // baseOffset
	dst = be.AppendUint32(dst, uint32(HeaderSize-lengthOverhead+len(body))) // batchLength
	dst = be.AppendUint32(dst, 0)                                           // partitionLeaderEpoch
	dst = append(dst, 2, 0, 0, 0, 0)                                        // magic, crc
	dst = be.AppendUint16(dst, attrs)
	dst = be.AppendUint32(dst, uint32(len(recs)-1))
	dst = be.AppendUint64(dst, uint64(base))
	dst = be.AppendUint64(dst, uint64(maxTs))
	dst = be.AppendUint64(dst, uint64(pid))
	dst = be.AppendUint16(dst, uint16(epoch))
	dst = be.AppendUint32(dst, uint32(seq))
	dst = be.AppendUint32(dst, uint32(len(recs)))
	dst = append(dst, body...)
	SetCRC(dst[start:])
	return dst, nil
}

// appendRecordV2 appends one v2 record without headers.
func appendRecordV2(dst []byte, offDelta, tsDelta int64, key, value []byte) []byte {
	var tmp [64]byte
	f := tmp[:0]
	f = append(f, 0) // attributes
	f = binary.AppendVarint(f, tsDelta)
	f = binary.AppendVarint(f, offDelta)
	n := len(f) + varintLen(len(key), key == nil) + varintLen(len(value), value == nil) + 1
	dst = binary.AppendVarint(dst, int64(n))
	dst = append(dst, f...)
	dst = appendVarBytes(dst, key)
	dst = appendVarBytes(dst, value)
	return append(dst, 0) // no headers
}

func varintLen(n int, null bool) int {
	if null {
		return 1
	}
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutVarint(tmp[:], int64(n)) + n
}

func appendVarBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// Recompress re-encodes the records of one v2 batch with codec (a topic's
// compression.type), keeping every header field but the codec bits, the
// length and the CRC. A batch already in codec is returned as is.
func Recompress(batch []byte, codec int8) ([]byte, error) {
	h, err := ReadHeader(batch)
	if err != nil {
		return nil, err
	}
	if h.Compression() == codec {
		return batch, nil
	}
	plain, err := Decompress(h.Compression(), batch[HeaderSize:h.Size()])
	if err != nil {
		return nil, err
	}
	body, err := Compress(codec, plain)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, HeaderSize+len(body))
	out = append(out, batch[:HeaderSize]...)
	out = append(out, body...)
	be := binary.BigEndian
	be.PutUint32(out[offBatchLength:], uint32(len(out)-lengthOverhead))
	be.PutUint16(out[offAttributes:], uint16(h.Attributes)&^AttrCompressionMask|uint16(codec))
	SetCRC(out)
	return out, nil
}

// DownConvert appends to dst the v2 batches of b converted to message
// format magic (0 or 1) for a fetcher older than Fetch v4, as Kafka's
// down-conversion does: every record keeps its absolute offset, key and
// value (headers have no place in v0/v1 and are dropped); v1 keeps
// timestamps and the LogAppendTime flag; a compressed batch becomes one
// wrapper message in the same codec whose offset is its last record's
// (inner offsets relative to the batch in v1, absolute in v0); control
// batches are left out. zstd cannot be expressed in v0/v1: ErrCodec.
func DownConvert(dst, b []byte, magic int8) ([]byte, error) {
	for len(b) > 0 {
		h, err := ReadHeader(b)
		if err != nil {
			return dst, err
		}
		batch := b[:h.Size()]
		b = b[h.Size():]
		if h.IsControl() {
			continue
		}
		codec := h.Compression()
		if codec > CodecLZ4 {
			return dst, fmt.Errorf("%w %d for message format v%d", ErrCodec, codec, magic)
		}
		var attrs int8
		if magic == 1 && h.Attributes&AttrTimestampType != 0 {
			attrs = AttrTimestampType
		}
		if codec == CodecNone {
			err = Each(batch, func(r Rec) bool {
				dst = appendMessage(dst, r.Offset, magic, attrs, r.Timestamp, r.Key, r.Value)
				return true
			})
			if err != nil {
				return dst, err
			}
			continue
		}
		var inner []byte
		last, maxTs := int64(-1), int64(-1)
		err = Each(batch, func(r Rec) bool {
			off := r.Offset
			if magic == 1 {
				off -= h.BaseOffset
			}
			inner = appendMessage(inner, off, magic, attrs, r.Timestamp, r.Key, r.Value)
			last, maxTs = r.Offset, max(maxTs, r.Timestamp)
			return true
		})
		if err != nil {
			return dst, err
		}
		if last < 0 {
			continue
		}
		value, err := Compress(codec, inner)
		if err != nil {
			return dst, err
		}
		if codec == CodecLZ4 && magic == 0 {
			value = lz4HeaderChecksum(value, true)
		}
		dst = appendMessage(dst, last, magic, attrs|codec, maxTs, nil, value)
	}
	return dst, nil
}

// appendMessage appends one legacy message.
func appendMessage(dst []byte, offset int64, magic, attrs int8, ts int64, key, value []byte) []byte {
	be := binary.BigEndian
	start := len(dst)
	dst = be.AppendUint64(dst, uint64(offset))
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, byte(magic), byte(attrs)) // size, crc
	if magic == 1 {
		dst = be.AppendUint64(dst, uint64(ts))
	}
	for _, f := range [][]byte{key, value} {
		if f == nil {
			dst = be.AppendUint32(dst, 0xffffffff)
			continue
		}
		dst = be.AppendUint32(dst, uint32(len(f)))
		dst = append(dst, f...)
	}
	m := dst[start:]
	be.PutUint32(m[msgOffSize:], uint32(len(m)-logOverhead))
	be.PutUint32(m[msgOffCRC:], crc32.ChecksumIEEE(m[msgOffMagic:]))
	return dst
}
