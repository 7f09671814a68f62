package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Frame layout: docs/format/segment.md.
const (
	frameHeaderSize = 48
	frameMagic      = 0xC5
	// minFrameLen and maxFrameLen bound the length field (bytes after the
	// crc field).
	minFrameLen = frameHeaderSize - 8
	maxFrameLen = 1 << 30
)

// frameKind is the kind byte of a frame.
type frameKind uint8

const (
	kindEntry         frameKind = 1
	kindConfChange    frameKind = 2
	kindConfChangeV2  frameKind = 3
	kindHardState     frameKind = 4
	kindConfState     frameKind = 5
	kindLogStart      frameKind = 6
	kindSegmentEnd    frameKind = 7
	hardStatePayload            = 24
	logStartPayload             = 8
	maxKnownFrameKind           = kindSegmentEnd
)

func (k frameKind) isEntry() bool { return k >= kindEntry && k <= kindConfChangeV2 }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameHeader is the decoded fixed part of a frame.
type frameHeader struct {
	length      uint32 // bytes after the crc field
	crc         uint32
	kind        frameKind
	term        uint64
	index       uint64
	baseOffset  int64
	offsetCount uint32
	maxTs       int64
}

// size is the whole frame's size on disk.
func (h *frameHeader) size() int64 { return 8 + int64(h.length) }

// payloadLen is the number of payload bytes.
func (h *frameHeader) payloadLen() int { return int(h.length) - minFrameLen }

// endOffset is the Kafka offset after the frame's records.
func (h *frameHeader) endOffset() int64 { return h.baseOffset + int64(h.offsetCount) }

// putFrameHeader encodes h into b[:48] for a payload, filling in length and
// the CRC over header and payload.
func putFrameHeader(b []byte, h *frameHeader, payload []byte) {
	h.length = uint32(minFrameLen + len(payload))
	binary.LittleEndian.PutUint32(b[0:], h.length)
	b[8] = frameMagic
	b[9] = byte(h.kind)
	b[10], b[11] = 0, 0
	binary.LittleEndian.PutUint64(b[12:], h.term)
	binary.LittleEndian.PutUint64(b[20:], h.index)
	binary.LittleEndian.PutUint64(b[28:], uint64(h.baseOffset))
	binary.LittleEndian.PutUint32(b[36:], h.offsetCount)
	binary.LittleEndian.PutUint64(b[40:], uint64(h.maxTs))
	crc := crc32.Update(0, castagnoli, b[0:4])
	crc = crc32.Update(crc, castagnoli, b[8:frameHeaderSize])
	crc = crc32.Update(crc, castagnoli, payload)
	h.crc = crc
	binary.LittleEndian.PutUint32(b[4:], crc)
}

// frameError says why bytes are not a valid frame.
type frameError struct{ reason string }

func (e *frameError) Error() string { return e.reason }

func frameErrorf(format string, args ...any) error {
	return &frameError{reason: fmt.Sprintf(format, args...)}
}

// parseFrameHeader decodes and checks the fixed part of a frame from b,
// which must hold at least 48 bytes. The CRC is not checked here.
func parseFrameHeader(b []byte) (frameHeader, error) {
	var h frameHeader
	if len(b) < frameHeaderSize {
		return h, frameErrorf("short frame header: %d bytes", len(b))
	}
	h.length = binary.LittleEndian.Uint32(b[0:])
	h.crc = binary.LittleEndian.Uint32(b[4:])
	if h.length < minFrameLen || h.length > maxFrameLen {
		return h, frameErrorf("frame length %d out of range", h.length)
	}
	if b[8] != frameMagic {
		return h, frameErrorf("bad frame magic 0x%02x", b[8])
	}
	h.kind = frameKind(b[9])
	if h.kind < kindEntry || h.kind > maxKnownFrameKind {
		return h, frameErrorf("unknown frame kind %d", b[9])
	}
	if b[10] != 0 || b[11] != 0 {
		return h, frameErrorf("nonzero frame flags")
	}
	h.term = binary.LittleEndian.Uint64(b[12:])
	h.index = binary.LittleEndian.Uint64(b[20:])
	h.baseOffset = int64(binary.LittleEndian.Uint64(b[28:]))
	h.offsetCount = binary.LittleEndian.Uint32(b[36:])
	h.maxTs = int64(binary.LittleEndian.Uint64(b[40:]))
	if h.baseOffset < 0 {
		return h, frameErrorf("negative base offset %d", h.baseOffset)
	}
	switch h.kind {
	case kindHardState:
		if h.payloadLen() != hardStatePayload {
			return h, frameErrorf("hard state payload of %d bytes", h.payloadLen())
		}
	case kindLogStart:
		if h.payloadLen() != logStartPayload {
			return h, frameErrorf("log start payload of %d bytes", h.payloadLen())
		}
	case kindSegmentEnd:
		if h.payloadLen() != 0 {
			return h, frameErrorf("segment end payload of %d bytes", h.payloadLen())
		}
	}
	if !h.kind.isEntry() && h.offsetCount != 0 {
		return h, frameErrorf("state frame with %d offsets", h.offsetCount)
	}
	return h, nil
}

// checkFrameCRC verifies the CRC of a whole frame held in b (header and
// payload, exactly h.size() bytes).
func checkFrameCRC(h *frameHeader, b []byte) error {
	crc := crc32.Update(0, castagnoli, b[0:4])
	crc = crc32.Update(crc, castagnoli, b[8:])
	if crc != h.crc {
		return frameErrorf("frame crc mismatch: stored 0x%08x, computed 0x%08x", h.crc, crc)
	}
	return nil
}

// decodeFrame parses one whole frame from the start of b. It returns the
// header, the payload (aliasing b) and the frame's size. A nil error means
// the frame is complete and its CRC matches; io-level shortness is reported
// as errShortFrame so that callers can tell "incomplete" from "wrong".
func decodeFrame(b []byte) (frameHeader, []byte, error) {
	if len(b) < 8 {
		return frameHeader{}, nil, errShortFrame
	}
	if len(b) < frameHeaderSize {
		// Enough to know the length; if the claimed frame cannot fit in a
		// header either, it is short, otherwise malformed.
		return frameHeader{}, nil, errShortFrame
	}
	h, err := parseFrameHeader(b)
	if err != nil {
		return h, nil, err
	}
	if int64(len(b)) < h.size() {
		return h, nil, errShortFrame
	}
	whole := b[:h.size()]
	if err := checkFrameCRC(&h, whole); err != nil {
		return h, nil, err
	}
	return h, whole[frameHeaderSize:], nil
}

var errShortFrame = &frameError{reason: "frame extends past the end of the data"}

// hardStateFrame is the payload of a kindHardState frame.
type hardStateFrame struct {
	term, vote, commit, applied uint64
}

func putHardStatePayload(b []byte, hs hardStateFrame) {
	binary.LittleEndian.PutUint64(b[0:], hs.vote)
	binary.LittleEndian.PutUint64(b[8:], hs.commit)
	binary.LittleEndian.PutUint64(b[16:], hs.applied)
}

func parseHardStatePayload(term uint64, p []byte) hardStateFrame {
	return hardStateFrame{
		term:    term,
		vote:    binary.LittleEndian.Uint64(p[0:]),
		commit:  binary.LittleEndian.Uint64(p[8:]),
		applied: binary.LittleEndian.Uint64(p[16:]),
	}
}
